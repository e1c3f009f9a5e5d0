//! Translations of the seeds' own rules (seed 004: Istio; seed 001: OpenSergo) and of the
//! Gateway API's canary examples into graylane's model.

use crate::inventory::{
    Snapshot, load_str,
    policy::{LbPolicy, TrafficPolicySpec},
};

fn pod(ns: &str, name: &str, ip: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nstatus: {{podIP: {ip}}}\n"
    )
}

fn service(ns: &str, name: &str, ip: &str, selector: &str) -> String {
    service_port(ns, name, ip, selector, 80, 8080)
}

fn service_port(ns: &str, name: &str, ip: &str, selector: &str, port: u16, target: u16) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{clusterIP: {ip}, selector: {{{selector}}}, ports: [{{name: http, port: {port}, targetPort: {target}}}]}}\n"
    )
}

fn policy<'a>(snap: &'a Snapshot, ns: &str, svc: &str) -> &'a TrafficPolicySpec {
    &snap
        .policies
        .iter()
        .find(|p| p.namespace == ns && p.spec.service == svc)
        .unwrap_or_else(|| panic!("no policy for {svc}: {:?}", snap.policies))
        .spec
}

/// Seed 004, verbatim: the 20/80 split between subsets v1 and v2.
const SEED_004_WEIGHTS: &str = include_str!("../../../../deploy/examples/languages/istio-weights.yaml");

/// Seed 004, verbatim: `end-user: jason` to v2, everyone else to v3.
const SEED_004_JASON: &str = include_str!("../../../../deploy/examples/languages/istio-reviews-jason.yaml");

/// Seed 004, verbatim: subsets by the `version` label, load balancing per subset.
const SEED_004_DR: &str = include_str!("../../../../deploy/examples/languages/istio-destinationrule.yaml");

/// Seed 001: 10 QPS on `/foo`, rejected with Sentinel's 429 (strategies in the rule's
/// namespace).
const SEED_001_SENTINEL: &str = include_str!("../../../../deploy/examples/languages/opensergo-sentinel.yaml");

fn reviews_cluster() -> String {
    let mut y = String::new();
    for v in ["v1", "v2", "v3"] {
        y += &pod(
            "default",
            &format!("reviews-{v}"),
            &format!("10.0.0.{}", &v[1..]),
            &format!("app: reviews, version: {v}"),
        );
    }
    y += &service("default", "reviews", "10.96.0.10", "app: reviews");
    y
}

#[test]
fn seed_004_weights_become_a_weighted_route_over_label_subsets() {
    let dr = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: springboot}\nspec:\n  host: springboot-app-svc\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";
    let mut y = pod("default", "app-v1", "10.0.0.1", "app: springboot, version: v1");
    y += &pod("default", "app-v2", "10.0.0.2", "app: springboot, version: v2");
    y += &service("default", "springboot-app-svc", "10.96.0.20", "app: springboot");
    y += &format!("---\n{SEED_004_WEIGHTS}");
    y += dr;
    let snap = load_str(&y).expect("valid");
    let p = policy(&snap, "default", "springboot-app-svc");
    assert_eq!(p.routes.len(), 1);
    let weights: Vec<(&str, u32)> =
        p.routes[0].destinations.iter().map(|d| (d.subset.as_str(), d.weight)).collect();
    assert_eq!(weights, [("v1", 20), ("v2", 80)]);
    assert_eq!(p.subsets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["v1", "v2"]);
    assert!(snap.reports.iter().all(|r| r.accepted && r.unsupported.is_empty()), "{:#?}", snap.reports);
    let from = &snap.policies.iter().find(|p| p.spec.service == "springboot-app-svc").expect("policy").name;
    assert_eq!(from, "VirtualService default/springboot-app-svc + DestinationRule default/springboot");
}

