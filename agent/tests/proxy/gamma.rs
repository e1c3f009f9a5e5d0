//! Gateway API routes on a Service (GAMMA) as the spec defines them: attached per port,
//! ordered by the spec's precedence.

use crate::harness::{Mesh, named};

/// Service `echo` on ports 80 and 8080 (both to the pod's 8080).
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
metadata: {{name: echo, namespace: mesh, labels: {{app: echo}}}}
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
