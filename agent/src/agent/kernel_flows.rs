//! Connections the proxy never saw become flows too: connects the kernel did not capture
//! (outcome `bypassed`), and those it routed or refused itself (path `kernel`), closed with
//! their bytes when TCP closes them. Kernel-routed connections count in the same metrics as
//! proxied ones (`result="kernel"`).

use std::{collections::HashMap, sync::Arc, time::Instant};

use graylane_common::{NameKind, Reason, lane_reason};

use crate::{
    datapath::KernelConnect,
    proxy::ProxyState,
    routing::kernel::{lane_reason_name, subset_reason},
    telemetry::{
        flows::{FlowEntry, FlowOutcome, FlowStart, Flows},
        metrics,
    },
    vocab::{ClientAddr, Lane, OrigDstAddr},
};

/// Kernel-routed connections followed until they close at most; beyond, their close still
/// counts bytes but their flow stays open in the ring until it rolls over.
const FOLLOWED: usize = 65_536;

/// A followed connection whose close never came (its event dropped) is let go after this.
const FORGOTTEN: std::time::Duration = std::time::Duration::from_secs(3600);

/// The flows of kernel-routed connections still open, by socket cookie.
#[derive(Default)]
pub struct KernelFlows {
    open: HashMap<u64, (Arc<FlowEntry>, Instant)>,
}

impl KernelFlows {
    pub fn record(&mut self, flows: &Flows, state: &ProxyState, e: KernelConnect) {
        match e.reason {
            Reason::KernelRouted => self.routed(flows, state, &e),
            Reason::KernelRefused => refused(flows, state, &e),
            Reason::KernelClosed => self.closed(state, &e),
            _ => bypassed(flows, state, &e),
        }
    }

    fn routed(&mut self, flows: &Flows, state: &ProxyState, e: &KernelConnect) {
        let (flow, service) = open(flows, state, e);
        let tag = state.names.get(NameKind::Tag, e.tag_id);
        let subset: Option<Arc<str>> = state.names.get(NameKind::Subset, e.subset_id).map(Arc::from);
        let endpoint_pod =
            e.endpoint.and_then(|a| state.snapshot.pod_by_ip(a.ip())).map(|p| Arc::from(p.key().0));
        flow.update(|s| {
            s.upstream = e.endpoint;
            s.endpoint_pod = endpoint_pod;
            s.subset.clone_from(&subset);
            s.reason = Some(lane_reason_name(e.lane_reason));
        });
        let m = &metrics().requests;
        let workload = state.labels.workload(flow.start.src_pod.as_deref());
        m.tcp_connections.with_label_values(&[&*workload, &*service, "kernel"]).inc();
        if let Some(escape) = subset_reason(e.lane_reason).and_then(|r| r.escape()) {
            let subset = subset.as_deref().unwrap_or("");
            m.escapes
                .with_label_values(&[&*workload, &*state.labels.tag(tag), &*service, subset, escape])
                .inc();
        }
        if self.open.len() >= FOLLOWED {
            self.open.retain(|_, (_, since)| since.elapsed() < FORGOTTEN);
        }
        if self.open.len() < FOLLOWED {
            self.open.insert(e.cookie, (flow, Instant::now()));
        }
    }

    fn closed(&mut self, state: &ProxyState, e: &KernelConnect) {
        let service = service_label(state, e);
        let m = &metrics().requests;
        m.tcp_bytes.with_label_values(&[&*service, "sent"]).inc_by(e.bytes_sent);
        m.tcp_bytes.with_label_values(&[&*service, "received"]).inc_by(e.bytes_received);
        if let Some((flow, started)) = self.open.remove(&e.cookie) {
            flow.close(FlowOutcome::Closed, e.bytes_sent, e.bytes_received, started.elapsed());
        }
    }
}

/// A flow for a connect the kernel decided, with what the connect hook knew.
fn open(flows: &Flows, state: &ProxyState, e: &KernelConnect) -> (Arc<FlowEntry>, Arc<str>) {
    let names = &state.names;
    let tag = names.get(NameKind::Tag, e.tag_id).map(str::to_owned);
    let kernel = matches!(e.reason, Reason::KernelRouted | Reason::KernelRefused);
    let start = FlowStart {
        // The local port is not chosen yet at connect time.
        client: ClientAddr(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        orig_dst: OrigDstAddr(e.orig_dst),
        src_pod: names.get(NameKind::Pod, e.pod_id).map(str::to_owned),
        src_cgroup: e.cgroup_id,
        tag: tag.clone(),
        tenant: names.get(NameKind::Tenant, e.tenant_id).map(str::to_owned),
        // A kernel-routed connection leaves from the pod itself.
        source_ip: kernel.then_some("pod"),
        source_fallback: None,
    };
    let flow = flows.open(start, "tcp");
    let service = service_label(state, e);
    flow.update(|s| {
        s.path = if kernel { "kernel" } else { "bypass" };
        s.service = Some(service.clone());
        s.upstream = Some(e.orig_dst);
        if kernel {
            let lane = Lane::of_source_pod(tag, None);
            s.tag_source = Some(lane.tag_source.as_str());
            s.lane_tag = lane.tag;
        }
    });
    (flow, service)
}

fn service_label(state: &ProxyState, e: &KernelConnect) -> Arc<str> {
    state
        .routing
        .service(e.orig_dst)
        .map_or_else(|| Arc::from(crate::proxy::plan::UNKNOWN), |s| s.name.clone())
}

fn refused(flows: &Flows, state: &ProxyState, e: &KernelConnect) {
    let (flow, service) = open(flows, state, e);
    let why = lane_reason_name(e.lane_reason);
    flow.update(|s| s.local_reason = Some(why));
    flow.close(FlowOutcome::Failed(format!("refused at connect(): {why}")), 0, 0, std::time::Duration::ZERO);
    let m = &metrics().requests;
    let workload = state.labels.workload(flow.start.src_pod.as_deref());
    m.tcp_connections.with_label_values(&[&*workload, &*service, why]).inc();
    if e.lane_reason == lane_reason::TENANT_ISOLATION {
        let tenant = state.labels.tenant(state.names.get(NameKind::Tenant, e.tenant_id));
        m.tenant_denied.with_label_values(&[&*tenant, &*service]).inc();
    }
}

fn bypassed(flows: &Flows, state: &ProxyState, e: &KernelConnect) {
    let (flow, _) = open(flows, state, e);
    let service = state.routing.service(e.orig_dst).map(|s| s.name.clone());
    flow.update(|s| {
        s.outcome = FlowOutcome::Bypassed(e.reason.name());
        s.service = service;
    });
}