#[test]
fn seed_004_header_match_and_destination_rule_load_balancing() {
    let mut y = reviews_cluster();
    y += &format!("---\n{SEED_004_JASON}");
    y += &service("default", "my-svc", "10.96.0.11", "app: reviews");
    y += &format!("---\n{SEED_004_DR}");
    let snap = load_str(&y).expect("valid");
    let reviews = policy(&snap, "default", "reviews");
    assert_eq!(reviews.routes.len(), 2);
    assert_eq!(reviews.routes[0].matches.headers[0].name, "end-user");
    assert_eq!(reviews.routes[0].matches.headers[0].exact.as_deref(), Some("jason"));
    assert_eq!(reviews.routes[0].destinations[0].subset, "v2");
    assert_eq!(reviews.routes[1].destinations[0].subset, "v3");
    let my = policy(&snap, "default", "my-svc");
    assert_eq!(my.load_balancer.policy, LbPolicy::Random);
    let v2 = my.subsets.iter().find(|s| s.name == "v2").expect("v2");
    assert_eq!(v2.load_balancer.as_ref().map(|l| l.policy), Some(LbPolicy::RoundRobin));
    let v3 = my.subsets.iter().find(|s| s.name == "v3").expect("v3");
    let lb = v3.load_balancer.as_ref().expect("v3 lb");
    assert_eq!(lb.policy, LbPolicy::RingHash);
    assert_eq!(lb.hash_on.as_ref().and_then(|h| h.cookie.as_deref()), Some("user"));
    assert!(snap.reports.iter().all(|r| r.accepted && r.unsupported.is_empty()), "{:#?}", snap.reports);
}

#[test]
fn seed_001_sentinel_rule_limits_foo_with_its_fallback() {
    let mut y = pod("prod", "foo-1", "10.0.1.1", "app: foo-app");
    y += &service("prod", "foo-app", "10.96.1.1", "app: foo-app");
    y += &format!("---\n{SEED_001_SENTINEL}");
    let snap = load_str(&y).expect("valid");
    let p = policy(&snap, "prod", "foo-app");
    assert_eq!(p.routes.len(), 1);
    let route = &p.routes[0];
    assert_eq!(route.matches.path.as_ref().and_then(|m| m.exact.as_deref()), Some("/foo"));
    let limit = route.resilience.rate_limit.as_ref().expect("limit");
    assert_eq!((limit.requests, limit.interval.0.as_secs(), limit.global), (10, 1, true));
    assert_eq!(limit.on_reject.status, 429);
    assert_eq!(limit.on_reject.body, "Blocked by Sentinel");
    assert_eq!(limit.on_reject.headers.get("X-Sentinel-Limit").map(String::as_str), Some("foo"));
    let rule = snap.reports.iter().find(|r| r.kind == "FaultToleranceRule").expect("report");
    assert!(rule.accepted, "{rule:#?}");
    assert_eq!(rule.services, ["prod/foo-app"]);
}

#[test]
fn opensergo_label_rules_color_and_tag_workloads() {
    let label = "---\napiVersion: traffic.opensergo.io/v1alpha1\nkind: TrafficLabelRule\nmetadata:\n  name: my-traffic-label-rule\n  labels:\n    app: spring-cloud-zuul\nspec:\n  selector:\n    app: spring-cloud-zuul\n  trafficLabel: gray\n  match:\n  - condition: \"==\"    # 匹配表达式\n    type: header        # 匹配属性类型\n    key: 'location'     # 参数名\n    value: cn-shenzhen  # 参数值\n";
    let workload = "---\napiVersion: traffic.opensergo.io/v1alpha1\nkind: WorkloadLabelRule\nmetadata:\n  name: gray-sts-label-rule\nspec:\n  workloadLabels: ['gray']\n  selector:\n    app: reviews\n    version: v2\n";
    let mut y = reviews_cluster();
    y += label;
    y += workload;
    let snap = load_str(&y).expect("valid");
    assert_eq!(snap.rules[0].spec.tag.as_deref(), Some("gray"));
    assert_eq!(snap.rules[0].spec.matches[0].value, "cn-shenzhen");
    let v2 = snap.pod_by_name("default/reviews-v2").expect("pod");
    assert_eq!(v2.tag.as_deref(), Some("gray"));
    assert_eq!(snap.pod_by_name("default/reviews-v1").and_then(|p| p.tag.clone()), None);
    // The seed's own WorkloadLabelRule, as its page prints it (indentation lost): a clear error.
    let flattened = "apiVersion: traffic.opensergo.io/v1alpha1\nkind: WorkloadLabelRule\nmetadata:\nname: gray-sts-label-rule\nspec:\nworkloadLabels: ['gray']\n";
    let e = load_str(flattened).expect_err("no name").to_string();
    assert!(e.contains("metadata.name"), "{e}");
}

