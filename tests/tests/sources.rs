//! Both inventory sources drive the same kernel and routing state. The Kubernetes source
//! runs against an in-test API server that speaks list/watch (resourceVersions, ADDED /
//! MODIFIED / DELETED, BOOKMARK, a 410 that forces a relist, dropped connections); the file
//! source keeps serving its last good snapshot when a file breaks.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use graylane_tests::{Admin, AgentOptions, Pod, PodSpec, Sandbox, ServiceSpec, privileged, wait_for};
use serde_json::Value;

const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

fn served_by(pod: &Pod, headers: &[&str]) -> Value {
    pod.http_load(&format!("http://{APP}/"), 5, headers).expect("http load")["pods"].clone()
}

fn kernel_tag(admin: &Admin, pod: &str) -> Option<String> {
    let tags = admin.json("/tags").ok()?;
    tags.as_array()?
        .iter()
        .find(|t| t["pod"] == format!("default/{pod}") && t["cgroup_id"].is_u64())
        .map(|t| t["tag"].as_str().unwrap_or("").to_owned())
}

fn app_sandbox(test: &str) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("app-v1").label("app", "app")).expect("v1").serve_http(8080).expect("http");
    sb.add_pod(PodSpec::new("app-v2").label("app", "app").tag("gray"))
        .expect("v2")
        .serve_http(8080)
        .expect("http");
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    Some(sb)
}

/// Changes the client's tag through `apply` and returns how long the kernel took to show it.
fn retag(sb: &mut Sandbox, tag: Option<&str>, apply: impl FnOnce(&Sandbox), timeout: Duration) -> Duration {
    sb.annotate("client", "graylane.io/tag", tag).expect("annotate");
    let admin = sb.admin();
    let start = Instant::now();
    apply(sb);
    wait_for("the kernel to show the new tag", timeout, || {
        kernel_tag(&admin, "client").as_deref() == Some(tag.unwrap_or(""))
    });
    start.elapsed()
}

#[test]
fn the_kubernetes_source_follows_the_api_server_through_expiry_drops_and_bad_objects() {
    let Some(mut sb) = app_sandbox("kube_source") else { return };
    // The API server comes up 1.5 s late: the agent must not be ready before it synced.
    let kubeconfig = sb.start_fake_apiserver(1500).expect("fake apiserver");
    let opts = AgentOptions { kubeconfig: Some(kubeconfig), ..Default::default() };
    let ready_after = match sb.start_agent(&opts) {
        Ok(t) => t,
        Err(e) => panic!("{e}\nfake apiserver:\n{}", sb.node_log(0)),
    };
    assert!(ready_after >= Duration::from_millis(1400), "ready before the first sync: {ready_after:?}");
    assert!(sb.agent_log().contains("waiting for the first full sync"), "{}", sb.agent_log());
    let api = sb.node_http(6443);
    let reload = |sb: &Sandbox| {
        sb.node_http(6443).get("/_test/reload").expect("reload");
    };

    // Routing from Kubernetes objects (EndpointSlices give the endpoints).
    assert_eq!(served_by(sb.pod("client"), &[]), serde_json::json!({"app-v1": 5}));
    assert_eq!(served_by(sb.pod("client"), &["x-graylane-tag:gray"]), serde_json::json!({"app-v2": 5}));

    // An annotation change flips the kernel entry and the routing decision.
    let mut took = Vec::new();
    for tag in [Some("gray"), None, Some("gray")] {
        took.push(retag(&mut sb, tag, reload, Duration::from_secs(2)));
    }
    eprintln!("measured: kubernetes annotation change → kernel map + routing table: {:?}", took);
    assert!(took.iter().all(|t| *t <= Duration::from_millis(100)), "{took:?}");
    assert_eq!(
        served_by(sb.pod("client"), &[]),
        serde_json::json!({"app-v2": 5}),
        "the inferred lane follows the annotation"
    );

    // 410 Gone: the watcher relists and keeps following.
    let lists_before = api.json("/_test/stats").expect("stats")["list"]["Pod"].as_u64().unwrap_or(0);
    api.get("/_test/expire").expect("expire");
    let admin_api = api.clone();
    wait_for("a relist after 410", Duration::from_secs(10), || {
        let s = admin_api.json("/_test/stats").unwrap_or_default();
        s["expired"].as_u64().unwrap_or(0) >= 1 && s["list"]["Pod"].as_u64().unwrap_or(0) > lists_before
    });
    retag(&mut sb, None, reload, Duration::from_secs(5));

    // Dropped watch connections: reconnect and keep following.
    api.get("/_test/drop").expect("drop");
    retag(&mut sb, Some("gray"), reload, Duration::from_secs(15));
    api.get("/_test/bookmark").expect("bookmark");
    retag(&mut sb, None, reload, Duration::from_secs(5));

    // An invalid object is skipped and named; everything else keeps working.
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: broken}\n\
         spec: {service: app, routes: [{match: {path: {regex: '('}}, destinations: [{subset: gray}]}]}",
    );
    retag(&mut sb, Some("gray"), reload, Duration::from_secs(5));
    // Each watch reconnects on its own backoff after the drop; wait for the report.
    wait_for("the invalid policy to be reported", Duration::from_secs(40), || {
        let log = sb.agent_log();
        log.contains("TrafficPolicy default/broken") && log.contains("spec.routes[0].match.path.regex")
    });
    assert_eq!(served_by(sb.pod("client"), &[]), serde_json::json!({"app-v2": 5}));
}

