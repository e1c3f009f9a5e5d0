//! The rule languages users already have, with real traffic: the seeds' own Istio
//! (seed 004) and OpenSergo (seed 001) YAML unchanged, and the Gateway API canary
//! examples, route and limit requests between real pods as their documents say.

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, binomial_bounds, privileged};
use serde_json::Value;

const SPRINGBOOT: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);
const REVIEWS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 31);
const RATINGS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 32);
const MY_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 33);
const FOO_APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 40);
const PROVIDER: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 41);
const FOO: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 50);
const PAY: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 60);
const CART: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 61);

fn count(v: &Value, pod: &str) -> u64 {
    v["pods"][pod].as_u64().unwrap_or(0)
}

fn status(v: &Value, code: u16) -> u64 {
    v["status"][code.to_string()].as_u64().unwrap_or(0)
}

fn serve(sb: &mut Sandbox, spec: PodSpec) {
    sb.add_pod(spec).expect("pod").serve_http(8080).expect("http");
}

#[test]
fn the_seeds_istio_rules_split_match_and_honour_source_labels_and_lanes() {
    let Some(p) = privileged("istio_seed") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client").label("app", "tester")).expect("client");
    sb.add_pod(PodSpec::new("other")).expect("other");
    serve(&mut sb, PodSpec::new("app-v1").label("app", "springboot").label("version", "v1"));
    serve(&mut sb, PodSpec::new("app-v2").label("app", "springboot").label("version", "v2"));
    serve(&mut sb, PodSpec::new("app-gray").label("app", "springboot").label("version", "v2").tag("gray"));
    serve(&mut sb, PodSpec::new("reviews-v2").label("app", "reviews").label("version", "v2"));
    serve(&mut sb, PodSpec::new("reviews-v3").label("app", "reviews").label("version", "v3"));
    sb.add_service(
        ServiceSpec::new("springboot-app-svc", SPRINGBOOT)
            .named_port(80, 8080, "http")
            .select("app", "springboot"),
    );
    sb.add_service(
        ServiceSpec::new("reviews", REVIEWS).named_port(80, 8080, "http").select("app", "reviews"),
    );
    sb.add_service(
        ServiceSpec::new("ratings", RATINGS).named_port(80, 8080, "http").select("app", "reviews"),
    );
    for (name, version) in [("my-v1", "v1"), ("my-v3a", "v3"), ("my-v3b", "v3")] {
        serve(&mut sb, PodSpec::new(name).label("app", "my").label("version", version));
    }
    sb.add_service(ServiceSpec::new("my-svc", MY_SVC).named_port(80, 8080, "http").select("app", "my"));
    // Seed 004's DestinationRule, unchanged: RANDOM for the service, a cookie ring in v3.
    sb.add_document(include_str!("../../deploy/examples/languages/istio-destinationrule.yaml"));
    // Seed 004's VirtualServices, unchanged, and the DestinationRules that define their subsets.
    sb.add_document(include_str!("../../deploy/examples/languages/istio-weights.yaml"));
    sb.add_document(include_str!("../../deploy/examples/languages/istio-reviews-jason.yaml"));
    for (name, host) in [("springboot", "springboot-app-svc"), ("reviews", "reviews"), ("ratings", "ratings")]
    {
        sb.add_document(&format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec:\n  host: {host}\n  \
             subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n  - {{name: v3, labels: {{version: v3}}}}\n"
        ));
    }
    sb.add_document(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\nspec:\n  hosts: [ratings]\n  http:\n  \
         - match: [{sourceLabels: {app: tester}}]\n    route: [{destination: {host: ratings, subset: v2}}]\n  \
         - route: [{destination: {host: ratings, subset: v3}}]\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = sb.pod("client");

    // 20/80 over 4,000 requests: v1's count within the binomial bounds at a 1e-6
    // false-failure rate (676..=924), which a 15/85 split (600 expected) misses.
    let split = client.http_load(&format!("http://{SPRINGBOOT}/"), 4000, &[]).expect("load");
    let v1 = count(&split, "app-v1");
    let v2 = count(&split, "app-v2") + count(&split, "app-gray");
    eprintln!("measured: seed 004 20/80 split over 4000 requests: v1 {v1}, v2 {v2}");
    assert_eq!(v1 + v2, 4000, "{split:#}");
    let want = binomial_bounds(4000, 0.2);
    assert!(want.contains(&v1), "v1 got {v1} of 4000, want {want:?}: {split:#}");

    // A lane outranks the weights: gray requests all reach the gray pod.
    let gray =
        client.http_load(&format!("http://{SPRINGBOOT}/"), 100, &["x-graylane-tag:gray"]).expect("load");
    assert_eq!(count(&gray, "app-gray"), 100, "{gray:#}");

    // end-user: jason → v2; everyone else → v3.
    let jason = client.http_load(&format!("http://{REVIEWS}/"), 50, &["end-user:jason"]).expect("load");
    assert_eq!(count(&jason, "reviews-v2"), 50, "{jason:#}");
    let anyone = client.http_load(&format!("http://{REVIEWS}/"), 50, &["end-user:mary"]).expect("load");
    assert_eq!(count(&anyone, "reviews-v3"), 50, "{anyone:#}");

    // sourceLabels: graylane knows the calling pod.
    let tester = client.http_load(&format!("http://{RATINGS}/"), 30, &[]).expect("load");
    assert_eq!(count(&tester, "reviews-v2"), 30, "{tester:#}");
    let other = sb.pod("other").http_load(&format!("http://{RATINGS}/"), 30, &[]).expect("load");
    assert_eq!(count(&other, "reviews-v3"), 30, "{other:#}");

    // The seed's DestinationRule: random over every pod; in subset v3 (here picked by a lane
    // of that name) the `user` cookie keeps a user on one pod.
    let spread = client.http_load(&format!("http://{MY_SVC}/"), 300, &[]).expect("load");
    eprintln!("measured: seed 004 RANDOM over 300 requests: {}", spread["pods"]);
    let want = binomial_bounds(300, 1.0 / 3.0);
    assert!(
        ["my-v1", "my-v3a", "my-v3b"].iter().all(|p| want.contains(&count(&spread, p))),
        "{want:?}: {spread:#}"
    );
    let mut homes = Vec::new();
    for user in ["alice", "bob", "carol", "dave"] {
        let cookie = format!("cookie:user={user}");
        let v = client
            .http_load(&format!("http://{MY_SVC}/"), 20, &["x-graylane-tag:v3", &cookie])
            .expect("load");
        let pods = v["pods"].as_object().cloned().unwrap_or_default();
        assert_eq!(pods.len(), 1, "{user} stays on one v3 pod: {v:#}");
        assert!(pods.keys().all(|p| p.starts_with("my-v3")), "{v:#}");
        homes.extend(pods.keys().cloned());
    }
    eprintln!("measured: seed 004 v3 cookie ring, users alice bob carol dave on {homes:?}");

    // Where each service's routing comes from, and how each object was taken.
    let routes = sb.admin().json("/routes?service=springboot-app-svc").expect("routes");
    let from = routes[0]["rules_from"].as_str().unwrap_or_default();
    assert!(from.starts_with("VirtualService default/springboot-app-svc + DestinationRule"), "{routes:#}");
    let rules = sb.admin().json("/rules").expect("rules");
    let list = rules.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 7, "{rules:#}");
    assert!(list.iter().all(|r| r["accepted"] == true && r["unsupported"].is_null()), "{rules:#}");
}

