//! The Gateway API project's mesh (GAMMA) conformance tests, replayed in the sandbox.
//!
//! Each upstream test (`conformance/tests/mesh/*.go` of kubernetes-sigs/gateway-api) is a
//! table in `tests/fixtures/gamma/<ShortName>.yaml`: its routes, verbatim, and every
//! request with what the upstream test expects of it (status, which backend answers, what
//! that backend saw, response headers, the redirect). The cluster is the suite's own
//! (`conformance/mesh/manifests.yaml`): `echo`, `echo-v1` and `echo-v2` in
//! `gateway-conformance-mesh` with their five ports, the `echo-v1` pods of both namespaces as
//! clients, every pod answering as the conformance echo does (the pod and what it saw).
//! Requests go from a client pod to the Service address with the case's Host, through the
//! real kernel and agent; nothing is fetched at test time.
//!
//! The result per test is compared with the conformance report in the README: a test that
//! passes or fails unannounced fails here, and every Mesh core test must pass.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, binomial_bounds, fixture, privileged};
use serde::Deserialize;
use serde_json::Value;

const MESH: &str = "gateway-conformance-mesh";
/// The conformance echo's gRPC method.
const GRPC_ECHO: &str = "/gateway_api_conformance.echo.basic.grpcecho.GrpcEcho/Echo";
const CONSUMER: &str = "gateway-conformance-mesh-consumer";

/// The suite's Services: name, cluster IP.
const SERVICES: [(&str, Ipv4Addr); 3] = [
    ("echo", Ipv4Addr::new(10, 96, 7, 10)),
    ("echo-v1", Ipv4Addr::new(10, 96, 7, 11)),
    ("echo-v2", Ipv4Addr::new(10, 96, 7, 12)),
];

/// The pods: sandbox name, namespace, version. The conformance client is each namespace's
/// `echo-v1` pod.
const PODS: [(&str, &str, &str); 3] =
    [("echo-v1", MESH, "v1"), ("echo-v2", MESH, "v2"), ("echo-v1-consumer", CONSUMER, "v1")];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    test: String,
    description: String,
    features: Vec<String>,
    #[serde(default)]
    manifests: String,
    cases: Vec<Case>,
    #[serde(default)]
    weights: Option<BTreeMap<String, f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    client: String,
    request: Request,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// `grpc`: a unary call of the conformance echo's method; else HTTP/1.1.
    #[serde(default)]
    protocol: Option<String>,
    host: String,
    #[serde(default = "root")]
    path: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn root() -> String {
    "/".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    status: u16,
    #[serde(default)]
    statuses: Vec<u16>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    request: Option<Seen>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    absent_headers: Vec<String>,
    #[serde(default)]
    redirect: Option<Location>,
}

/// What the backend must have seen.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Seen {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    absent_headers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Location {
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

/// One answer the client got.
struct Answer {
    status: u16,
    headers: BTreeMap<String, Vec<String>>,
    echo: Option<Value>,
}

impl Answer {
    fn parse(v: &Value) -> Result<Self, String> {
        if let Some(e) = v.get("error") {
            return Err(format!("no answer: {e}"));
        }
        let headers = v["headers"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, vs)| {
                        let vs =
                            vs.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).map(str::to_owned));
                        (k.clone(), vs.map(Iterator::collect).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let status = v["status"].as_u64().and_then(|s| u16::try_from(s).ok()).ok_or("no status")?;
        Ok(Self { status, headers, echo: v.get("echo").filter(|e| !e.is_null()).cloned() })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(&name.to_ascii_lowercase()).map(|v| v.join(","))
    }

    /// The pod that answered, from the echo's report.
    fn pod(&self) -> Option<&str> {
        self.echo.as_ref()?.get("pod")?.as_str()
    }
}

