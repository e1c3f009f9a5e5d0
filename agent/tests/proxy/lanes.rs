//! Lanes: from headers, from the calling pod, never from outside the mesh; propagated to
//! the next hop; tenants isolated for services and for pod IPs alike.

use crate::harness::{APP, Mesh, app, named};

fn mesh(extra: &str) -> Mesh {
    let mesh = Mesh::new(&app(extra));
    mesh.endpoints.set("10.244.0.20:8080", named("base"));
    mesh.endpoints.set("10.244.0.21:8080", named("gray"));
    mesh
}

#[tokio::test]
async fn a_header_or_the_calling_pod_picks_the_lane_and_it_travels_on() {
    let mesh = mesh("");
    let client = mesh.caller(Some("default/client"));
    let tagged = client.get(APP, "/", &[("x-graylane-tag", "gray")]).await;
    assert_eq!((tagged.status.as_u16(), tagged.body.as_str()), (200, "gray"));
    assert_eq!(tagged.header("seen-x-graylane-tag"), "gray");
    assert_eq!(tagged.header("seen-baggage"), "graylane-tag=gray");
    assert_eq!(client.get(APP, "/", &[]).await.body, "base");
    let inferred = mesh.caller(Some("default/gray-client")).get(APP, "/", &[]).await;
    assert_eq!(inferred.body, "gray", "an untagged request from a gray pod");
    assert_eq!(inferred.header("seen-x-graylane-tag"), "gray");
    let flows = mesh.flows.list();
    let last =
        flows.iter().rfind(|f| f.start.src_pod.as_deref() == Some("default/gray-client")).expect("flow");
    assert_eq!((last.state.tag_source, last.state.requests), (Some("source-pod"), 1));
}

#[tokio::test]
async fn lane_headers_from_outside_the_mesh_are_ignored_and_never_echoed_back() {
    let mesh = mesh("");
    let outside = mesh.caller(None);
    let spoofed =
        outside.get(APP, "/", &[("x-graylane-tag", "gray"), ("baggage", "graylane-tag=gray,u=1")]).await;
    assert_eq!(spoofed.body, "base");
    assert_eq!(spoofed.header("seen-x-graylane-tag"), "");
    assert_eq!(spoofed.header("seen-baggage"), "u=1");
}

#[tokio::test]
async fn tenants_reach_their_own_or_shared_endpoints_by_service_and_by_pod_ip() {
    let tenants = r#"---
apiVersion: v1
kind: Pod
metadata: {name: red-client, namespace: default, annotations: {graylane.io/tenant: red}}
status: {podIP: 10.244.0.30}
---
apiVersion: v1
kind: Pod
metadata: {name: blue-db, namespace: default, labels: {app: db}, annotations: {graylane.io/tenant: blue}}
status: {podIP: 10.244.0.31}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: 10.96.0.31
  selector: {app: db}
  ports: [{port: 80, targetPort: 8080}]
"#;
    let mesh = mesh(tenants);
    mesh.endpoints.set("10.244.0.31:8080", named("blue-db"));
    let red = mesh.caller(Some("default/red-client"));
    let by_service = red.get("10.96.0.31:80", "/", &[]).await;
    assert_eq!(
        (by_service.status.as_u16(), by_service.header("x-graylane-reason")),
        (503, "tenant_isolation")
    );
    let by_ip = red.get("10.244.0.31:8080", "/", &[]).await;
    assert_eq!((by_ip.status.as_u16(), by_ip.header("x-graylane-reason")), (503, "tenant_isolation"));
    assert!(!by_ip.body.contains("10.244"), "no address in the body: {}", by_ip.body);
    // Untenanted pods are shared: red reaches the base app pod by IP.
    assert_eq!(red.get("10.244.0.20:8080", "/", &[]).await.body, "base");
    // A tenant header cannot override the pod's own tenant.
    let claimed = red.get("10.244.0.31:8080", "/", &[("x-graylane-tenant", "blue")]).await;
    assert_eq!(claimed.status.as_u16(), 503);
}

#[tokio::test]
async fn a_reload_that_retags_the_caller_applies_to_its_next_request() {
    let mesh = mesh("");
    let client = mesh.caller(Some("default/client"));
    assert_eq!(client.get(APP, "/", &[]).await.body, "base");
    let retagged = app("").replace(
        "metadata: {name: client, namespace: default, labels: {app: client}}",
        "metadata: {name: client, namespace: default, labels: {app: client}, annotations: {graylane.io/tag: gray}}",
    );
    mesh.reload(&retagged);
    assert_eq!(client.get(APP, "/", &[]).await.body, "gray");
}
