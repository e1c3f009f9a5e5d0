//! Span export: finished spans go into a bounded queue (full: dropped and counted, the
//! request never waits), and one task sends them in batches as OTLP/HTTP protobuf to the
//! collector, every second or every `BATCH` spans.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use prometheus::IntCounterVec;
use prost::Message as _;
use tokio::sync::mpsc;

use super::otlp::{
    self, ExportTraceServiceRequest, InstrumentationScope, Resource, ResourceSpans, ScopeSpans,
};
use crate::{proxy::Connector, telemetry::metrics};

/// Spans waiting for export at most; beyond it spans are dropped.
const QUEUE: usize = 4096;
/// Spans per export request at most.
const BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Exporter {
    tx: mpsc::Sender<otlp::Span>,
    spans: IntCounterVec,
}

impl Exporter {
    /// Starts the export task (inside the Tokio runtime). `endpoint` is the collector's
    /// `http://host:4318/v1/traces`.
    pub fn start(endpoint: Uri, node: Option<String>, connector: Connector) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let spans = metrics().tracing.spans.clone();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        tokio::spawn(run(rx, endpoint, node, client, spans.clone()));
        Arc::new(Self { tx, spans })
    }

    /// Queues a finished span; drops it (counted) when the queue is full.
    pub fn submit(&self, span: otlp::Span) {
        if self.tx.try_send(span).is_err() {
            self.spans.with_label_values(&["dropped"]).inc();
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<otlp::Span>,
    endpoint: Uri,
    node: Option<String>,
    client: Client<Connector, Full<Bytes>>,
    spans: IntCounterVec,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let flush = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(flush);
        loop {
            tokio::select! {
                span = rx.recv() => match span {
                    Some(s) => {
                        batch.push(s);
                        if batch.len() >= BATCH { break; }
                    }
                    None => return,
                },
                () = &mut flush => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let n = batch.len() as u64;
        let body = request(std::mem::take(&mut batch), node.as_deref()).encode_to_vec();
        let result = match send(&client, &endpoint, body).await {
            Ok(()) => "exported",
            Err(e) => {
                tracing::warn!(collector = %endpoint, error = %e, spans = n, "span export failed");
                "failed"
            }
        };
        spans.with_label_values(&[result]).inc_by(n);
    }
}

async fn send(client: &Client<Connector, Full<Bytes>>, endpoint: &Uri, body: Vec<u8>) -> anyhow::Result<()> {
    let req = Request::post(endpoint.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))?;
    let resp = tokio::time::timeout(EXPORT_TIMEOUT, client.request(req)).await??;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    anyhow::ensure!(status.is_success(), "collector answered {status}");
    Ok(())
}

fn request(spans: Vec<otlp::Span>, node: Option<&str>) -> ExportTraceServiceRequest {
    let mut attributes = vec![otlp::kv("service.name", otlp::Value::String("graylane".into()))];
    if let Some(n) = node {
        attributes.push(otlp::kv("k8s.node.name", otlp::Value::String(n.to_owned())));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "graylane-proxy".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                spans,
            }],
        }],
    }
}
