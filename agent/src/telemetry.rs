//! What graylane tells about the traffic it carries: the flow table and Prometheus metrics.

pub mod access_log;
pub mod flows;
pub mod kernel_flows;
pub mod metrics;
pub mod trace;
mod workload;

pub use metrics::metrics;
pub use workload::workload;
