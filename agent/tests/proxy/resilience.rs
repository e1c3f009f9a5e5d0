//! Resilience on the request path, in virtual time: retries on fresh picks (and only when
//! the error says another try can help), per-try timeouts, budgets, breakers, limits,
//! mirroring.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::harness::{APP, Backend, Mesh, app, handler, named, slow};

fn policy(spec: &str) -> String {
    format!(
        "---\napiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: app, namespace: default}}\nspec:\n  service: app\n{spec}"
    )
}

/// Base gets a second pod (.22) so retries have somewhere else to go.
fn two_base(spec: &str) -> Mesh {
    let extra = format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: app-base-2, namespace: default, labels: {{app: app}}}}\nstatus: {{podIP: 10.244.0.22}}\n{}",
        policy(spec)
    );
    Mesh::new(&app(&extra))
}

#[tokio::test]
async fn a_refused_connect_is_retried_on_another_endpoint() {
    let mesh = two_base("  retry: {attempts: 2, backoff: 1ms}\n");
    mesh.endpoints.set("10.244.0.20:8080", Backend::Refuse);
    mesh.endpoints.set("10.244.0.22:8080", named("base-2"));
    let client = mesh.caller(Some("default/client"));
    for _ in 0..10 {
        let a = client.get(APP, "/", &[]).await;
        assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "base-2"));
    }
    let retried: u64 = mesh.flows.list().iter().map(|f| f.state.retries).sum();
    assert!(retried >= 4, "about half the first picks were retried: {retried}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_try_times_out_and_the_retry_answers_within_the_deadline() {
    let mesh = two_base("  retry: {attempts: 2, perTryTimeout: 100ms, backoff: 1ms}\n  timeout: 1s\n");
    mesh.endpoints.set("10.244.0.20:8080", slow("stuck", Duration::from_secs(30), StatusCode::OK));
    mesh.endpoints.set("10.244.0.22:8080", named("base-2"));
    let client = mesh.caller(Some("default/client"));
    for _ in 0..6 {
        let started = tokio::time::Instant::now();
        let a = client.get(APP, "/", &[]).await;
        assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "base-2"));
        assert!(started.elapsed() < Duration::from_millis(250), "{:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_non_idempotent_request_and_a_policy_refusal_are_never_retried() {
    let mesh = two_base("  retry: {attempts: 3, backoff: 1ms}\n  rateLimit: {requests: 1, interval: 1m}\n");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let failing = handler(move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
        async {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    });
    mesh.endpoints.set("10.244.0.20:8080", failing.clone());
    mesh.endpoints.set("10.244.0.22:8080", failing);
    let client = mesh.caller(Some("default/client"));
    let post =
        client.send(APP, false, crate::harness::request("POST", "/", &[], Bytes::from_static(b"x"))).await;
    assert_eq!(post.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits.load(Ordering::Relaxed), 1, "POST is not idempotent");
    let limited = client.get(APP, "/", &[]).await;
    assert_eq!((limited.status.as_u16(), limited.header("x-graylane-reason")), (429, "rate_limited"));
    assert_eq!(hits.load(Ordering::Relaxed), 1, "a local refusal never reaches upstream, nor is retried");
}

#[tokio::test]
async fn a_failing_endpoint_is_ejected_by_its_breaker() {
    let mesh = two_base("  circuitBreaker: {consecutiveFailures: 3, openFor: 1m}\n");
    mesh.endpoints.set("10.244.0.20:8080", Backend::Refuse);
    mesh.endpoints.set("10.244.0.22:8080", named("base-2"));
    let client = mesh.caller(Some("default/client"));
    let mut failures = 0;
    for _ in 0..40 {
        if client.get(APP, "/", &[]).await.status != StatusCode::OK {
            failures += 1;
        }
    }
    assert_eq!(failures, 3, "three failures open the breaker; then only the healthy endpoint serves");
}

#[tokio::test]
async fn a_mirror_copy_reaches_the_shadow_subset_and_the_caller_never_waits() {
    let extra = format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: app-shadow, namespace: default, labels: {{app: app}}, annotations: {{graylane.io/tag: shadow}}}}\nstatus: {{podIP: 10.244.0.29}}\n{}",
        policy("  mirror: {subset: shadow}\n")
    );
    let mesh = Mesh::new(&app(&extra));
    mesh.endpoints.set("10.244.0.20:8080", named("base"));
    let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hosts.clone();
    mesh.endpoints.set(
        "10.244.0.29:8080",
        handler(move |req| {
            seen.lock().expect("lock").push(req.headers()["host"].to_str().unwrap_or("").to_owned());
            async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Response::new(Bytes::new())
            }
        }),
    );
    let client = mesh.caller(Some("default/client"));
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(client.get(APP, "/", &[]).await.body, "base");
    }
    assert!(started.elapsed() < Duration::from_secs(1), "the shadow's 5 s never held the caller");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(*hosts.lock().expect("lock"), vec!["app.default-shadow".to_owned(); 5]);
}
