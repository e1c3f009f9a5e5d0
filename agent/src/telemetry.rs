//! What graylane tells about the traffic it carries: Prometheus metrics, the flow table,
//! spans and the access log, recorded once per request from a [`RequestRecord`]. Depends
//! only on the shared vocabulary.

pub mod access_log;
pub mod data;
pub mod flows;
pub mod metrics;
mod record;
pub mod trace;

pub use metrics::metrics;
pub use record::{ConnTelemetry, LocalAnswer, Recording, RequestRecord, Telemetry};
