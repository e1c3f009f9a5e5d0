//! Entry points for the fuzz targets (`fuzz/`), also run by `cargo test` over the checked-in
//! corpus and crash reproducers. Each takes arbitrary bytes and must never panic; where a
//! property can be checked (a propagated header parses back to what was sent), it is.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::{
    datapath::socket_addr,
    policy::Registry,
    proxy::{carriers, http::headers},
    routing::{CompiledRoute, RequestView, RoutingTable},
    telemetry::trace,
    vocab::{Lane, TagSource},
};

/// `name: value` lines (lossy) into a header map; invalid names or values are skipped, as
/// hyper would have refused them.
fn header_map(data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.trim_ascii()), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

/// Lane, baggage and trace-context headers: parsed, propagated, parsed back.
pub fn headers(data: &[u8]) {
    let mut map = header_map(data);
    let carried = carriers::read(&map);
    let _ = headers::ambiguous_framing(&map);
    let _ = headers::is_upgrade(&map);
    let lane = Lane {
        tag: carried.tag.map(|(t, _)| t),
        tag_source: TagSource::Header,
        tenant: carried.tenant.map(|(t, _)| t),
        tenant_source: TagSource::Header,
    };
    carriers::write(&mut map, &lane);
    let again = carriers::read(&map);
    assert_eq!(
        (again.tag.map(|(t, _)| t), again.tenant.map(|(t, _)| t)),
        (lane.tag.clone(), lane.tenant.clone()),
        "a propagated lane reads back"
    );
    let hop = trace::Hop::start(&map, || true);
    trace::request_id(&mut map);
    hop.inject(&mut map);
    let back = trace::extract(&map).expect("an injected traceparent parses");
    assert_eq!((back.trace_id, back.parent_span_id), (hop.trace_id, hop.span_id));
    headers::strip_hop_by_hop(&mut map, false);
    carriers::strip(&mut map);
    assert_eq!(carriers::read(&map), carriers::Carried::default(), "a stripped request carries no lane");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = trace::parse_traceparent(text);
        let _ = trace::parse_b3_single(text);
    }
}

/// Inventory and CRD YAML: loaded, and when valid compiled into a routing table.
pub fn inventory(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(snapshot) = crate::inventory::load_str(&text) {
        let _ = RoutingTable::build(&snapshot, &Registry::default());
    }
}

/// A route (YAML) matched against a request: `route \0 method \0 path?query \0 headers`.
pub fn route(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == 0);
    let (Some(spec), Some(method), Some(target)) = (parts.next(), parts.next(), parts.next()) else { return };
    let map = header_map(parts.next().unwrap_or_default());
    let Ok(route) = serde_norway::from_str::<crate::inventory::policy::Route>(&String::from_utf8_lossy(spec))
    else {
        return;
    };
    let Ok(compiled) = CompiledRoute::compile(&route, 0, None) else { return };
    let method = Method::from_bytes(method).unwrap_or(Method::GET);
    let target = String::from_utf8_lossy(target);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*target, None),
    };
    let _ = compiled.matches(&RequestView { method: &method, path, query, headers: &map });
}

/// The inventory the request-sequence target routes against: base, gray and tenant pods,
/// routes with regexes and weights, a rate limit, a subset breaker, a fallback chain and a
/// coloring rule.
const MESH: &str = include_str!("fuzzing/mesh.yaml");

