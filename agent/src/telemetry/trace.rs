//! Tracing: trace-context propagation (W3C and B3), `x-request-id`, and one span per
//! proxied request exported as OTLP/HTTP protobuf, sampled (the caller's decision first).

mod context;
mod exporter;
pub mod otlp;

use std::{sync::Arc, time::SystemTime};

pub use context::{Hop, extract, hex_into, parse_b3_single, parse_traceparent, request_id, to_hex};
pub use exporter::Exporter;
use rand::Rng as _;

/// Whether spans are recorded, and where they go.
pub struct Tracer {
    exporter: Option<Arc<Exporter>>,
    /// For traces this hop starts (or whose caller did not decide).
    sample_percent: f64,
}

impl Tracer {
    pub fn new(exporter: Option<Arc<Exporter>>, sample_percent: f64) -> Self {
        Self { exporter, sample_percent }
    }

    /// Starts this hop's span context from the request's headers.
    pub fn start(&self, headers: &http::HeaderMap) -> Hop {
        let pct = self.sample_percent;
        Hop::start(headers, || pct >= 100.0 || rand::rng().random_range(0.0..100.0) < pct)
    }

    /// Whether this hop's span will be exported (sampled, and a collector configured).
    pub fn records(&self, hop: &Hop) -> bool {
        self.exporter.is_some() && hop.sampled
    }

    /// Exports a finished span when this hop is sampled and a collector is configured.
    pub fn finish(
        &self,
        hop: &Hop,
        name: String,
        started: SystemTime,
        attributes: Vec<otlp::KeyValue>,
        error: bool,
    ) {
        let Some(exporter) = &self.exporter else { return };
        if !hop.sampled {
            return;
        }
        let nanos =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        exporter.submit(otlp::Span {
            trace_id: hop.trace_id.to_vec(),
            span_id: hop.span_id.to_vec(),
            trace_state: hop.trace_state.clone().unwrap_or_default(),
            parent_span_id: hop.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            name,
            kind: otlp::SPAN_KIND_CLIENT,
            start_time_unix_nano: nanos(started),
            end_time_unix_nano: nanos(SystemTime::now()),
            attributes,
            status: error.then(|| otlp::Status { message: String::new(), code: otlp::STATUS_ERROR }),
        });
    }
}
