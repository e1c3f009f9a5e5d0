//! What graylane tells about the traffic it carries: the flow table and Prometheus metrics.

pub mod flows;
pub mod metrics;
mod workload;

pub use metrics::metrics;
pub use workload::workload;