/// A sequence of requests through the proxy's in-memory request path (no I/O): lane
/// resolution (headers, rules, source pod), route match, subset and endpoint choice under
/// breakers, rate-limit keys and budgets, breaker outcomes. Requests are separated by
/// `0xff`; in each, the first byte picks the calling pod, the method and the outcome, then
/// `path?query` up to a newline, then header lines.
pub fn requests(data: &[u8]) {
    use std::{net::SocketAddr, sync::Arc, time::Duration};

    use crate::{
        proxy::{ConnContext, ProxyState, plan},
        telemetry::{
            ConnTelemetry,
            flows::{FlowStart, Flows},
        },
        vocab::{ClientAddr, OrigDstAddr},
    };

    // Parsed once; the routing table (with its budgets and breakers) is fresh per input, so
    // a reproducer replays alone.
    static SNAPSHOT: std::sync::LazyLock<Arc<crate::inventory::Snapshot>> = std::sync::LazyLock::new(|| {
        let Ok(s) = crate::inventory::load_str(MESH) else { panic!("the fuzz mesh is valid") };
        Arc::new(s)
    });
    let registry = Registry::default();
    let state = ProxyState::new(SNAPSHOT.clone(), crate::datapath::Names::default(), &registry);
    let flows = Flows::new(16);
    let vip: SocketAddr = ([10, 96, 0, 20], 80).into();
    for req in data.split(|b| *b == 0xff).take(64) {
        let Some((&first, rest)) = req.split_first() else { continue };
        let src = ["default/client", "default/gateway", "default/acme-client", "default/unknown"]
            [usize::from(first & 3)];
        let method =
            [Method::GET, Method::POST, Method::PUT, Method::DELETE][usize::from((first >> 2) & 3)].clone();
        let ok = first & 0x10 == 0;
        // Some requests go to a pod IP instead of the service.
        let dst = if first & 0x20 == 0 { vip } else { ([10, 244, 0, 20 + (first >> 6)], 8080).into() };
        let (target, head) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let target = String::from_utf8_lossy(target);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (&*target, None),
        };
        let map = header_map(head);
        let client = ClientAddr(([10, 244, 0, 10], 40000).into());
        let flow = flows.open(
            FlowStart {
                client,
                orig_dst: OrigDstAddr(dst),
                src_pod: Some(src.to_owned()),
                src_cgroup: 0,
                tag: None,
                tenant: None,
                source_ip: Some("node"),
                source_fallback: None,
            },
            "http1",
        );
        let conn = ConnContext {
            client,
            orig_dst: OrigDstAddr(dst),
            src_pod: Some(Arc::from(src)),
            record_tag: None,
            record_tenant: None,
            telemetry: ConnTelemetry::new(
                flow,
                state.labels.workload(Some(src)),
                client.0,
                Some(Arc::from(src)),
            ),
            origin: crate::proxy::Origin::Node,
        };
        let view = RequestView { method: &method, path, query, headers: &map };
        // The proxy's own decision, exactly as a request would get it.
        let planned = plan::plan(&state, &conn, Some(&view), &plan::NoMemory);
        if let Some(limit) = planned.policy.as_ref().and_then(|p| p.limit.as_ref()) {
            let key = crate::policy::limit_key(&limit.cfg, &planned.lane, Some(src), &map);
            let _ = limit.local.admit(&key);
        }
        let Ok(target) = &planned.target else { continue };
        if let Some(tenant) = &planned.lane.tenant {
            let dst_tenant = match &target.decision {
                Some(d) => d.endpoint.tenant.clone(),
                None => state.snapshot.pod_by_ip(target.endpoint.0.ip()).and_then(|p| p.tenant.clone()),
            };
            assert!(dst_tenant.as_ref().is_none_or(|t| t == tenant), "never another tenant's endpoint");
        }
        if let (Some(p), Some(d)) = (&planned.policy, &target.decision) {
            p.record(d.endpoint.addr, Some(&d.subset), ok, Duration::ZERO);
            let _ = planned.repick(target.endpoint);
        }
    }
}

/// A kernel connect event / original-destination record from raw bytes.
pub fn record(data: &[u8]) {
    if let Some(e) = graylane_common::ConnectEvent::decode(data) {
        let addr = socket_addr(&e.record.addr, e.record.port);
        assert_eq!(addr.port(), e.record.port);
    }
}

/// Feeds a data-lane codec a client stream and a server stream (the first byte says where
/// `data` splits into the two), once whole and once in three pieces each: it never panics,
/// and the two runs end alike — both with the same bytes, or both with the same error
/// (framing does not depend on how reads fall).
fn data_codec(data: &[u8], make: &dyn Fn() -> Box<dyn crate::stores::Codec>) {
    use bytes::BytesMut;
    let Some((&first, rest)) = data.split_first() else { return };
    let cut = usize::from(first) * rest.len() / 256;
    let (client, server) = rest.split_at(cut);
    let run = |pieces: usize| -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut codec = make();
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        let (mut cin, mut sin) = (BytesMut::new(), BytesMut::new());
        for chunk in client.chunks(client.len().div_ceil(pieces).max(1)) {
            cin.extend_from_slice(chunk);
            codec.client(&mut cin, &mut up, &mut down).map_err(|e| e.to_string())?;
        }
        for chunk in server.chunks(server.len().div_ceil(pieces).max(1)) {
            sin.extend_from_slice(chunk);
            codec.server(&mut sin, &mut down, &mut up).map_err(|e| e.to_string())?;
            // What the client sent may have waited for the server (a login), as the relay does.
            if !cin.is_empty() {
                codec.client(&mut cin, &mut up, &mut down).map_err(|e| e.to_string())?;
            }
        }
        Ok((up.to_vec(), down.to_vec()))
    };
    let (whole, split) = (run(1), run(3));
    assert_eq!(whole, split, "the same streams read in other pieces end alike");
}