/// Where a conformance Host points from a client in `ns`: the Service address and port.
fn resolve(host: &str, ns: &str) -> Result<(Ipv4Addr, u16), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, p.parse().map_err(|_| format!("bad port in {host}"))?),
        None => (host, 80),
    };
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Ok((ip, port));
    }
    let mut labels = name.split('.');
    let svc = labels.next().unwrap_or_default();
    let svc_ns = labels.next().unwrap_or(ns);
    SERVICES
        .iter()
        .find(|(n, _)| *n == svc && svc_ns == MESH)
        .map(|(_, ip)| (*ip, port))
        .ok_or_else(|| format!("{host} names no Service seen from {ns}"))
}

/// Whether `answer` is what `expect` says; why not otherwise.
fn check(answer: &Answer, expect: &Expect, sent: &Request) -> Result<(), String> {
    let statuses: Vec<u16> = std::iter::once(expect.status).chain(expect.statuses.iter().copied()).collect();
    if !statuses.contains(&answer.status) {
        return Err(format!("status {} (want {statuses:?})", answer.status));
    }
    for (k, v) in &expect.headers {
        let got = answer.header(k);
        if got.as_deref() != Some(v.as_str()) {
            return Err(format!("response header {k}: {got:?} (want {v:?})"));
        }
    }
    for k in &expect.absent_headers {
        if let Some(got) = answer.header(k) {
            return Err(format!("response header {k} present ({got:?}), want absent"));
        }
    }
    if let Some(want) = &expect.redirect {
        let location = answer.header("location").ok_or("no Location")?;
        let (scheme, rest) = location.split_once("://").ok_or_else(|| format!("Location {location}"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        // The port in effect: written, or the scheme's (as the upstream harness compares).
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.to_owned()),
            None => (authority, if scheme == "https" { "443" } else { "80" }.to_owned()),
        };
        let parts = [("scheme", want.scheme.as_deref(), scheme), ("host", want.host.as_deref(), host)];
        for (what, want, got) in parts {
            if want.is_some_and(|w| w != got) {
                return Err(format!("redirect {what} {got:?} (want {want:?}) in {location}"));
            }
        }
        if want.port.as_deref().is_some_and(|w| w != port) {
            return Err(format!("redirect port {port:?} (want {:?}) in {location}", want.port));
        }
        if want.path.as_deref().is_some_and(|w| w != path) {
            return Err(format!("redirect path {path:?} (want {:?}) in {location}", want.path));
        }
    }
    let needs_echo = expect.backend.is_some() || expect.namespace.is_some() || expect.request.is_some();
    if !needs_echo || expect.redirect.is_some() {
        return Ok(());
    }
    let echo = answer.echo.as_ref().ok_or("no echo report (the answer came from elsewhere)")?;
    let pod = answer.pod().unwrap_or_default();
    if let Some(b) = &expect.backend
        && !pod.starts_with(b.as_str())
    {
        return Err(format!("answered by {pod}, want {b}"));
    }
    if let Some(ns) = &expect.namespace {
        let got = PODS.iter().find(|(n, _, _)| *n == pod).map(|(_, ns, _)| *ns).unwrap_or_default();
        if got != ns {
            return Err(format!("answered by {pod} in {got}, want namespace {ns}"));
        }
    }
    if let Some(seen) = &expect.request {
        let heard =
            |k: &str| echo["headers"].get(k.to_ascii_lowercase()).and_then(Value::as_str).map(str::to_owned);
        if let Some(p) = &seen.path
            && echo["path"].as_str() != Some(p.as_str())
        {
            return Err(format!("backend saw path {} (want {p})", echo["path"]));
        }
        if let Some(m) = seen.method.as_ref().or(sent.method.as_ref())
            && echo["method"].as_str() != Some(m.as_str())
        {
            return Err(format!("backend saw method {} (want {m})", echo["method"]));
        }
        if let Some(h) = &seen.host {
            let got = heard("host").unwrap_or_default();
            if got != *h {
                return Err(format!("backend saw host {got:?} (want {h:?})"));
            }
        }
        for (k, v) in &seen.headers {
            let got = heard(k);
            if got.as_deref() != Some(v.as_str()) {
                return Err(format!("backend saw header {k}: {got:?} (want {v:?})"));
            }
        }
        for k in &seen.absent_headers {
            if let Some(got) = heard(k) {
                return Err(format!("backend saw header {k} ({got:?}), want absent"));
            }
        }
    }
    Ok(())
}

