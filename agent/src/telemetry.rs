//! What graylane tells about the traffic it carries: the flow table and Prometheus metrics.

pub mod flows;
pub mod metrics;

pub use metrics::metrics;