#[test]
fn gateway_api_canaries_split_by_weight_and_by_header_in_precedence_order() {
    let mut y = String::new();
    for (name, version) in [("foo-v1-a", "v1"), ("foo-v2-a", "v2")] {
        y += &pod(
            "default",
            name,
            if version == "v1" { "10.0.2.1" } else { "10.0.2.2" },
            &format!("app: foo, version: {version}"),
        );
    }
    y += &service("default", "foo", "10.96.2.1", "app: foo");
    // The Gateway API's own example: the per-version Services listen on 8080.
    y += &service_port("default", "foo-v1", "10.96.2.2", "app: foo, version: v1", 8080, 8080);
    y += &service_port("default", "foo-v2", "10.96.2.3", "app: foo, version: v2", 8080, 8080);
    y += "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: foo-split\nspec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: foo\n    port: 80\n  rules:\n  - backendRefs:\n    - name: foo-v1\n      port: 8080\n      weight: 90\n    - name: foo-v2\n      port: 8080\n      weight: 10\n";
    y += "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: foo-header\nspec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: foo\n  rules:\n  - matches:\n    - headers:\n      - name: traffic\n        value: test\n      path: {type: PathPrefix, value: /api/}\n    backendRefs:\n    - name: foo-v2\n      port: 8080\n    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: [{name: x-canary, value: \"yes\"}]}\n    timeouts: {request: 1500ms}\n    retry: {attempts: 2, codes: [503]}\n    sessionPersistence: {sessionName: s}\n";
    let snap = load_str(&y).expect("valid");
    let p = policy(&snap, "default", "foo");
    assert_eq!(p.routes.len(), 2, "{:#?}", p.routes);
    // The header match is more specific: it goes first, whatever the objects' order.
    let header = &p.routes[0];
    assert_eq!(header.matches.headers[0].name, "traffic");
    assert_eq!(header.matches.path.as_ref().and_then(|m| m.regex.as_deref()), Some("/api(/.*)?"));
    assert_eq!(header.destinations[0].subset, "foo-v2");
    assert_eq!(header.headers.add.get("x-canary").map(String::as_str), Some("yes"));
    assert_eq!(header.resilience.timeout.map(|t| t.0.as_millis()), Some(1500));
    assert_eq!(
        header.resilience.retry.as_ref().map(|r| (r.attempts, r.statuses.clone())),
        Some((2, vec![503]))
    );
    let weights: Vec<(&str, u32)> =
        p.routes[1].destinations.iter().map(|d| (d.subset.as_str(), d.weight)).collect();
    assert_eq!(weights, [("foo-v1", 90), ("foo-v2", 10)]);
    let v2 = p.subsets.iter().find(|s| s.name == "foo-v2").expect("subset from the Service");
    let backend = v2.backend.as_ref().map(|b| (b.namespace.as_str(), b.name.as_str(), b.port));
    assert_eq!(backend, Some(("default", "foo-v2", 8080)));
    let header_report = snap.reports.iter().find(|r| r.name == "foo-header").expect("report");
    assert!(header_report.unsupported.iter().any(|f| f.contains("sessionPersistence")), "{header_report:#?}");
}

#[test]
fn a_backend_is_that_services_endpoints_on_its_own_port() {
    let mut y = String::new();
    y += &pod("default", "foo-1", "10.0.2.1", "app: foo, version: v1");
    y += &service("default", "foo", "10.96.2.1", "app: foo");
    y += &service_port("default", "foo-admin", "10.96.2.4", "app: foo, version: v1", 80, 9090);
    y += &service_port("default", "foo-v1", "10.96.2.2", "app: foo, version: v1", 8080, 8080);
    y += "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: ports}\nspec:\n  parentRefs: [{kind: Service, name: foo}]\n  rules:\n  - backendRefs: [{name: foo-admin, port: 80}, {name: foo-v1, port: 80}, {name: foo-v1}, {name: foo-v1, port: 8080}]\n";
    let snap = load_str(&y).expect("valid");
    let report = snap.reports.iter().find(|r| r.name == "ports").expect("report");
    assert!(
        report.message.contains("backendRefs[1].port: Service default/foo-v1 has no port 80"),
        "{report:#?}"
    );
    assert!(report.unsupported.iter().any(|f| f.contains("backendRefs[2].port: required")), "{report:#?}");
    let p = policy(&snap, "default", "foo");
    let to: Vec<&str> = p.routes[0].destinations.iter().map(|d| d.subset.as_str()).collect();
    assert_eq!(to, ["foo-admin", "foo-v1"]);
    let admin = p.subsets.iter().find(|s| s.name == "foo-admin").and_then(|s| s.backend.as_ref());
    assert_eq!(admin.map(|b| b.port), Some(80), "its share goes to its own target port (9090)");
}