/// Sends `req` `count` times from the client pod of `client`.
fn send(sb: &Sandbox, client: &str, req: &Request, count: usize) -> Result<Vec<Answer>, String> {
    let (pod, ns) = match client {
        "mesh" => ("echo-v1", MESH),
        "mesh-v2" => ("echo-v2", MESH),
        "consumer" => ("echo-v1-consumer", CONSUMER),
        other => return Err(format!("unknown client {other}")),
    };
    // A pod's own address, written `<pod-ip:NAME>` in the tables.
    let mut host = req.host.clone();
    for (name, ..) in PODS {
        host = host.replace(&format!("<pod-ip:{name}>"), &sb.pod(name).ip.to_string());
    }
    let (ip, port) = resolve(&host, ns)?;
    let (ip, port, count) = (ip.to_string(), port.to_string(), count.to_string());
    let grpc = req.protocol.as_deref() == Some("grpc");
    let method = if grpc { "GRPC".into() } else { req.method.clone().unwrap_or_else(|| "GET".into()) };
    let path = match grpc {
        true if req.path == "/" => GRPC_ECHO.to_owned(),
        _ => req.path.clone(),
    };
    let headers: Vec<String> = req.headers.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let mut args =
        vec![ip.as_str(), port.as_str(), host.as_str(), method.as_str(), path.as_str(), count.as_str()];
    args.extend(headers.iter().map(String::as_str));
    let lines = sb.pod(pod).python_json("gamma_client.py", &args).map_err(|e| e.to_string())?;
    lines.iter().map(Answer::parse).collect()
}

/// A case: three answers in a row as expected, retried for up to 10 s, as the upstream
/// suite waits for routes to settle (`RequiredConsecutiveSuccesses`).
fn run_case(sb: &Sandbox, case: &Case) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let outcome = send(sb, &case.client, &case.request, 3).and_then(|answers| {
            if answers.len() != 3 {
                return Err(format!("{} answers of 3", answers.len()));
            }
            answers.iter().try_for_each(|a| check(a, &case.expect, &case.request))
        });
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(10) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The weighted split of `fixture`: each backend's share of `N` requests within bounds.
fn run_weights(sb: &Sandbox, fixture: &Fixture, weights: &BTreeMap<String, f64>) -> Result<(), String> {
    const N: usize = 500;
    let case = fixture.cases.first().ok_or("no request")?;
    let answers = send(sb, &case.client, &case.request, N)?;
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for a in &answers {
        let pod = a.pod().unwrap_or("none");
        let backend = weights.keys().find(|b| pod.starts_with(b.as_str())).cloned().unwrap_or(pod.to_owned());
        *by.entry(backend).or_default() += 1;
    }
    eprintln!("measured: {} over {N} requests: {by:?}", fixture.test);
    for (backend, share) in weights {
        let got = by.get(backend).copied().unwrap_or(0);
        let want = binomial_bounds(N as u64, *share);
        if !want.contains(&got) {
            return Err(format!("{backend}: {got} of {N} (want {want:?} for {share})"));
        }
    }
    Ok(())
}

