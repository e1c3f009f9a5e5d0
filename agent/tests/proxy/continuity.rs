//! Lane continuity on one node: the lane rides in the tracer's own headers, and comes back
//! by trace id for a pod that forwards only an id; a pod serving a lane that sends a
//! request without one is counted as `lane_lost`.

use graylane::telemetry::metrics::metrics;

use crate::harness::{APP, Mesh, app, named};

const RELAY: &str = "10.96.0.40:80";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The app (base and gray) and a base relay pod on this node (its cgroup is known).
fn mesh() -> Mesh {
    let relay = r#"---
apiVersion: v1
kind: Pod
metadata: {name: relay, namespace: default, labels: {app: relay}, annotations: {graylane.io/cgroup: pod-relay}}
status: {podIP: 10.244.0.40}
---
apiVersion: v1
kind: Pod
metadata: {name: stranger, namespace: default, labels: {app: stranger}, annotations: {graylane.io/tenant: red}}
status: {podIP: 10.244.0.41}
---
apiVersion: v1
kind: Service
metadata: {name: relay, namespace: default}
spec:
  clusterIP: 10.96.0.40
  selector: {app: relay}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;
    let mesh = Mesh::new(&app(relay));
    mesh.endpoints.set("10.244.0.20:8080", named("base"));
    mesh.endpoints.set("10.244.0.21:8080", named("gray"));
    mesh.endpoints.set("10.244.0.40:8080", named("relay"));
    mesh
}

fn traceparent(trace: &str) -> String {
    format!("00-{trace}-00f067aa0ba902b7-01")
}

fn lost(workload: &str) -> u64 {
    metrics()
        .requests
        .escapes
        .with_label_values(&[workload, "gray", "default/app", "base", "lane_lost"])
        .get()
}

#[tokio::test]
async fn a_relay_that_forwards_only_a_trace_or_request_id_keeps_the_lane() {
    let mesh = mesh();
    let client = mesh.caller(Some("default/client"));
    let relay = mesh.caller(Some("default/relay"));
    let tp = traceparent(TRACE);
    let into_relay = client.get(RELAY, "/", &[("x-graylane-tag", "gray"), ("traceparent", &tp)]).await;
    assert_eq!(into_relay.body, "relay");
    // The lane rides in the tracer's own header too.
    assert!(into_relay.header("seen-tracestate").starts_with("graylane=gray"), "{:?}", into_relay.headers);
    let out = relay.get(APP, "/", &[("traceparent", &traceparent(TRACE))]).await;
    assert_eq!(out.body, "gray", "the relay's call in the same trace");
    let flow = mesh.flows.list().into_iter().rfind(|f| f.start.src_pod.as_deref() == Some("default/relay"));
    assert_eq!(flow.and_then(|f| f.state.tag_source), Some("trace"));

    client.get(RELAY, "/", &[("x-graylane-tag", "gray"), ("x-request-id", "order-7")]).await;
    assert_eq!(relay.get(APP, "/", &[("x-request-id", "order-7")]).await.body, "gray");

    // Base traffic stays base, and another trace is not this one.
    client.get(RELAY, "/", &[("traceparent", &traceparent("11111111111111111111111111111111"))]).await;
    let base =
        relay.get(APP, "/", &[("traceparent", &traceparent("11111111111111111111111111111111"))]).await;
    assert_eq!(base.body, "base");
    let other =
        relay.get(APP, "/", &[("traceparent", &traceparent("22222222222222222222222222222222"))]).await;
    assert_eq!(other.body, "base");
    // Another pod in the same trace is not the relay.
    assert_eq!(client.get(APP, "/", &[("traceparent", &tp)]).await.body, "base");
}

/// A pod of another tenant sends one lane request through the shared relay with the
/// victim's request id: that lane never reaches the victim's trace.
#[tokio::test]
async fn a_stranger_cannot_lend_its_lane_to_another_callers_trace() {
    let mesh = mesh();
    let stranger = mesh.caller(Some("default/stranger"));
    let victim = mesh.caller(Some("default/client"));
    let relay = mesh.caller(Some("default/relay"));
    let lend = async |id: &str| {
        stranger.get(RELAY, "/", &[("x-graylane-tag", "gray"), ("x-request-id", id)]).await;
    };
    // Its own trace keeps its lane.
    lend("order-1").await;
    assert_eq!(relay.get(APP, "/", &[("x-request-id", "order-1")]).await.body, "gray");
    // A trace with a tracer's id is that id's: a request id beside it does not count.
    lend("order-2").await;
    let tp = traceparent(TRACE);
    assert_eq!(relay.get(APP, "/", &[("traceparent", &tp), ("x-request-id", "order-2")]).await.body, "base");
    // The victim's own request into the relay in that trace, with no lane, overwrites it.
    lend("order-3").await;
    victim.get(RELAY, "/", &[("x-request-id", "order-3")]).await;
    assert_eq!(relay.get(APP, "/", &[("x-request-id", "order-3")]).await.body, "base");
    // An entry learnt under tenant red is not recalled for a caller of tenant blue.
    lend("order-4").await;
    let as_tenant = async |t: &str| {
        relay.get(APP, "/", &[("x-request-id", "order-4"), ("x-graylane-tenant", t)]).await.body
    };
    assert_eq!(as_tenant("blue").await, "base");
    assert_eq!(as_tenant("red").await, "gray");
}

#[tokio::test]
async fn a_pod_serving_a_lane_that_calls_without_it_is_counted_as_lane_lost() {
    let mesh = mesh();
    let client = mesh.caller(Some("default/client"));
    let relay = mesh.caller(Some("default/relay"));
    let before = lost("default/relay");
    client.get(RELAY, "/", &[("x-graylane-tag", "gray")]).await;
    assert_eq!(relay.get(APP, "/", &[]).await.body, "base", "nothing to recover it by");
    assert_eq!(lost("default/relay"), before + 1);
    let flow = mesh.flows.list().into_iter().rfind(|f| f.start.src_pod.as_deref() == Some("default/relay"));
    assert_eq!(flow.and_then(|f| f.state.lane_lost).as_deref(), Some("gray"));
    // Once base traffic reaches the relay, its untagged calls are base calls, not losses.
    client.get(RELAY, "/", &[]).await;
    relay.get(APP, "/", &[]).await;
    assert_eq!(lost("default/relay"), before + 1);
}

#[tokio::test]
async fn lanes_in_any_carrier_from_outside_the_mesh_are_ignored() {
    let mesh = mesh();
    let outside = mesh.caller(None);
    let tp = traceparent(TRACE);
    for (name, value) in [
        ("tracestate", "graylane=gray"),
        ("sw8-correlation", "Z3JheWxhbmUtdGFn:Z3JheQ=="),
        ("uberctx-graylane-tag", "gray"),
        ("ot-baggage-graylane-tag", "gray"),
    ] {
        let answer = outside.get(APP, "/", &[("traceparent", &tp), (name, value)]).await;
        assert_eq!(answer.body, "base", "{name}");
        assert!(!answer.header(&format!("seen-{name}")).contains("gray"), "{name} reached the app");
    }
}