/// Redis (RESP2/3) for a lane with `onUnsupported: reject` or `passthrough`.
pub fn redis(data: &[u8]) {
    let reject = data.len().is_multiple_of(2);
    data_codec(data, &|| Box::new(crate::stores::redis::Redis::new(b"shadow:", "stress", reject)));
}

/// MySQL client protocol for a lane (handshake, authentication, commands and SQL).
pub fn mysql(data: &[u8]) {
    let reject = data.len().is_multiple_of(2);
    data_codec(data, &|| {
        Box::new(crate::stores::mysql::Mysql::new(
            "stress",
            Some("_shadow".into()),
            std::collections::BTreeMap::from([("billing".to_owned(), "billing_s".to_owned())]),
            reject,
            None,
            None,
        ))
    });
}

/// AMQP 0-9-1 for a lane, with a store account (its handshake read, the rest passed).
pub fn amqp(data: &[u8]) {
    let account = std::sync::Arc::new(crate::inventory::accounts::Credentials {
        username: "stress".into(),
        password: b"s".to_vec(),
        secret: "fuzz/amqp".into(),
    });
    data_codec(data, &|| {
        Box::new(crate::stores::amqp::Amqp::new("stress", "stress", Some(account.clone()), None))
    });
}

/// NATS for a lane and for a base connection.
pub fn nats(data: &[u8]) {
    if data.len().is_multiple_of(2) {
        data_codec(data, &|| {
            Box::new(crate::stores::nats::Nats::lane(crate::stores::nats::LaneNats {
                name: "gray",
                prefix: "gray.",
                queue_suffix: Some("-gray"),
                reject: true,
                account: None,
                refuse: None,
            }))
        });
    } else {
        data_codec(data, &|| Box::new(crate::stores::nats::Nats::base(&["gray.".to_owned()])));
    }
}