#[test]
fn a_broken_inventory_file_keeps_the_last_good_snapshot_serving() {
    let Some(mut sb) = app_sandbox("file_source_broken") else { return };
    sb.start_agent(&AgentOptions::default()).expect("agent");
    assert_eq!(served_by(sb.pod("client"), &[]), serde_json::json!({"app-v1": 5}));
    let path = sb.inventory_path();
    let good = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, format!("{good}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: [broken\n"))
        .expect("write");
    let admin = sb.admin();
    wait_for("the reload to be rejected", Duration::from_secs(5), || {
        sb.agent_log().contains("reload rejected")
    });
    assert_eq!(admin.get("/readyz").expect("readyz").0, 200);
    assert_eq!(
        served_by(sb.pod("client"), &[]),
        serde_json::json!({"app-v1": 5}),
        "still serving the last good snapshot"
    );
    // A good file again: changes apply.
    let took = retag(&mut sb, Some("gray"), |_| {}, Duration::from_secs(2));
    eprintln!("measured: file annotation change → kernel map + routing table: {} ms", took.as_millis());
    assert_eq!(served_by(sb.pod("client"), &[]), serde_json::json!({"app-v2": 5}));
}

#[test]
fn the_kubernetes_source_watches_the_other_rule_languages_and_writes_httproute_status() {
    let Some(p) = privileged("kube_languages") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    for v in ["v1", "v2"] {
        sb.add_pod(PodSpec::new(&format!("app-{v}")).label("app", "app").label("version", v))
            .expect("app")
            .serve_http(8080)
            .expect("http");
    }
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    sb.add_service(
        ServiceSpec::new("app-v2", Ipv4Addr::new(10, 96, 0, 21))
            .named_port(80, 8080, "http")
            .select("app", "app")
            .select("version", "v2"),
    );
    let route = |name: &str, path: &str, backend: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
             parentRefs: [{{group: \"\", kind: Service, name: app}}]\n  rules:\n  \
             - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n    backendRefs: [{{name: {backend}, port: 80}}]\n"
        )
    };
    sb.add_document(&route("canary", "/canary", "app-v2"));
    sb.add_document(&route("broken", "/missing", "nowhere"));
    sb.add_document(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: app}\nspec:\n  host: app\n  \
         trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}, tls: {mode: ISTIO_MUTUAL}}\n",
    );
    let kubeconfig = sb.start_fake_apiserver(0).expect("fake apiserver");
    let opts = AgentOptions { kubeconfig: Some(kubeconfig), ..Default::default() };
    if let Err(e) = sb.start_agent(&opts) {
        panic!("{e}\nfake apiserver:\n{}", sb.node_log(0));
    }
    let log = sb.agent_log();
    assert!(log.contains("rule languages: watching") && log.contains("HTTPRoute"), "{log}");

    // The routes route.
    let client = sb.pod("client");
    let canary = client.http_load(&format!("http://{APP}/canary/x"), 20, &[]).expect("load");
    assert_eq!(canary["pods"], serde_json::json!({"app-v2": 20}), "{canary:#}");
    let missing = client.http_load(&format!("http://{APP}/missing"), 5, &[]).expect("load");
    assert_eq!(missing["status"]["500"], 5, "a rule whose backends do not resolve answers 500: {missing:#}");

    // How each object was taken, and the HTTPRoute status every Gateway API tool reads.
    let rules = sb.admin().json("/rules").expect("rules");
    let dr = rules.as_array().and_then(|l| l.iter().find(|r| r["kind"] == "DestinationRule").cloned());
    assert_eq!(
        dr.map(|r| r["unsupported"].clone()),
        Some(serde_json::json!(["spec.trafficPolicy.tls"])),
        "{rules:#}"
    );
    let api = sb.node_http(6443);
    let status_of = |name: &str| {
        let o = api
            .json(&format!("/_test/object?type=gateway.networking.k8s.io/HTTPRoute&ns=default&name={name}"))
            .unwrap_or_default();
        o["status"]["parents"].clone()
    };
    wait_for("both HTTPRoutes to carry status", Duration::from_secs(10), || {
        status_of("canary").is_array() && status_of("broken").is_array()
    });
    let canary = status_of("canary");
    assert_eq!(canary[0]["controllerName"], "graylane.io/agent", "{canary:#}");
    assert_eq!(canary[0]["parentRef"]["name"], "app");
    let conditions = |p: &Value| -> Vec<(String, String, String)> {
        p[0]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["type"].to_string(), c["status"].to_string(), c["reason"].to_string()))
            .collect()
    };
    assert_eq!(
        conditions(&canary),
        [
            ("\"Accepted\"".into(), "\"True\"".into(), "\"Accepted\"".into()),
            ("\"ResolvedRefs\"".into(), "\"True\"".into(), "\"ResolvedRefs\"".into())
        ]
    );
    assert_eq!(conditions(&status_of("broken"))[1].2, "\"BackendNotFound\"");
    // Written once each: a status write (a MODIFIED event) does not trigger another.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(api.json("/_test/stats").expect("stats")["status_patches"], 2);
}
