//! Rules are scoped by the namespace they are written in: a rule in one namespace never
//! steers another's callers, unless the cluster's own scoping says so (Istio `exportTo`, a
//! `ReferenceGrant`). Callers in three namespaces send real requests through the proxy.

use graylane::inventory::{Export, NodeFacts};

use crate::harness::{Mesh, named};

const PAY: &str = "10.96.1.10:80";
const CART: &str = "10.96.1.11:80";

/// Service `pay` (two versions) and `cart` in `victim`, and a client pod in each of
/// `victim`, `attacker` and `third`; `extra` documents.
fn cluster(extra: &str) -> String {
    let mut y = String::new();
    for (ns, ip) in [("victim", "10.244.1.2"), ("attacker", "10.244.1.3"), ("third", "10.244.1.4")] {
        y += &format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: {ns}, labels: {{app: client}}}}\nstatus: {{podIP: {ip}}}\n"
        );
    }
    for (name, app, version, ip) in [
        ("pay-v1", "pay", "v1", "10.244.1.20"),
        ("pay-v2", "pay", "v2", "10.244.1.21"),
        ("cart", "cart", "v1", "10.244.1.30"),
    ] {
        y += &format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: victim, labels: {{app: {app}, version: {version}}}}}\nstatus: {{podIP: {ip}}}\n"
        );
    }
    for (name, ip) in [("pay", "10.96.1.10"), ("cart", "10.96.1.11")] {
        y += &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: victim}}\nspec:\n  clusterIP: {ip}\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n"
        );
    }
    y + extra
}

fn mesh(extra: &str, export: Export) -> Mesh {
    let mesh = Mesh::on(&cluster(extra), &NodeFacts::default().exporting(export));
    mesh.endpoints.set("10.244.1.20:8080", named("pay-v1"));
    mesh.endpoints.set("10.244.1.21:8080", named("pay-v2"));
    mesh.endpoints.set("10.244.1.30:8080", named("cart"));
    mesh
}

const CONSUMER_ROUTE: &str = r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: takeover, namespace: attacker}
spec:
  parentRefs:
  - {group: "", kind: Service, name: pay, namespace: victim}
  - {group: "", kind: Service, name: cart, namespace: victim}
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: {hostname: evil.example, statusCode: 302}
"#;

const PRODUCER_ROUTE: &str = r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: own, namespace: victim}
spec:
  parentRefs: [{group: "", kind: Service, name: pay}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-trace, value: producer}]}
    backendRefs: [{name: pay, port: 80}]
"#;

#[tokio::test]
async fn a_consumer_route_steers_only_its_own_namespaces_callers() {
    let mesh = mesh(&format!("{CONSUMER_ROUTE}{PRODUCER_ROUTE}"), Export::All);
    let victim = mesh.caller(Some("victim/client"));
    let attacker = mesh.caller(Some("attacker/client"));
    let third = mesh.caller(Some("third/client"));
    // The attacker's own clients take its consumer route, before the producer's.
    let own = attacker.get(PAY, "/api/charge", &[]).await;
    assert_eq!((own.status.as_u16(), own.header("location")), (302, "http://evil.example/api/charge"));
    // Everyone else takes the producer route: header `add` appends to what the caller sent.
    for caller in [&victim, &third] {
        let a = caller.get(PAY, "/api/charge", &[("x-trace", "caller")]).await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.body);
        assert!(a.body.starts_with("pay-v"), "{}", a.body);
        let seen: Vec<&str> =
            a.headers.get_all("seen-x-trace").iter().filter_map(|v| v.to_str().ok()).collect();
        assert_eq!(seen, ["caller", "producer"], "add appends");
        // GAMMA: a request no rule of the routes matches is not for the service: 404.
        let none = caller.get(PAY, "/other", &[]).await;
        assert_eq!((none.status.as_u16(), none.header("x-graylane-reason")), (404, "no_route"));
    }
    // Outside the mesh is no namespace: the producer's routes.
    assert_eq!(mesh.caller(None).get(PAY, "/api", &[]).await.status.as_u16(), 200);
    // Where the consumer route is the only rule, the others get the service as it is.
    assert_eq!(attacker.get(CART, "/", &[]).await.status.as_u16(), 302);
    for caller in [&victim, &third, &mesh.caller(None)] {
        let a = caller.get(CART, "/", &[]).await;
        assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "cart"));
    }
}

/// The status `who` gets from cart.
async fn status(m: &Mesh, who: &str) -> u16 {
    m.caller(Some(who)).get(CART, "/", &[]).await.status.as_u16()
}

/// Which versions of pay answer six requests of the victim's client.
async fn victim_answers(m: &Mesh) -> Vec<String> {
    let c = m.caller(Some("victim/client"));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(c.get(PAY, "/", &[]).await.body);
    }
    seen.into_iter().collect()
}

