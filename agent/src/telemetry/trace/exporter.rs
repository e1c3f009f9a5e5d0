//! Span export: finished spans go into a bounded queue (full: dropped and counted, the
//! request never waits), and one task sends them in batches as OTLP/HTTP protobuf to the
//! collector: what queued up, every 100 ms, in batches of at most `BATCH`.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    client::legacy::{Client, connect::Connect},
    rt::TokioExecutor,
};
use prometheus::IntCounterVec;
use prost::Message as _;
use tokio::sync::mpsc;

use super::otlp::{
    self, ExportTraceServiceRequest, InstrumentationScope, Resource, ResourceSpans, ScopeSpans,
};
use crate::telemetry::metrics;

/// Spans waiting for export at most; beyond it spans are dropped.
const QUEUE: usize = 16_384;
/// Spans per export request at most.
const BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Exporter {
    tx: mpsc::Sender<otlp::Span>,
    spans: IntCounterVec,
}

impl Exporter {
    /// Starts the export task (inside the Tokio runtime). `endpoint` is the collector's
    /// `http://host:4318/v1/traces`.
    /// `connector` opens the connections (the agent's: bypass-marked, never captured).
    pub fn start<C>(endpoint: Uri, node: Option<String>, connector: C) -> Arc<Self>
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
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

async fn run<C>(
    mut rx: mpsc::Receiver<otlp::Span>,
    endpoint: Uri,
    node: Option<String>,
    client: Client<C, Full<Bytes>>,
    spans: IntCounterVec,
) where
    C: Connect + Clone + Send + Sync + 'static,
{
    loop {
        // Wakes on its own schedule and takes what queued up: a span never wakes this task
        // (a wake-up per span costs more than the span).
        tokio::time::sleep(FLUSH_EVERY).await;
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            let n = batch.len() as u64;
            if n == 0 {
                break;
            }
            let body = request(batch, node.as_deref()).encode_to_vec();
            let result = match send(&client, &endpoint, body).await {
                Ok(()) => "exported",
                Err(e) => {
                    tracing::warn!(collector = %endpoint, error = %e, spans = n, "span export failed");
                    "failed"
                }
            };
            spans.with_label_values(&[result]).inc_by(n);
            if n < BATCH as u64 {
                break;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("building the export request: {0}")]
    Build(http::Error),
    #[error("no answer within {EXPORT_TIMEOUT:?}")]
    Timeout,
    #[error("{0}")]
    Client(hyper_util::client::legacy::Error),
    #[error("the collector answered {0}")]
    Status(http::StatusCode),
}

async fn send<C>(client: &Client<C, Full<Bytes>>, endpoint: &Uri, body: Vec<u8>) -> Result<(), ExportError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let req = Request::post(endpoint.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(ExportError::Build)?;
    let resp = tokio::time::timeout(EXPORT_TIMEOUT, client.request(req))
        .await
        .map_err(|_| ExportError::Timeout)?
        .map_err(ExportError::Client)?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if !status.is_success() {
        return Err(ExportError::Status(status));
    }
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
