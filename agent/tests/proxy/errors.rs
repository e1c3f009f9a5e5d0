//! One error, answered in one place: statuses and reasons by cause, bodies in graylane's
//! words (no address, no library text), gRPC callers answered in gRPC.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use crate::harness::{APP, Backend, Mesh, app, request, slow};

#[tokio::test]
async fn refused_connects_and_resets_are_503_and_502_with_their_reason_and_no_address() {
    let mesh = Mesh::new(&app(""));
    mesh.endpoints.set("10.244.0.20:8080", Backend::Refuse);
    let client = mesh.caller(Some("default/client"));
    let refused = client.get(APP, "/", &[]).await;
    assert_eq!(
        (refused.status.as_u16(), refused.header("x-graylane-reason")),
        (503, "upstream_connect_failure")
    );
    assert!(
        refused.body.contains("default/app")
            && !refused.body.contains("10.244")
            && !refused.body.contains("refused"),
        "{}",
        refused.body
    );
    mesh.endpoints.set("10.244.0.20:8080", Backend::Reset);
    let reset = client.get(APP, "/", &[]).await;
    assert_eq!((reset.status.as_u16(), reset.header("x-graylane-reason")), (502, "upstream_reset"));
    assert!(!reset.body.contains("10.244") && !reset.body.contains("hyper"), "{}", reset.body);
    let unknown = client.get("10.96.0.99:80", "/", &[]).await;
    assert_eq!((unknown.status.as_u16(), unknown.header("x-graylane-reason")), (503, "unknown_destination"));
}

#[tokio::test(start_paused = true)]
async fn a_grpc_caller_past_its_deadline_gets_deadline_exceeded_in_grpc() {
    let mesh = Mesh::new(&app(""));
    mesh.endpoints.set("10.244.0.20:8080", slow("base", Duration::from_secs(10), StatusCode::OK));
    let client = mesh.caller(Some("default/client"));
    let started = tokio::time::Instant::now();
    let req = request(
        "POST",
        "http://app.default/echo.Echo/Say",
        &[("content-type", "application/grpc"), ("grpc-timeout", "200m"), ("te", "trailers")],
        Bytes::from_static(b"\0\0\0\0\0"),
    );
    let answer = client.send(APP, true, req).await;
    assert_eq!(answer.status, StatusCode::OK, "gRPC errors travel in grpc-status");
    assert_eq!((answer.header("grpc-status"), answer.header("x-graylane-reason")), ("4", "request_timeout"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_millis(300), "{waited:?}");
    // A plain HTTP caller with the same deadline gets 504.
    let plain = client.get(APP, "/", &[("grpc-timeout", "100m")]).await;
    assert_eq!(plain.status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn http2_requests_keep_the_callers_authority_and_send_no_host() {
    let mesh = Mesh::new(&app(""));
    mesh.endpoints.set("10.244.0.20:8080", crate::harness::named("base"));
    let req = request("GET", "http://app.default:80/x", &[], Bytes::new());
    let answer = mesh.caller(Some("default/client")).send(APP, true, req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("seen-uri"), "http://app.default:80/x", "the authority names the service");
    assert_eq!(answer.header("seen-host"), "", "no Host beside :authority");
}
