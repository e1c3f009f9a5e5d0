//! Lanes through real captured connections: header tags, tags inferred from the calling
//! pod, fallback (base, fail fast, chains), tenant isolation, and the trust boundary.

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged};
use serde_json::Value;

const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

fn served_only_by(v: &Value, pod: &str, n: u64) {
    assert_eq!(v["pods"], serde_json::json!({ pod: n }), "{v:#}");
}

/// An `app` service with a base pod (app-v1) and a gray pod (app-v2), and callers.
fn app_sandbox(test: &str) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("gray-client").tag("gray")).expect("gray client");
    sb.add_pod(PodSpec::new("app-v1").label("app", "app")).expect("v1").serve_http(8080).expect("http");
    sb.add_pod(PodSpec::new("app-v2").label("app", "app").tag("gray"))
        .expect("v2")
        .serve_http(8080)
        .expect("http");
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    Some(sb)
}

#[test]
fn a_header_tag_picks_the_gray_subset_and_an_untagged_request_from_a_gray_pod_goes_gray() {
    let Some(mut sb) = app_sandbox("header_and_source_pod_tags") else {
        return;
    };
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let url = format!("http://{APP}/");

    let tagged = sb.pod("client").http_load(&url, 20, &["x-graylane-tag:gray"]).expect("http load");
    served_only_by(&tagged, "app-v2", 20);
    let seen = &tagged["echoes"][0]["headers"];
    assert_eq!(seen["x-graylane-tag"], "gray", "propagated to the next hop");
    assert_eq!(seen["baggage"], "graylane-tag=gray");

    served_only_by(&sb.pod("client").http_load(&url, 20, &[]).expect("http load"), "app-v1", 20);
    let baggage =
        sb.pod("client").http_load(&url, 10, &["baggage:user=7,graylane-tag=gray"]).expect("http load");
    served_only_by(&baggage, "app-v2", 10);
    assert_eq!(baggage["echoes"][0]["headers"]["baggage"], "user=7,graylane-tag=gray");

    // No header at all: the kernel says which pod called, and that pod is gray.
    let inferred = sb.pod("gray-client").http_load(&url, 20, &[]).expect("http load");
    served_only_by(&inferred, "app-v2", 20);
    assert_eq!(inferred["echoes"][0]["headers"]["x-graylane-tag"], "gray");
    let flows = sb.admin().json("/flows").expect("flows");
    let last = flows
        .as_array()
        .expect("flows")
        .iter()
        .rfind(|f| f["src_pod"] == "default/gray-client")
        .expect("flow");
    assert_eq!(last["tag_source"], "source-pod");
    assert_eq!(last["subset"], "gray");
    assert_eq!(last["reason"], "lane");
    assert_eq!(last["requests"], 20);
}

#[test]
fn a_lane_without_endpoints_falls_back_to_base_fails_fast_or_follows_its_chain() {
    let Some(p) = privileged("fallbacks") else {
        return;
    };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("data-v1").label("app", "data")).expect("data").serve_http(8080).expect("http");
    sb.add_pod(PodSpec::new("pay-v1").label("app", "pay")).expect("pay").serve_http(8080).expect("http");
    sb.add_pod(PodSpec::new("shop-base").label("app", "shop")).expect("shop").serve_http(8080).expect("http");
    sb.add_pod(PodSpec::new("shop-v2").label("app", "shop").tag("v2"))
        .expect("shop")
        .serve_http(8080)
        .expect("http");
    let (data, pay, shop) =
        (Ipv4Addr::new(10, 96, 0, 30), Ipv4Addr::new(10, 96, 0, 31), Ipv4Addr::new(10, 96, 0, 32));
    sb.add_service(ServiceSpec::new("data", data).port(80, 8080).select("app", "data"));
    sb.add_service(ServiceSpec::new("pay", pay).port(80, 8080).select("app", "pay"));
    sb.add_service(ServiceSpec::new("shop", shop).port(80, 8080).select("app", "shop"));
    sb.add_document("apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: pay}\nspec: {service: pay, fallback: {mode: fail}}");
    sb.add_document("apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: shop}\nspec: {service: shop, fallback: {mode: chain, chain: [v3, v2, base]}}");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = sb.pod("client");

    // Default: no gray data pod → base.
    served_only_by(
        &client.http_load(&format!("http://{data}/"), 5, &["x-graylane-tag:gray"]).expect("http load"),
        "data-v1",
        5,
    );
    // Fail fast: 503 with the reason, never the base pod.
    let failed = client.http_load(&format!("http://{pay}/"), 5, &["x-graylane-tag:gray"]).expect("http load");
    assert_eq!(failed["status"], serde_json::json!({"503": 5}), "{failed:#}");
    assert_eq!(failed["echoes"][0]["reason"], "subset_unavailable");
    served_only_by(&client.http_load(&format!("http://{pay}/"), 3, &[]).expect("http load"), "pay-v1", 3);
    // Chain v3 → v2 → base: no v3 pod, so v2.
    served_only_by(
        &client.http_load(&format!("http://{shop}/"), 5, &["x-graylane-tag:v3"]).expect("http load"),
        "shop-v2",
        5,
    );
    served_only_by(
        &client.http_load(&format!("http://{shop}/"), 5, &["x-graylane-tag:v2"]).expect("http load"),
        "shop-v2",
        5,
    );
    let flows = sb.admin().json("/flows").expect("flows");
    let reasons: Vec<&str> =
        flows.as_array().expect("flows").iter().filter_map(|f| f["reason"].as_str()).collect();
    assert!(reasons.contains(&"fallback_base") && reasons.contains(&"fallback_chain"), "{reasons:?}");
}

