//! Gateway API routes on a Service (GAMMA) as the spec defines them: attached per port,
//! ordered by the spec's precedence.

use crate::harness::{Mesh, named};

/// Service `echo` on ports 80 and 8080 (both to the pod's 8080); its pod is version v1.
fn mesh(route: &str) -> Mesh {
    let y = format!(
        r#"---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: mesh}}
status: {{podIP: 10.244.2.2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: echo, namespace: mesh, labels: {{app: echo, version: v1}}}}
status: {{podIP: 10.244.2.10}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: mesh}}
spec:
  clusterIP: 10.96.2.10
  selector: {{app: echo}}
  ports: [{{name: http, port: 80, targetPort: 8080}}, {{name: http-alt, port: 8080, targetPort: 8080}}]
{route}"#
    );
    let mesh = Mesh::new(&y);
    mesh.endpoints.set("10.244.2.10:8080", named("echo"));
    mesh
}

#[tokio::test]
async fn a_parent_port_limits_the_route_to_that_port() {
    let m = mesh(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: on-80, namespace: mesh}\nspec:\n  parentRefs: [{kind: Service, group: '', name: echo, port: 80}]\n  rules:\n  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-port, value: '80'}]}}]\n    backendRefs: [{name: echo, port: 80}]\n",
    );
    let c = m.caller(Some("mesh/client"));
    let on_80 = c.get("10.96.2.10:80", "/", &[]).await;
    assert_eq!((on_80.status.as_u16(), on_80.header("seen-x-port")), (200, "80"));
    // Port 8080 has no route attached: the service as it is (not 404, no header).
    let on_8080 = c.get("10.96.2.10:8080", "/", &[]).await;
    assert_eq!((on_8080.status.as_u16(), on_8080.header("seen-x-port")), (200, ""));
}

#[tokio::test]
async fn a_header_match_under_the_root_outranks_the_bare_root() {
    // Written bare root first, header match (no path: `/`) second, in other objects' order.
    let m = mesh(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a-root, namespace: mesh}\nspec:\n  parentRefs: [{kind: Service, group: '', name: echo}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /}}]\n    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-rule, value: root}]}}]\n    backendRefs: [{name: echo, port: 80}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: b-header, namespace: mesh}\nspec:\n  parentRefs: [{kind: Service, group: '', name: echo}]\n  rules:\n  - matches: [{headers: [{name: version, value: two}]}]\n    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-rule, value: header}]}}]\n    backendRefs: [{name: echo, port: 80}]\n",
    );
    let c = m.caller(Some("mesh/client"));
    assert_eq!(c.get("10.96.2.10:80", "/", &[("version", "two")]).await.header("seen-x-rule"), "header");
    assert_eq!(c.get("10.96.2.10:80", "/", &[]).await.header("seen-x-rule"), "root");
}

#[tokio::test]
async fn backends_of_multi_port_services_are_reached_on_their_own_target_ports() {
    // The conformance suite's shape: `echo-v1`/`echo-v2` each with ports 80 → 8080 and
    // 443 → 8443; the route on `echo` splits between them and sends /tls to echo-v1:443.
    let versions = r#"---
apiVersion: v1
kind: Pod
metadata: {name: echo-v2, namespace: mesh, labels: {app: echo, version: v2}}
status: {podIP: 10.244.2.11}
"#;
    let services = ["echo-v1", "echo-v2"].iter().enumerate().fold(String::new(), |y, (i, name)| {
        let v = &name[5..];
        y + &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: mesh}}\nspec:\n  clusterIP: 10.96.2.{}\n  selector: {{app: echo, version: {v}}}\n  ports: [{{name: http, port: 80, targetPort: 8080}}, {{name: https, port: 443, targetPort: 8443}}]\n",
            20 + i
        )
    });
    let route = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: split, namespace: mesh}\nspec:\n  parentRefs: [{kind: Service, group: '', name: echo}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /tls}}]\n    backendRefs: [{name: echo-v1, port: 443}]\n  - backendRefs: [{name: echo-v1, port: 80}, {name: echo-v2, port: 80}]\n";
    let m = mesh(&format!("{versions}{services}{route}"));
    m.endpoints.set("10.244.2.10:8080", named("v1"));
    m.endpoints.set("10.244.2.10:8443", named("v1-tls"));
    m.endpoints.set("10.244.2.11:8080", named("v2"));
    let c = m.caller(Some("mesh/client"));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let a = c.get("10.96.2.10:80", "/", &[]).await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.body);
        seen.insert(a.body);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["v1", "v2"]);
    // Through the parent's other port too: the backend's port decides where it lands.
    assert_eq!(c.get("10.96.2.10:8080", "/tls", &[]).await.body, "v1-tls");
}

#[tokio::test]
async fn a_backends_own_filters_apply_to_the_requests_it_serves() {
    let m = mesh(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: per-backend, namespace: mesh}\nspec:\n  parentRefs: [{kind: Service, group: '', name: echo}]\n  rules:\n  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-rule, value: all}]}}]\n    backendRefs:\n    - name: echo\n      port: 80\n      filters:\n      - {type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-backend, value: echo}], remove: [x-drop]}}\n      - {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-served, value: echo}]}}\n",
    );
    let a = m.caller(Some("mesh/client")).get("10.96.2.10:80", "/", &[("x-drop", "1")]).await;
    assert_eq!(a.status.as_u16(), 200);
    assert_eq!(
        (a.header("seen-x-rule"), a.header("seen-x-backend"), a.header("seen-x-drop"), a.header("x-served")),
        ("all", "echo", "", "echo")
    );
}