/// The kernel's lane routes against the proxy's planner, on an inventory the bytes write:
/// endpoint pods with tags and tenants, a fallback, a load balancer, sometimes a data lane
/// or a breaker, and a caller in every (tag, tenant) lane. For each Service port and
/// caller, the route compiled for the kernel (lowered to its map value and drawn from as
/// the connect hook draws) must give exactly the endpoints the planner picks for an opaque
/// connection, with its subset and reason, or refuse where the planner refuses, for the
/// same reason; a port left to the proxy must have a reason to be.
pub fn kernel_lanes(data: &[u8]) {
    use std::{collections::BTreeSet, fmt::Write as _, net::SocketAddr, sync::Arc};

    use crate::{
        datapath::{KernelLane, KernelLaneKey, lane_key, lane_route},
        proxy::{ConnContext, ErrorKind, ProxyState, plan},
        routing::kernel::{compile, lane_reason_name},
        telemetry::{
            ConnTelemetry,
            flows::{FlowStart, Flows},
        },
        vocab::{ClientAddr, OrigDstAddr},
    };

    const TAGS: [Option<&str>; 4] = [None, Some("gray"), Some("v2"), Some("stress")];
    const TENANTS: [Option<&str>; 3] = [None, Some("acme"), Some("globex")];
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next().unwrap_or(0);
    let mut yaml = String::new();
    let pod = |yaml: &mut String,
               name: &str,
               app: &str,
               ip: &str,
               tag: Option<&str>,
               tenant: Option<&str>| {
        let mut notes = Vec::new();
        notes.extend(tag.map(|t| format!("graylane.io/tag: {t}")));
        notes.extend(tenant.map(|t| format!("graylane.io/tenant: {t}")));
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: {app}}}, annotations: {{{}}}}}\nstatus: {{podIP: {ip}}}\n",
            notes.join(", ")
        );
    };
    // Callers: one pod per lane.
    let mut callers = Vec::new();
    for (i, tag) in TAGS.iter().enumerate() {
        for (j, tenant) in TENANTS.iter().enumerate() {
            let name = format!("c{i}{j}");
            pod(&mut yaml, &name, "client", &format!("10.244.0.{}", 10 + i * 3 + j), *tag, *tenant);
            callers.push((format!("default/{name}"), tag.map(str::to_owned), tenant.map(str::to_owned)));
        }
    }
    // Two Services over the same pods: `db` (opaque TCP) and `web` (HTTP, never the kernel's).
    let endpoints = usize::from(next() % 9);
    for e in 0..endpoints {
        let b = next();
        let tag = TAGS[usize::from(b & 3)];
        let tenant = TENANTS[usize::from((b >> 2) & 3) % 3];
        pod(&mut yaml, &format!("ep{e}"), "db", &format!("10.244.1.{e}"), tag, tenant);
    }
    for (name, ip, port) in [("db", "10.96.0.30", "tcp-db"), ("web", "10.96.0.31", "http")] {
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  clusterIP: {ip}\n  selector: {{app: db}}\n  ports: [{{name: {port}, port: 5432, targetPort: 5432}}]\n"
        );
    }
    let b = next();
    // Round robin visits every endpoint in as many picks as there are: with it the planner's
    // picks must be all of the kernel's; with random draws, among them.
    let round_robin = b & 1 == 0 || (b >> 4) & 3 == 0;
    if b & 1 == 1 {
        let mode = ["base", "fail", "chain", "base"][usize::from((b >> 1) & 3)];
        let isolated = if b & 8 == 0 { "[stress]" } else { "[]" };
        let chain = if mode == "chain" { "[v2, gray, base]" } else { "[]" };
        let lb = [
            "{policy: roundRobin}",
            "{policy: random}",
            "{policy: leastRequest}",
            "{policy: ringHash, hashOn: {sourceIp: true}}",
        ][usize::from((b >> 4) & 3)];
        let extra = match b >> 6 {
            1 => "  circuitBreaker: {consecutiveFailures: 3, openFor: 1s}\n",
            2 => "  dataLanes:\n    protocol: redis\n    lanes: [{lane: gray, keyPrefix: 'gray:'}]\n",
            _ => "",
        };
        let _ = write!(
            yaml,
            "---\napiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: db, namespace: default}}\nspec:\n  service: db\n  fallback: {{mode: {mode}, chain: {chain}, isolated: {isolated}}}\n  loadBalancer: {lb}\n{extra}"
        );
    }
    let snapshot = match crate::inventory::load_str(&yaml) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the generated inventory is valid: {e}\n{yaml}"),
    };
    let registry = Registry::default();
    let state = ProxyState::new(snapshot, crate::datapath::Names::default(), &registry);
    let lanes: BTreeSet<_> = callers.iter().map(|(_, t, n)| (t.clone(), n.clone())).collect();
    let compiled = compile(&state.routing, &lanes);
    let flows = Flows::new(4);
    for vip in [SocketAddr::from(([10, 96, 0, 30], 5432)), SocketAddr::from(([10, 96, 0, 31], 5432))] {
        let Some(svc) = state.routing.service(vip) else { panic!("{vip} is a service") };
        for (src, tag, tenant) in &callers {
            let key = KernelLaneKey { service: vip, tag: tag.clone(), tenant: tenant.clone() };
            // The planner, as the proxy plans an opaque connection from this pod (enough
            // times for round robin to visit every endpoint).
            let client = ClientAddr(([10, 244, 0, 10], 40000).into());
            let start = FlowStart {
                client,
                orig_dst: OrigDstAddr(vip),
                src_pod: Some(src.clone()),
                src_cgroup: 0,
                tag: tag.clone(),
                tenant: tenant.clone(),
                source_ip: None,
                source_fallback: None,
            };
            let conn = ConnContext {
                client,
                orig_dst: OrigDstAddr(vip),
                src_pod: Some(Arc::from(src.as_str())),
                record_tag: tag.clone(),
                record_tenant: tenant.clone(),
                telemetry: ConnTelemetry::new(flows.open(start, "tcp"), Arc::from("w"), client.0, None),
                origin: crate::proxy::Origin::Node,
            };
            let plans: Vec<_> = (0..64).map(|_| plan::plan(&state, &conn, None, &plan::NoMemory)).collect();
            let picked: BTreeSet<SocketAddr> =
                plans.iter().filter_map(|p| p.target.as_ref().ok()).map(|t| t.endpoint.0).collect();
            match compiled.get(&key) {
                Some(lane @ KernelLane::Route { subset, reason, endpoints }) => {
                    let lowered = lane_route(lane, 1);
                    let drawn: BTreeSet<SocketAddr> = (0..256u32)
                        .filter_map(|r| lowered.pick(r))
                        .map(|b| crate::datapath::socket_addr(&b.addr, b.port))
                        .collect();
                    let listed: BTreeSet<SocketAddr> = endpoints.iter().copied().collect();
                    assert_eq!(drawn, listed, "{src} → {vip}: the kernel draws every endpoint of its route");
                    assert!(
                        picked.is_subset(&drawn),
                        "{src} → {vip}: the planner picked outside the kernel's endpoints\n{yaml}"
                    );
                    if round_robin {
                        assert_eq!(
                            drawn, picked,
                            "{src} → {vip}: kernel and planner pick from the same endpoints\n{yaml}"
                        );
                    }
                    // The key the hook looks up: the Service's address and port, the ids.
                    let k = lane_key(&key, 7, 9);
                    assert_eq!(
                        (crate::datapath::socket_addr(&k.service, k.port), k.tag_id, k.tenant_id),
                        (vip, 7, 9)
                    );
                    for p in &plans {
                        let Ok(t) = &p.target else {
                            panic!("{src} → {vip}: the planner refused, the kernel routes")
                        };
                        let Some(d) = &t.decision else { panic!("a service decision") };
                        assert_eq!(
                            (&*d.subset, d.reason.as_str()),
                            (subset.as_str(), lane_reason_name(*reason))
                        );
                    }
                }
                Some(KernelLane::Refuse { reason, .. }) => {
                    for p in &plans {
                        let Err(e) = &p.target else {
                            panic!("{src} → {vip}: the kernel refuses, the planner routes\n{yaml}")
                        };
                        let kind = match e.kind {
                            ErrorKind::TenantIsolation => "tenant_isolation",
                            ErrorKind::SubsetUnavailable => "subset_unavailable",
                            ErrorKind::NoEndpoints => "no_endpoints",
                            _ => "other",
                        };
                        assert_eq!(kind, lane_reason_name(*reason), "{src} → {vip}: {e}");
                    }
                }
                None => {
                    let why = svc.kernel_lane(&(tag.clone(), tenant.clone()));
                    assert!(why.is_err(), "{src} → {vip}: routable but not compiled");
                }
            }
            // A connection that goes through the store's codec never is the kernel's: the
            // proxy's own decision (`stores::codec`) against the kernel's eligibility.
            if let Some(rules) = &svc.data
                && svc.kernel_routable().is_ok()
            {
                let codec = crate::stores::codec(rules, rules.lane(tag.as_deref()), None).is_some();
                let proxied = matches!(
                    svc.kernel_lane(&(tag.clone(), tenant.clone())),
                    Err(crate::routing::kernel::ProxyNeeded::DataLane)
                );
                assert_eq!(
                    codec, proxied,
                    "{src} → {vip}: a data-lane codec decides who stays with the proxy"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The kernel-lane differential over 500 inventories from a seeded generator (besides
    /// the corpus and what `cargo xtask fuzz` finds).
    #[test]
    fn kernel_lanes_agree_with_the_planner_on_generated_inventories() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..500 {
            let input: Vec<u8> = (0..12)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            super::kernel_lanes(&input);
        }
    }

    /// Every checked-in corpus input and crash reproducer still runs clean.
    #[test]
    fn the_fuzz_corpus_replays_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 10] = [
            ("headers", super::headers),
            ("requests", super::requests),
            ("inventory", super::inventory),
            ("route", super::route),
            ("record", super::record),
            ("redis", super::redis),
            ("mysql", super::mysql),
            ("nats", super::nats),
            ("amqp", super::amqp),
            ("kernel_lanes", super::kernel_lanes),
        ];
        for (name, run) in targets {
            let corpus = root.join("corpus").join(name);
            let entries = std::fs::read_dir(&corpus).unwrap_or_else(|e| {
                panic!("{}: the corpus is checked in under fuzz/corpus: {e}", corpus.display())
            });
            let mut ran = 0;
            for e in entries.flatten() {
                run(&std::fs::read(e.path()).expect("corpus file"));
                ran += 1;
            }
            assert!(ran > 0, "{}: an empty corpus", corpus.display());
            // Crash reproducers, when there are any.
            for e in std::fs::read_dir(root.join("artifacts").join(name)).into_iter().flatten().flatten() {
                run(&std::fs::read(e.path()).expect("artifact"));
            }
        }
    }
}
