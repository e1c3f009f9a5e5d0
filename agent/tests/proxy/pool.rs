//! Upstream connections are reused, and each request is recorded once.

use std::{sync::atomic::Ordering, time::Duration};

use crate::harness::{APP, Backend, Mesh, app, handler, named, pod_origin};

#[tokio::test]
async fn a_keep_alive_caller_costs_one_upstream_connection_and_one_record_per_request() {
    let mesh = Mesh::new(&app(""));
    mesh.endpoints.set("10.244.0.20:8080", named("base"));
    let answers = mesh.caller(Some("default/client")).keep_alive(APP, "/", 100).await;
    assert!(answers.iter().all(|a| a.status == 200 && a.body == "base"));
    assert_eq!(mesh.endpoints.dials.load(Ordering::Relaxed), 1, "one upstream connection for 100 requests");
    let flows = mesh.flows.list();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].state.requests, 100, "recorded once each");
    // Ten more connections, one after the other, reuse the idle upstream connection.
    for _ in 0..10 {
        mesh.caller(Some("default/client")).get(APP, "/", &[]).await;
    }
    assert_eq!(mesh.endpoints.dials.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn connections_leave_from_the_callers_origin_and_are_reused_only_by_it() {
    let mesh = Mesh::new(&app(""));
    mesh.endpoints.set("10.244.0.20:8080", named("base"));
    let (a, b) = (pod_origin("default/client", 101), pod_origin("default/client-b", 202));
    for _ in 0..5 {
        for origin in [&a, &b] {
            let answer = mesh.caller(Some("default/client")).from(origin.clone()).get(APP, "/", &[]).await;
            assert_eq!(answer.status, 200);
        }
    }
    // One connection per origin, each reused by its own caller only; none from the node.
    let mut origins = mesh.endpoints.origins.lock().expect("lock").clone();
    origins.sort_unstable();
    assert_eq!(origins, [101, 202]);
    // A caller from the node (no namespace of its own) gets its own connection too.
    mesh.caller(Some("default/client")).get(APP, "/", &[]).await;
    assert_eq!(mesh.endpoints.origins.lock().expect("lock").last(), Some(&0));
    assert_eq!(mesh.endpoints.dials.load(Ordering::Relaxed), 3);
}

/// A keep-alive caller whose requests alternate between two endpoints: its connection's
/// upstream connection is parked when the next request goes elsewhere and taken back when
/// one goes to its endpoint again — two connections in all, whoever drives them.
#[tokio::test]
async fn a_caller_switching_endpoints_parks_and_takes_back_its_upstream_connections() {
    let base2 = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: app-base-2, namespace: default, labels: {app: app}}\nstatus: {podIP: 10.244.0.22}\n";
    let mesh = Mesh::new(&app(base2));
    mesh.endpoints.set("10.244.0.20:8080", named("base"));
    mesh.endpoints.set("10.244.0.22:8080", named("base-2"));
    let answers = mesh.caller(Some("default/client")).keep_alive(APP, "/", 40).await;
    assert!(answers.iter().all(|a| a.status == 200));
    let served: std::collections::HashSet<&str> = answers.iter().map(|a| a.body.as_str()).collect();
    assert_eq!(served.len(), 2, "both endpoints served: {served:?}");
    assert_eq!(mesh.endpoints.dials.load(Ordering::Relaxed), 2, "one connection per endpoint");
    // Another caller's connection takes over the parked ones.
    for _ in 0..6 {
        assert_eq!(mesh.caller(Some("default/client")).get(APP, "/", &[]).await.status, 200);
    }
    assert_eq!(mesh.endpoints.dials.load(Ordering::Relaxed), 2);
}

/// An idle connection its server closed (a keep-alive timeout) is never given a request:
/// not while its caller's connection drives it, nor after it was parked, unpolled, when
/// the server closed it.
#[tokio::test]
async fn a_connection_its_server_closed_while_idle_is_not_used() {
    let mesh = Mesh::new(&app(""));
    mesh.endpoints.set("10.244.0.20:8080", Backend::Once("base", Duration::from_millis(20)));
    let client = mesh.caller(Some("default/client"));
    for i in 1..=4 {
        let a = client.get(APP, "/", &[]).await;
        assert_eq!((a.status.as_u16(), a.body.as_str()), (200, "base"), "request {i}");
        // Parked (its caller has gone), then closed by the server.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(mesh.endpoints.dials.load(Ordering::Relaxed), 4, "a fresh connection each time");
    // One caller connection: the server closes each connection while the caller's
    // connection drives it.
    let answers = client.keep_alive_paced(APP, "/", 4, Duration::from_millis(60)).await;
    assert!(answers.iter().all(|a| a.status == 200 && a.body == "base"));
    assert_eq!(mesh.endpoints.dials.load(Ordering::Relaxed), 8);
}

/// Not a test: the request path's user-space cost, for `valgrind --tool=callgrind`
/// (instructions per request, repeatable where wall-clock figures are noise). Run with
/// `GRAYLANE_COST_REQUESTS=N cargo test --release -p graylane --test proxy -- --ignored cost`.
#[tokio::test]
#[ignore = "a measurement, run by hand under callgrind"]
async fn cost() {
    let n = std::env::var("GRAYLANE_COST_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mesh = Mesh::new(&app(""));
    // What the bench's nginx answers: 1 KiB and its usual headers.
    mesh.endpoints.set(
        "10.244.0.21:8080",
        handler(|_| async {
            let mut r = http::Response::new(bytes::Bytes::from(vec![b'x'; 1024]));
            for (k, v) in [
                ("server", "nginx/1.26.3"),
                ("date", "Mon, 07 Dec 2026 06:00:00 GMT"),
                ("content-type", "text/html"),
                ("last-modified", "Mon, 07 Dec 2026 05:00:00 GMT"),
                ("etag", "\"6939f1c0-400\""),
                ("accept-ranges", "bytes"),
            ] {
                r.headers_mut().insert(k, http::HeaderValue::from_static(v));
            }
            r
        }),
    );
    let answers = mesh.caller(Some("default/gray-client")).keep_alive(APP, "/", n).await;
    assert!(answers.iter().all(|a| a.status == 200));
}