#[tokio::test]
async fn an_exported_virtual_service_reaches_whom_its_export_names_and_the_host_namespace_wins() {
    let abort = |ns: &str, name: &str, export: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  {export}hosts: [cart.victim.svc.cluster.local]\n  http:\n  - fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}\n    route: [{{destination: {{host: cart.victim.svc.cluster.local}}}}]\n"
        )
    };
    // `exportTo: ["."]`: the attacker's callers only.
    let m = mesh(&abort("attacker", "mine", "exportTo: ['.']\n  "), Export::All);
    assert_eq!(
        [
            status(&m, "attacker/client").await,
            status(&m, "victim/client").await,
            status(&m, "third/client").await
        ],
        [418, 200, 200]
    );
    // No exportTo: Istio's default reaches every namespace that has no rule of its own for
    // the host; `--rules-default-export namespace` keeps it at home.
    let open = abort("attacker", "open", "");
    let m = mesh(&open, Export::All);
    assert_eq!([status(&m, "victim/client").await, status(&m, "third/client").await], [418, 418]);
    let m = mesh(&open, Export::Namespace);
    assert_eq!(
        [
            status(&m, "attacker/client").await,
            status(&m, "victim/client").await,
            status(&m, "third/client").await
        ],
        [418, 200, 200]
    );
    // The host's namespace's rule wins over another's; the caller's own namespace's wins
    // over both (Istio's order).
    let host_route = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: home, namespace: victim}\nspec:\n  hosts: [cart]\n  http:\n  - route: [{destination: {host: cart}}]\n";
    let third_own = abort("third", "local", "exportTo: ['.']\n  ");
    let m = mesh(&format!("{open}{host_route}{third_own}"), Export::All);
    assert_eq!(
        [
            status(&m, "attacker/client").await,
            status(&m, "victim/client").await,
            status(&m, "third/client").await
        ],
        [418, 200, 418]
    );
    // `~`: nobody.
    let m = mesh(&abort("attacker", "hidden", "exportTo: ['~']\n  "), Export::All);
    assert_eq!(status(&m, "attacker/client").await, 200);
}

#[tokio::test]
async fn subsets_and_settings_written_in_another_namespace_stay_there() {
    // The attacker defines subset `gray` (v2 only) and a 1-request limit for victim/pay.
    let dr = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: pay, namespace: attacker}\nspec:\n  host: pay.victim.svc.cluster.local\n  trafficPolicy: {loadBalancer: {simple: RANDOM}, connectionPool: {http: {http2MaxRequests: 1}}}\n  subsets: [{name: gray, labels: {version: v2}}]\n";
    let mesh = mesh(dr, Export::All);
    let victim = mesh.caller(Some("victim/client"));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let a = victim.get(PAY, "/", &[("x-graylane-tag", "gray")]).await;
        assert_eq!(a.status.as_u16(), 200);
        seen.insert(a.body);
    }
    // The gray lane has no pods: it falls back to base, both versions; never the attacker's
    // `gray` subset alone.
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["pay-v1", "pay-v2"]);
    let report =
        mesh.state.load().snapshot.reports.iter().find(|r| r.name == "pay").cloned().expect("report");
    assert!(report.message.contains("not the service's namespace"), "{report:#?}");
}

#[tokio::test]
async fn an_opensergo_router_acts_on_another_namespace_only_where_a_reference_grant_allows() {
    let router = r#"---
apiVersion: traffic.opensergo.io/v1alpha1
kind: TrafficRouter
metadata: {name: steer, namespace: attacker}
spec:
  hosts: [pay.victim]
  http:
  - route: [{destination: {host: pay.victim, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay, namespace: victim}
spec:
  host: pay
  subsets: [{name: v2, labels: {version: v2}}]
"#;
    let m = mesh(router, Export::All);
    assert_eq!(victim_answers(&m).await, ["pay-v1", "pay-v2"], "refused: no grant");
    let report = m.state.load().snapshot.reports.iter().find(|r| r.name == "steer").cloned().expect("report");
    assert_eq!((report.accepted, report.reason.as_str()), (false, "RefNotPermitted"), "{report:#?}");
    assert!(report.message.contains("victim/pay"), "{report:#?}");
    let grant = "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: ops, namespace: victim}\nspec:\n  from: [{group: traffic.opensergo.io, kind: TrafficRouter, namespace: attacker}]\n  to: [{group: '', kind: Service, name: pay}]\n";
    let m = mesh(&format!("{router}{grant}"), Export::All);
    assert_eq!(victim_answers(&m).await, ["pay-v2"], "granted: it acts as the victim's own rule");
}

#[tokio::test]
async fn a_route_from_another_namespace_stays_beneath_the_services_own_limits() {
    // The victim limits pay to 2 requests a minute; the attacker's consumer route (a timeout
    // of its own) would replace that limit for its callers if route plans replaced the
    // service's.
    let own = "---\napiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: pay, namespace: victim}\nspec:\n  service: pay\n  rateLimit: {requests: 2, interval: 1m, key: sourcePod}\n";
    let consumer = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: faster, namespace: attacker}\nspec:\n  parentRefs: [{group: '', kind: Service, name: pay, namespace: victim}]\n  rules:\n  - timeouts: {request: 10s}\n    backendRefs: [{name: pay, namespace: victim, port: 80}]\n";
    let mesh = mesh(&format!("{own}{consumer}"), Export::All);
    let attacker = mesh.caller(Some("attacker/client"));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(attacker.get(PAY, "/", &[]).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
}
