//! Prometheus metrics, one process-wide registry served as text on `:15090/metrics`.
//! Families are grouped by what they describe (one file each); every label has a bounded
//! set of values: policy scopes and services come from configuration, never from requests.

mod data;
mod inventory;
mod kernel;
mod lanes;
mod policy;
mod proxy;
mod requests;
mod tracing;
mod upstream;

use std::sync::LazyLock;

use std::fmt::Write as _;

use prometheus::{Encoder as _, Registry, TextEncoder, proto::MetricType};

pub use data::DataMetrics;
pub use inventory::InventoryMetrics;
pub use kernel::KernelMetrics;
pub use lanes::LaneMetrics;
pub use policy::PolicyMetrics;
pub use proxy::ProxyMetrics;
pub use requests::{RequestMetrics, code_class};
pub use tracing::TracingMetrics;
pub use upstream::UpstreamMetrics;

pub struct Metrics {
    registry: Registry,
    pub requests: RequestMetrics,
    pub policy: PolicyMetrics,
    pub proxy: ProxyMetrics,
    pub kernel: KernelMetrics,
    pub lanes: LaneMetrics,
    pub inventory: InventoryMetrics,
    pub tracing: TracingMetrics,
    pub upstream: UpstreamMetrics,
    pub data: DataMetrics,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: prometheus::IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new_custom(Some("graylane".into()), None).unwrap_or_default();
    Metrics {
        requests: RequestMetrics::new(&registry),
        policy: PolicyMetrics::new(&registry),
        proxy: ProxyMetrics::new(&registry),
        kernel: KernelMetrics::new(&registry),
        lanes: LaneMetrics::new(&registry),
        inventory: InventoryMetrics::new(&registry),
        tracing: TracingMetrics::new(&registry),
        upstream: UpstreamMetrics::new(&registry),
        data: DataMetrics::new(&registry),
        access_log_dropped: define(
            &registry,
            prometheus::IntCounter::new(
                "access_log_dropped_total",
                "Access-log lines dropped (writer behind).",
            ),
        ),
        registry,
    }
});

/// The process' metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Every family in the Prometheus text format. A family with no series yet (a labelled
    /// counter nothing has counted) is still declared by its `# HELP` and `# TYPE` lines, so
    /// a scraper can tell "none counted" from "no such metric".
    pub fn encode(&self) -> String {
        let families = self.registry.gather();
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            ::tracing::error!(error = %e, "metrics encoding failed");
        }
        let mut text = String::from_utf8_lossy(&out).into_owned();
        let shown: std::collections::HashSet<&str> = families.iter().map(|f| f.name()).collect();
        for f in DEFINED.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let name = format!("graylane_{}", f.name);
            if !shown.contains(name.as_str()) {
                let _ = write!(text, "# HELP {name} {}\n# TYPE {name} {}\n", f.help, f.kind);
            }
        }
        text
    }
}

/// Registers a family made from a static definition (a bad definition or a clash is a bug
/// in this module: it fails the first scrape's caller loudly, in tests first).
fn define<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    made: prometheus::Result<C>,
) -> C {
    let c = made.unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
    let declared = c.collect().into_iter().map(|family| Declared {
        name: family.name().to_owned(),
        help: family.help().replace('\\', "\\\\").replace('\n', "\\n"),
        kind: match family.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "untyped",
        },
    });
    DEFINED.lock().unwrap_or_else(|p| p.into_inner()).extend(declared);
    if let Err(e) = registry.register(Box::new(c.clone())) {
        ::tracing::error!(error = %e, "metric registration failed");
    }
    c
}

/// A labelled counter family.
fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::IntCounterVec {
    define(registry, prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), labels))
}

/// A labelled gauge family.
fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::IntGaugeVec {
    define(registry, prometheus::IntGaugeVec::new(prometheus::Opts::new(name, help), labels))
}

/// A registered family as `/metrics` declares it (name without the `graylane_` prefix,
/// help escaped for the text format, type), kept from its definition.
struct Declared {
    name: String,
    help: String,
    kind: &'static str,
}

/// Every registered family.
static DEFINED: std::sync::Mutex<Vec<Declared>> = std::sync::Mutex::new(Vec::new());

#[cfg(test)]
mod tests {
    use super::*;

    /// The Grafana dashboard only queries families that exist.
    #[test]
    fn the_dashboard_queries_real_families() {
        let _ = metrics();
        let families: Vec<String> =
            DEFINED.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|f| f.name.clone()).collect();
        let dashboard = include_str!("../../../deploy/grafana/graylane.json");
        let re = regex::Regex::new(r"graylane_([a-z_]+)").expect("regex");
        let mut checked = 0;
        for m in re.captures_iter(dashboard) {
            let name = &m[1];
            let base = ["_bucket", "_count", "_sum"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(
                families.iter().any(|f| f == base),
                "the dashboard queries graylane_{name}: no such family"
            );
            checked += 1;
        }
        assert!(checked > 10, "{checked}");
    }

    /// A family nothing has counted yet is declared all the same.
    #[test]
    fn families_without_series_are_declared() {
        let text = metrics().encode();
        let declared = |name: &str| text.lines().any(|l| l == format!("# TYPE graylane_{name} counter"));
        assert!(declared("lane_escapes_total"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("# HELP graylane_lane_escapes_total ")), "{text}");
    }
}
