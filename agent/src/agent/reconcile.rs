//! Applies inventory snapshots to the kernel maps and the proxy's routing state.

use std::sync::Arc;

use crate::{
    admin::AdminContext,
    datapath::{CgroupRoot, MapSync},
    inventory::{CaptureConfig, KernelView, Snapshot},
    policy::Registry,
    proxy::{Namespaces, ProxyState, SharedState},
    routing::RoutingTable,
};

pub struct Reconciler {
    pub sync: MapSync,
    /// Rate-limit budgets and concurrency counters, kept across routing rebuilds.
    pub policies: Registry,
    pub capture: CaptureConfig,
    pub root: CgroupRoot,
    pub state: SharedState,
    pub ctx: Arc<AdminContext>,
    /// Pods' network namespace handles, released when pods go.
    pub namespaces: Option<Arc<Namespaces>>,
}

impl Reconciler {
    /// Returns whether some local pod's cgroup is still missing (retry later).
    pub fn apply(&mut self, snapshot: &Arc<Snapshot>) -> bool {
        let started = std::time::Instant::now();
        let mut view = KernelView::build(snapshot, &self.capture, &self.root);
        // The routing table first: the kernel's lane routes are compiled from it.
        let routing = RoutingTable::build(snapshot, &self.policies);
        if self.capture.kernel_lanes {
            view.state.lanes = crate::routing::kernel::compile(&routing, &view.caller_lanes());
        }
        let viewed = started.elapsed();
        let mut report = (*self.ctx.sync.load_full()).clone();
        match self.sync.apply(&view.state) {
            Ok(stats) => {
                report.last = stats;
                report.last_error = None;
                tracing::debug!(written = stats.written, removed = stats.removed, "kernel maps synced");
            }
            Err(e) => {
                tracing::error!(error = %e, "kernel map sync failed");
                report.last_error = Some(e.to_string());
            }
        }
        report.syncs += 1;
        report.kernel_lanes = view.state.lanes.len();
        report.unresolved_cgroups.clone_from(&view.unresolved);
        for svc in view.uncaptured.iter().filter(|s| !report.uncaptured_services.contains(s)) {
            tracing::warn!(
                service = %svc,
                "service's cluster IP is outside every captured range (ServiceCIDR objects, --service-cidr): \
                 its traffic is not captured"
            );
        }
        report.uncaptured_services.clone_from(&view.uncaptured);
        self.ctx.sync.store(Arc::new(report));
        let synced = started.elapsed();
        self.state.store(Arc::new(ProxyState::with_routing(snapshot.clone(), self.sync.names(), routing)));
        self.policies.tidy();
        if let Some(ns) = &self.namespaces {
            ns.retain(snapshot);
        }
        let m = &crate::telemetry::metrics().inventory;
        m.reloads.with_label_values(&["applied"]).inc();
        m.last_applied.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        );
        publish_info(snapshot, &self.state.load().routing);
        for (kind, n) in [
            ("pod", snapshot.pods.len()),
            ("service", snapshot.services.len()),
            ("traffic_policy", snapshot.policies.len()),
            ("traffic_label_rule", snapshot.rules.len()),
        ] {
            m.objects.with_label_values(&[kind]).set(n as i64);
        }
        tracing::debug!(
            view_ms = viewed.as_millis() as u64,
            sync_ms = (synced - viewed).as_millis() as u64,
            routing_ms = (started.elapsed() - synced).as_millis() as u64,
            "snapshot applied"
        );
        !view.unresolved.is_empty()
    }
}

/// `graylane_workload_info` and `graylane_data_lane_info` as of this snapshot (the lane map
/// built from Prometheus reads them).
fn publish_info(snapshot: &Snapshot, routing: &RoutingTable) {
    let m = &crate::telemetry::metrics().inventory;
    m.workloads.reset();
    m.data_lanes.reset();
    let pods: std::collections::HashMap<String, &Arc<crate::inventory::Pod>> =
        snapshot.pods.iter().map(|p| (p.key().0, p)).collect();
    for view in routing.describe(None) {
        for subset in &view.subsets {
            for e in &subset.endpoints {
                let Some(pod) = pods.get(&e.pod) else { continue };
                let workload = crate::inventory::workload(pod);
                let (tag, tenant) = (pod.tag.as_deref().unwrap_or(""), pod.tenant.as_deref().unwrap_or(""));
                m.workloads
                    .with_label_values(&[&*workload, &*view.service, &*subset.subset, tag, tenant])
                    .set(1);
            }
        }
        for d in &view.data_lanes {
            m.data_lanes.with_label_values(&[&*view.service, &*d.lane, d.protocol, &*d.mapping]).set(1);
        }
    }
}