#[test]
fn unsupported_and_unknown_fields_are_named_and_bad_backends_answer_500() {
    let mut y = reviews_cluster();
    y += "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews, nowhere]\n  http:\n  - corsPolicy: {allowOrigins: [{exact: x}]}\n    retires: {attempts: 3}\n    route:\n    - destination: {host: reviews, subset: v1}\n";
    y += "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: broken}\nspec:\n  parentRefs: [{kind: Service, name: reviews}]\n  rules:\n  - backendRefs: [{name: missing, port: 80}]\n";
    y += "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: edge}\nspec:\n  parentRefs: [{name: my-gateway}]\n";
    let snap = load_str(&y).expect("valid");
    let vs = snap.reports.iter().find(|r| r.kind == "VirtualService").expect("vs");
    assert!(vs.unsupported.iter().any(|f| f == "spec.http[0].corsPolicy"), "{vs:#?}");
    assert!(vs.unsupported.iter().any(|f| f == "spec.http[0].retires (unknown field)"), "{vs:#?}");
    assert!(vs.unsupported.iter().any(|f| f.starts_with("spec.hosts[1]: nowhere")), "{vs:#?}");
    let broken = snap.reports.iter().find(|r| r.name == "broken").expect("broken");
    assert_eq!(broken.reason, "BackendNotFound");
    // HTTPRoute outranks VirtualService: its rule (500 for every request) is the routing.
    let p = policy(&snap, "default", "reviews");
    assert_eq!(p.routes.len(), 1);
    assert_eq!(p.routes[0].resilience.faults[0].abort.as_ref().map(|a| a.status), Some(500));
    assert_eq!(vs.reason, "Overridden", "{vs:#?}");
    let edge = snap.reports.iter().find(|r| r.name == "edge").expect("edge");
    assert_eq!((edge.accepted, edge.reason.as_str()), (false, "NoMatchingParent"));
}

#[test]
fn graylane_policies_win_and_without_other_languages_nothing_changes() {
    let own = "---\napiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: reviews}\nspec:\n  service: reviews\n  fallback: {mode: fail}\n  routes:\n  - match: {path: {prefix: /own}}\n";
    let mut y = reviews_cluster();
    y += own;
    let alone = load_str(&y).expect("valid");
    assert_eq!(alone.policies[0].name, "reviews");
    assert!(alone.reports.is_empty());
    y += &format!("---\n{SEED_004_JASON}");
    y += "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3, baseEjectionTime: 15s}}\n  subsets:\n  - {name: v2, labels: {version: v2}}\n  - {name: v3, labels: {version: v3}}\n";
    let snap = load_str(&y).expect("valid");
    let p = policy(&snap, "default", "reviews");
    assert_eq!(p.routes.len(), 1, "the TrafficPolicy's routes");
    assert_eq!(p.subsets.len(), 2, "the DestinationRule's subsets still apply");
    let breaker = p.resilience.circuit_breaker.as_ref().expect("outlier detection");
    assert_eq!((breaker.consecutive_failures, breaker.open_for.0.as_secs()), (3, 15));
    let vs = snap.reports.iter().find(|r| r.kind == "VirtualService").expect("vs");
    assert_eq!(vs.reason, "Overridden");
    assert!(vs.message.contains("routes (by TrafficPolicy default/reviews)"), "{vs:#?}");
}

#[test]
fn every_example_manifest_parses_without_unknown_fields() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/languages");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let parsed = crate::inventory::yaml::parse_documents(&path, &text).expect("valid");
        assert!(parsed.warnings.is_empty(), "{}: {:?}", path.display(), parsed.warnings);
        assert!(parsed.foreign.iter().all(|f| f.unknown.is_empty()), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 5);
}

#[test]
fn an_opensergo_traffic_router_falls_back_per_destination() {
    let router = include_str!("../../../../deploy/examples/languages/opensergo-trafficrouter.yaml");
    let mut base = pod("default", "provider-v1", "10.0.3.1", "app: service-provider, version: v1");
    base += &service("default", "service-provider", "10.96.3.1", "app: service-provider");
    let snap = load_str(&format!("{base}---\n{router}")).expect("valid");
    let p = policy(&snap, "default", "service-provider");
    assert_eq!(p.routes.len(), 2);
    let d = &p.routes[0].destinations[0];
    assert_eq!((d.subset.as_str(), d.fallback.as_deref()), ("v2", Some("v1")));
    assert!(snap.reports.iter().all(|r| r.accepted && r.unsupported.is_empty()), "{:#?}", snap.reports);
    // In a VirtualService the same field is not Istio's: reported.
    let vs = router.replace(
        "traffic.opensergo.io/v1alpha1\nkind: TrafficRouter",
        "networking.istio.io/v1\nkind: VirtualService",
    );
    let snap = load_str(&format!("{base}---\n{vs}")).expect("valid");
    let r = snap.reports.iter().find(|r| r.kind == "VirtualService").expect("vs");
    assert!(
        r.unsupported.iter().any(|f| f.ends_with("destination.fallback (not a VirtualService field)")),
        "{r:#?}"
    );
}