/// Names of the objects in `manifests`.
fn objects(manifests: &str) -> BTreeSet<String> {
    manifests
        .split("\n---")
        .filter_map(|doc| serde_norway::from_str::<Value>(doc).ok())
        .filter_map(|v| v["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// The suite's cluster: pods answering as the conformance echo does, the three Services
/// with the suite's ports.
fn cluster(sb: &mut Sandbox) {
    for (name, ns, version) in PODS {
        let spec = PodSpec::new(name).namespace(ns).label("app", "echo").label("version", version);
        let pod = sb.add_pod(spec).expect("pod");
        pod.serve_http(8080).expect("echo");
        pod.serve_grpc(7070).expect("grpc echo");
    }
    for (name, ip) in SERVICES {
        let selector = match name {
            "echo" => "{app: echo}".to_owned(),
            v => format!("{{app: echo, version: {}}}", &v[5..]),
        };
        sb.add_document(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {MESH}}}\nspec:\n  clusterIP: {ip}\n  selector: {selector}\n  ports:\n  - {{name: http, port: 80, appProtocol: http, targetPort: 8080}}\n  - {{name: http-alt, port: 8080, appProtocol: http}}\n  - {{name: https, port: 443, targetPort: 8443}}\n  - {{name: tcp, port: 9090}}\n  - {{name: grpc, port: 7070, appProtocol: kubernetes.io/h2c}}"
        ));
    }
}

/// Every fixture, by name.
fn fixtures() -> Vec<(String, Fixture)> {
    let dir = fixture("gamma");
    let mut out: Vec<(String, Fixture)> = std::fs::read_dir(&dir)
        .expect("fixtures/gamma")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            let f: Fixture = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), f)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The conformance profile a test belongs to: Mesh-HTTP or Mesh-GRPC core (the profile's
/// own route kind and nothing extended), else extended.
fn profile(f: &Fixture) -> &'static str {
    let only = |kind: &str| f.features.iter().all(|x| x == "Mesh" || x == kind);
    if only("HTTPRoute") {
        "Mesh-HTTP core"
    } else if only("GRPCRoute") {
        "Mesh-GRPC core"
    } else {
        "extended"
    }
}

#[test]
fn the_gateway_api_mesh_conformance_tests_pass_as_the_readme_reports() {
    let Some(p) = privileged("gamma_conformance") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    cluster(&mut sb);
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let mut rows = Vec::new();
    let mut added = false;
    for (file, f) in fixtures() {
        if std::mem::take(&mut added) {
            sb.pop_document();
        }
        if !f.manifests.trim().is_empty() {
            sb.add_document(&f.manifests);
            added = true;
        }
        sb.write_inventory().expect("inventory");
        let want = objects(&f.manifests);
        let loaded = |sb: &Sandbox| {
            let rules = sb.admin().json("/rules").unwrap_or_default();
            let names: BTreeSet<String> = rules
                .as_array()
                .map(|l| l.iter().filter_map(|r| r["name"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            names == want
        };
        graylane_tests::wait_for(&format!("{file}'s routes"), Duration::from_secs(10), || loaded(&sb));
        let mut failures = Vec::new();
        for case in &f.cases {
            if let Err(e) = run_case(&sb, case) {
                failures.push(format!("{}: {e}", case.name));
            }
        }
        let mut total = f.cases.len();
        if let Some(w) = &f.weights {
            total += 1;
            if let Err(e) = run_weights(&sb, &f, w) {
                failures.push(format!("weights: {e}"));
            }
        }
        for fail in &failures {
            eprintln!("{file} ({}): {fail}", f.description);
        }
        rows.push((file, profile(&f), total - failures.len(), total));
    }
    let table: Vec<String> = rows
        .iter()
        .map(|(name, profile, passed, total)| {
            let outcome = if passed == total { "passes" } else { "fails" };
            format!("| {name} | {profile} | {passed}/{total} | {outcome} |")
        })
        .collect();
    eprintln!("measured: GAMMA conformance replay\n{}", table.join("\n"));
    let failed_core: Vec<&str> = rows
        .iter()
        .filter(|(_, profile, p, t)| *profile != "extended" && p != t)
        .map(|(n, ..)| n.as_str())
        .collect();
    assert!(failed_core.is_empty(), "Mesh core tests fail: {failed_core:?}");
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README");
    let missing: Vec<&String> = table.iter().filter(|row| !readme.contains(row.as_str())).collect();
    assert!(missing.is_empty(), "the README's conformance report differs from this run: {missing:#?}");
}
