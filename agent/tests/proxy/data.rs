//! The data-lane relay (`proxy::data::pump`) between in-memory streams: a lane's pipelined
//! commands reach the server rewritten, refusals come back in their place, a client that
//! stops sending still gets every reply, and both sides close. (The protocols against
//! real servers: `tests/tests/data_lanes.rs`.)

use std::sync::Arc;

use graylane::{
    proxy::data::pump,
    stores::redis::Redis,
    telemetry::{
        ConnTelemetry, Recording, Telemetry,
        data::DataSeries,
        flows::{FlowStart, Flows},
        trace::Tracer,
    },
    vocab::{ClientAddr, OrigDstAddr},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream},
    task::JoinHandle,
};

fn conn(flows: &Flows) -> ConnTelemetry {
    let client = ClientAddr("10.244.0.10:40000".parse().expect("addr"));
    let flow = flows.open(
        FlowStart {
            client,
            orig_dst: OrigDstAddr("10.96.0.60:6379".parse().expect("addr")),
            src_pod: Some("default/stress-app".into()),
            src_cgroup: 0,
            tag: Some("stress".into()),
            tenant: None,
            source_ip: Some("pod"),
            source_fallback: None,
        },
        "tcp",
    );
    ConnTelemetry::new(flow, Arc::from("stress-app"), client.0, Some(Arc::from("default/stress-app")))
}

/// How a relay ended (bytes each way, or the error) and the refusals its flow counted.
type Ended = (Result<(u64, u64), String>, u64);

/// The stress lane's Redis relay between the two streams, as a task.
fn relay(client: DuplexStream, server: DuplexStream) -> JoinHandle<Ended> {
    tokio::spawn(async move {
        let flows = Flows::new(4);
        let conn = conn(&flows);
        let telemetry =
            Telemetry { tracer: Tracer::new(None, 0.0), access_log: None, record: Recording::ALL };
        let series = DataSeries::new("default/redis", "stress", "redis");
        let mut codec = Redis::new(b"shadow:", "stress", true);
        let budget = graylane::proxy::data_budget::DataBudget::new(256 << 20, 64 << 20);
        let mut held = budget.hold(None);
        let r = pump(&mut codec, client, server, &telemetry, &conn, &series, &mut held).await;
        let mut rejected = 0;
        conn.flow.update(|s| rejected = s.data_rejected);
        (r.map_err(|e| e.to_string()), rejected)
    })
}

#[tokio::test]
async fn pipelined_commands_are_relayed_in_order_and_a_half_closed_client_gets_every_reply() {
    let (mut client, proxy_client) = tokio::io::duplex(4096);
    let (proxy_server, mut server) = tokio::io::duplex(4096);
    // The server: reads until the proxy half-closes, then answers each command `+OK`.
    let server_task = tokio::spawn(async move {
        let mut seen = Vec::new();
        server.read_to_end(&mut seen).await.expect("read");
        let commands = seen.windows(3).filter(|w| w == b"*3\r" || w == b"*1\r").count();
        for _ in 0..commands {
            server.write_all(b"+OK\r\n").await.expect("write");
        }
        server.shutdown().await.expect("shutdown");
        String::from_utf8_lossy(&seen).into_owned()
    });
    let relay = relay(proxy_client, proxy_server);
    client
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*1\r\n$8\r\nFLUSHALL\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n")
        .await
        .expect("send");
    client.shutdown().await.expect("half-close");
    let mut replies = String::new();
    client.read_to_string(&mut replies).await.expect("replies");
    assert_eq!(
        replies,
        "+OK\r\n-ERR graylane: lane 'stress' may not run FLUSHALL here: it reaches the whole server\r\n+OK\r\n"
    );
    let seen = server_task.await.expect("server");
    assert_eq!(
        seen,
        "*3\r\n$3\r\nSET\r\n$8\r\nshadow:a\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$8\r\nshadow:b\r\n$1\r\n2\r\n"
    );
    let (result, rejected) = relay.await.expect("relay");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(rejected, 1, "the flow counts the refusal");
}

#[tokio::test]
async fn a_malformed_frame_closes_the_connection() {
    let (mut client, proxy_client) = tokio::io::duplex(4096);
    let (proxy_server, mut server) = tokio::io::duplex(4096);
    let relay = relay(proxy_client, proxy_server);
    client.write_all(b"*1\r\n:1\r\n").await.expect("send");
    let err = relay.await.expect("relay").0.expect_err("malformed");
    assert!(err.contains("bulk strings"), "{err}");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.expect("closed");
    let mut upstream = Vec::new();
    server.read_to_end(&mut upstream).await.expect("closed");
    assert!(upstream.is_empty(), "nothing reached the server");
}
