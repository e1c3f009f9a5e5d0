//! Prometheus metrics, one process-wide registry served as text on `:15090/metrics`.
//! Families are grouped by what they describe (one file each); every label has a bounded
//! set of values: policy scopes and services come from configuration, never from requests.

mod policy;

use std::sync::LazyLock;

use prometheus::{Encoder as _, Registry, TextEncoder};

pub use policy::PolicyMetrics;

pub struct Metrics {
    registry: Registry,
    pub policy: PolicyMetrics,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new_custom(Some("graylane".into()), None).unwrap_or_default();
    let policy = PolicyMetrics::new(&registry);
    Metrics { registry, policy }
});

/// The process' metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Every family in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Registers `c` (families are defined once, by this module; a clash is a bug, logged).
fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    c
}