#[test]
fn opensergo_rules_limit_foo_with_the_seeds_fallback_and_route_with_fallbacks() {
    let Some(p) = privileged("opensergo_seed") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    serve(&mut sb, PodSpec::new("foo").namespace("prod").label("app", "foo-app"));
    sb.add_service(
        ServiceSpec::new("foo-app", FOO_APP)
            .namespace("prod")
            .named_port(80, 8080, "http")
            .select("app", "foo-app"),
    );
    serve(&mut sb, PodSpec::new("provider-v1").label("app", "service-provider").label("version", "v1"));
    sb.add_service(
        ServiceSpec::new("service-provider", PROVIDER)
            .named_port(80, 8080, "http")
            .select("app", "service-provider"),
    );
    // Seed 001's three objects, unchanged; the spec's TrafficRouter, unchanged.
    sb.add_document(include_str!("../../deploy/examples/languages/opensergo-sentinel.yaml"));
    sb.add_document(include_str!("../../deploy/examples/languages/opensergo-trafficrouter.yaml"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = sb.pod("client");

    // `tag: v2` goes to v2, which has no pod: the destination's fallback, v1, serves.
    let v2 = client.http_load(&format!("http://{PROVIDER}/"), 20, &["tag:v2"]).expect("load");
    assert_eq!(count(&v2, "provider-v1"), 20, "{v2:#}");
    let foo = client.http_load(&format!("http://{FOO_APP}/foo"), 60, &[]).expect("load");
    let (ok, limited) = (status(&foo, 200), status(&foo, 429));
    eprintln!("measured: seed 001 10 QPS on /foo, 60 requests at once: admitted {ok}, rejected {limited}");
    assert_eq!(ok + limited, 60, "{foo:#}");
    assert!((10..=20).contains(&ok), "10 QPS (plus what refills while the burst runs): {foo:#}");
    let rejection =
        foo["echoes"].as_array().and_then(|e| e.iter().find(|e| e["status"] == 429)).expect("a 429");
    assert_eq!(rejection["body"], "Blocked by Sentinel", "{rejection:#}");
    assert_eq!(rejection["response_headers"]["x-sentinel-limit"], "foo", "{rejection:#}");
    let bar = client.http_load(&format!("http://{FOO_APP}/bar"), 60, &[]).expect("load");
    assert_eq!(status(&bar, 200), 60, "only /foo is limited: {bar:#}");
    let rules = sb.admin().json("/rules").expect("rules");
    let rule = rules.as_array().and_then(|l| l.iter().find(|r| r["kind"] == "FaultToleranceRule").cloned());
    assert_eq!(rule.map(|r| r["services"].clone()), Some(serde_json::json!(["prod/foo-app"])), "{rules:#}");
}

#[test]
fn gateway_api_canaries_split_by_weight_and_send_tests_to_the_new_version() {
    let Some(p) = privileged("gateway_canary") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    serve(&mut sb, PodSpec::new("foo-1").label("app", "foo").label("version", "v1"));
    serve(&mut sb, PodSpec::new("foo-2").label("app", "foo").label("version", "v2"));
    sb.add_service(ServiceSpec::new("foo", FOO).named_port(80, 8080, "http").select("app", "foo"));
    for (i, v) in ["v1", "v2"].iter().enumerate() {
        let vip = Ipv4Addr::new(10, 96, 0, 51 + i as u8);
        sb.add_service(
            ServiceSpec::new(&format!("foo-{v}"), vip)
                .named_port(8080, 8080, "http")
                .select("app", "foo")
                .select("version", v),
        );
    }
    sb.add_document(include_str!("../../deploy/examples/languages/gateway-canary.yaml"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = sb.pod("client");
    let split = client.http_load(&format!("http://{FOO}/"), 2000, &[]).expect("load");
    let v2 = count(&split, "foo-2");
    eprintln!("measured: HTTPRoute 90/10 over 2000 requests: v2 {v2}");
    assert_eq!(count(&split, "foo-1") + v2, 2000, "{split:#}");
    let want = binomial_bounds(2000, 0.1);
    assert!(want.contains(&v2), "v2 got {v2} of 2000, want {want:?}");
    let test = client.http_load(&format!("http://{FOO}/"), 50, &["traffic:test"]).expect("load");
    assert_eq!(count(&test, "foo-2"), 50, "{test:#}");
    let rules = sb.admin().json("/rules").expect("rules");
    assert!(
        rules.as_array().is_some_and(|l| l.len() == 2 && l.iter().all(|r| r["reason"] == "Accepted")),
        "{rules:#}"
    );
}

#[test]
fn gateway_api_filters_redirect_rewrite_and_change_response_headers() {
    let Some(p) = privileged("gateway_filters") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    serve(&mut sb, PodSpec::new("foo-1").label("app", "foo"));
    sb.add_service(ServiceSpec::new("foo", FOO).named_port(80, 8080, "http").select("app", "foo"));
    sb.add_document(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: foo-filters}\nspec:\n  \
         parentRefs: [{group: \"\", kind: Service, name: foo}]\n  rules:\n  \
         - matches: [{path: {type: PathPrefix, value: /old}}]\n    \
           filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]\n  \
         - matches: [{path: {type: PathPrefix, value: /api}}]\n    \
           filters:\n    \
           - {type: URLRewrite, urlRewrite: {hostname: backend.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}\n    \
           - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-served-by, value: graylane}], remove: [server]}}\n    \
           backendRefs: [{name: foo, port: 80}]\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = sb.pod("client");
    let (_, out, _) = client
        .run(
            "curl",
            &[
                "-s",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
                &format!("http://{FOO}/old/x?q=1"),
            ],
        )
        .expect("curl");
    assert_eq!(out.trim(), format!("301 https://{FOO}/old/x?q=1"));
    let (_, out, _) = client
        .run("curl", &["-s", "-m", "5", "-D", "-", &format!("http://{FOO}/api/items?q=1")])
        .expect("curl");
    let (head, body) = out.split_once("\r\n\r\n").expect("headers and body");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("x-served-by: graylane") && !head.contains("\nserver:"), "{head}");
    let echo: Value = serde_json::from_str(body).expect("echo");
    assert_eq!(echo["path"], "/v2/items?q=1", "{echo:#}");
    assert_eq!(echo["headers"]["host"], "backend.internal", "{echo:#}");
    let rules = sb.admin().json("/rules").expect("rules");
    assert!(rules[0]["unsupported"].is_null(), "{rules:#}");
}

/// The takeover the scoping stops, tried as a hostile namespace would, with pods whose
/// namespace the kernel vouches for: an HTTPRoute in `attacker` on `victim/pay` (redirect,
/// cookie, rewritten headers) and a VirtualService there for `pay.victim` with
/// `exportTo: ["."]` and a 100 % abort. Only the attacker's own client is steered.
#[test]
fn a_rule_in_one_namespace_steers_only_the_callers_it_may() {
    let Some(p) = privileged("cross_namespace") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("victim-client").namespace("victim")).expect("victim client");
    sb.add_pod(PodSpec::new("attacker-client").namespace("attacker")).expect("attacker client");
    serve(&mut sb, PodSpec::new("pay-1").namespace("victim").label("app", "pay"));
    serve(&mut sb, PodSpec::new("cart-1").namespace("victim").label("app", "cart"));
    sb.add_service(
        ServiceSpec::new("pay", PAY).namespace("victim").named_port(80, 8080, "http").select("app", "pay"),
    );
    sb.add_service(
        ServiceSpec::new("cart", CART).namespace("victim").named_port(80, 8080, "http").select("app", "cart"),
    );
    sb.add_document(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: takeover, namespace: attacker}\nspec:\n  \
         parentRefs: [{group: \"\", kind: Service, name: pay, namespace: victim}]\n  rules:\n  \
         - filters:\n    \
           - {type: RequestRedirect, requestRedirect: {hostname: evil.example, statusCode: 302}}\n    \
           - {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: set-cookie, value: stolen=1}]}}\n",
    );
    sb.add_document(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: abort, namespace: attacker}\nspec:\n  \
         exportTo: [\".\"]\n  hosts: [cart.victim.svc.cluster.local]\n  http:\n  \
         - fault: {abort: {httpStatus: 500, percentage: {value: 100}}}\n    \
           route: [{destination: {host: cart.victim.svc.cluster.local}}]\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let status = |pod: &str, vip: Ipv4Addr| {
        let (_, out, _) = sb
            .pod(pod)
            .run(
                "curl",
                &["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{vip}/")],
            )
            .expect("curl");
        out.trim().to_owned()
    };
    assert_eq!([status("attacker-client", PAY), status("attacker-client", CART)], ["302", "500"]);
    assert_eq!([status("victim-client", PAY), status("victim-client", CART)], ["200", "200"]);
    let (_, head, _) = sb
        .pod("victim-client")
        .run("curl", &["-s", "-m", "5", "-D", "-", "-o", "/dev/null", &format!("http://{PAY}/")])
        .expect("curl");
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
}