#[test]
fn opensergo_strategies_of_every_spec_version_map_and_unknown_ones_are_named() {
    let mut y = pod("prod", "foo-1", "10.0.1.1", "app: foo-app");
    y += &service("prod", "foo-app", "10.96.1.1", "app: foo-app");
    y += "---\napiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: RateLimitStrategy\nmetadata: {name: per-second, namespace: prod}\nspec: {metricType: RequestAmount, limitMode: GlobalToLocal, threshold: 5, statDurationSeconds: 2}\n";
    y += "---\napiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: CircuitBreakerStrategy\nmetadata: {name: slow, namespace: prod}\nspec: {strategy: SlowRequestRatio, triggerRatio: '60%', statDuration: '30s', recoveryTimeout: '5s', minRequestAmount: 5, slowConditions: {maxAllowedRt: '500ms'}}\n";
    y += "---\napiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: ConcurrencyLimitStrategy\nmetadata: {name: cap, namespace: prod}\nspec: {maxConcurrency: 8, limitMode: Global}\n";
    y += "---\napiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: AdaptiveOverloadProtectionStrategy\nmetadata: {name: bbr, namespace: prod}\nspec: {metricType: CpuPercentage, triggerThreshold: '70%', adaptiveStrategy: BBR}\n";
    y += "---\napiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: FaultToleranceRule\nmetadata: {name: r, namespace: prod}\nspec:\n  selector: {app: foo-app}\n  strategies: [{name: per-second}, {name: slow}, {name: cap}, {name: bbr}]\n";
    let snap = load_str(&y).expect("valid");
    let p = policy(&snap, "prod", "foo-app");
    let limit = p.resilience.rate_limit.as_ref().expect("limit");
    assert_eq!((limit.requests, limit.interval.0.as_secs(), limit.global), (5, 2, true));
    let b = p.resilience.circuit_breaker.as_ref().expect("breaker");
    assert_eq!(
        (b.failure_percent, b.min_requests, b.window.0.as_secs(), b.open_for.0.as_secs()),
        (60, 5, 30, 5)
    );
    assert_eq!(b.slow_call.map(|s| s.0.as_millis()), Some(500));
    let rule = snap.reports.iter().find(|r| r.kind == "FaultToleranceRule").expect("rule");
    assert!(
        rule.unsupported.iter().any(|f| f.contains("bbr (AdaptiveOverloadProtectionStrategy)")),
        "{rule:#?}"
    );
    assert_eq!(p.resilience.concurrency.as_ref().and_then(|c| c.max_in_flight), Some(8));
    assert!(rule.unsupported.iter().any(|f| f.starts_with("cap limitMode: Global")), "{rule:#?}");
}

#[test]
fn rewrites_redirects_and_response_headers_translate_with_the_matched_prefix() {
    let mut y = reviews_cluster();
    y += "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  \
          - match: [{uri: {prefix: /legacy}}]\n    redirect: {uri: /new, authority: new.example}\n  \
          - match: [{uri: {prefix: /api}}, {uri: {exact: /x}}]\n    rewrite: {uri: /v2, authority: api.internal}\n    \
          headers: {response: {set: {x-from: graylane}, remove: [server]}}\n    route: [{destination: {host: reviews, subset: v2}}]\n";
    let snap = load_str(&y).expect("valid");
    let p = policy(&snap, "default", "reviews");
    let redirect = p.routes[0].redirect.as_ref().expect("redirect");
    assert_eq!(
        (redirect.path.as_deref(), redirect.host.as_deref(), redirect.status),
        (Some("/new"), Some("new.example"), 301)
    );
    let prefix = p.routes[1].rewrite.as_ref().and_then(|r| r.prefix.as_ref()).expect("prefix rewrite");
    assert_eq!((prefix.from.as_str(), prefix.to.as_str()), ("/api", "/v2"));
    let exact = p.routes[2].rewrite.as_ref().expect("rewrite");
    assert_eq!(
        (exact.path.as_deref(), exact.prefix.is_none()),
        (Some("/v2"), true),
        "an exact match's uri is the whole path"
    );
    assert_eq!(p.routes[1].response_headers.add.get("x-from").map(String::as_str), Some("graylane"));
    assert!(snap.reports.iter().all(|r| r.unsupported.is_empty()), "{:#?}", snap.reports);
}