#[test]
fn tenants_stay_isolated_and_cannot_claim_another_tenant() {
    let Some(p) = privileged("tenant_isolation") else {
        return;
    };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("acme-client").tenant("acme")).expect("acme");
    sb.add_pod(PodSpec::new("plain-client")).expect("plain");
    for (name, tenant) in [("s-acme", Some("acme")), ("s-globex", Some("globex")), ("s-shared", None)] {
        let mut spec = PodSpec::new(name).label("app", "s");
        if let Some(t) = tenant {
            spec = spec.tenant(t);
        }
        sb.add_pod(spec).expect("pod").serve_http(8080).expect("http");
    }
    sb.add_pod(PodSpec::new("only-globex").label("app", "g").tenant("globex"))
        .expect("pod")
        .serve_http(8080)
        .expect("http");
    let (s, g) = (Ipv4Addr::new(10, 96, 0, 40), Ipv4Addr::new(10, 96, 0, 41));
    sb.add_service(ServiceSpec::new("s", s).port(80, 8080).select("app", "s"));
    sb.add_service(ServiceSpec::new("g", g).port(80, 8080).select("app", "g"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let url = format!("http://{s}/");

    served_only_by(&sb.pod("acme-client").http_load(&url, 20, &[]).expect("http load"), "s-acme", 20);
    // A pod with a tenant cannot claim another one.
    let spoof = sb.pod("acme-client").http_load(&url, 20, &["x-graylane-tenant:globex"]).expect("http load");
    served_only_by(&spoof, "s-acme", 20);
    assert_eq!(spoof["echoes"][0]["headers"]["x-graylane-tenant"], "acme");
    // A mesh pod without a tenant may carry one (from its caller); untenanted → shared.
    served_only_by(
        &sb.pod("plain-client").http_load(&url, 10, &["x-graylane-tenant:globex"]).expect("http load"),
        "s-globex",
        10,
    );
    served_only_by(&sb.pod("plain-client").http_load(&url, 10, &[]).expect("http load"), "s-shared", 10);
    // No endpoint of its own and none shared: 503, never globex's pod.
    let denied = sb.pod("acme-client").http_load(&format!("http://{g}/"), 5, &[]).expect("http load");
    assert_eq!(denied["status"], serde_json::json!({"503": 5}), "{denied:#}");
    assert_eq!(denied["echoes"][0]["reason"], "tenant_isolation");
}

#[test]
fn lane_headers_from_outside_the_mesh_are_stripped_both_ways_and_entry_rules_color() {
    let Some(mut sb) = app_sandbox("trust_boundary") else {
        return;
    };
    sb.add_pod(PodSpec::new("gateway").label("app", "gateway").annotate("graylane.io/role", "ingress"))
        .expect("gw");
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficLabelRule\nmetadata: {name: beta-users}\n\
         spec:\n  selector: {app: gateway}\n  trafficLabel: gray\n  match:\n  - {type: cookie, key: user, condition: '==', value: alice}",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let url = format!("http://{APP}/");

    // A tag header arriving through the ingress is not trusted: stripped, base served.
    let spoofed = sb
        .pod("gateway")
        .http_load(&url, 10, &["x-graylane-tag:gray", "baggage:graylane-tag=gray"])
        .expect("http load");
    served_only_by(&spoofed, "app-v1", 10);
    let echo = &spoofed["echoes"][0];
    assert!(echo["headers"].get("x-graylane-tag").is_none(), "{echo:#}");
    assert!(echo["headers"].get("baggage").is_none(), "{echo:#}");
    assert!(echo["response_headers"].get("x-graylane-tag").is_none(), "lane headers leak back: {echo:#}");
    // The entry rule colors requests of beta users at the gateway.
    let colored =
        sb.pod("gateway").http_load(&url, 10, &["Cookie:session=1; user=alice"]).expect("http load");
    served_only_by(&colored, "app-v2", 10);
    assert_eq!(colored["echoes"][0]["headers"]["x-graylane-tag"], "gray");
    let flows = sb.admin().json("/flows").expect("flows");
    let last =
        flows.as_array().expect("flows").iter().rfind(|f| f["src_pod"] == "default/gateway").expect("flow");
    assert_eq!(
        (last["tag_source"].as_str(), last["rule"].as_str()),
        (Some("rule"), Some("default/beta-users"))
    );
    // Inside the mesh, the same header is honored and the response keeps its headers.
    let inside = sb.pod("client").http_load(&url, 5, &["x-graylane-tag:gray"]).expect("http load");
    served_only_by(&inside, "app-v2", 5);
    assert_eq!(inside["echoes"][0]["response_headers"]["x-graylane-tag"], "leak-check");
}
