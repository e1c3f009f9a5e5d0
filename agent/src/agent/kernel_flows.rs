//! Connects the kernel did not capture become flows too (L4, outcome `bypassed`), so the
//! flow table shows traffic that never reached the proxy and why.

use graylane_common::NameKind;

use crate::{
    datapath::Bypassed,
    proxy::ProxyState,
    telemetry::flows::{FlowOutcome, FlowStart, Flows},
    vocab::{ClientAddr, OrigDstAddr},
};

pub fn record(flows: &Flows, state: &ProxyState, e: Bypassed) {
    let names = &state.names;
    let start = FlowStart {
        // The local port is not chosen yet at connect time.
        client: ClientAddr(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        orig_dst: OrigDstAddr(e.orig_dst),
        src_pod: names.get(NameKind::Pod, e.pod_id).map(str::to_owned),
        src_cgroup: e.cgroup_id,
        tag: names.get(NameKind::Tag, e.tag_id).map(str::to_owned),
        tenant: names.get(NameKind::Tenant, e.tenant_id).map(str::to_owned),
        source_ip: None,
        source_fallback: None,
    };
    let flow = flows.open(start, "tcp");
    let service = state.routing.service(e.orig_dst).map(|s| s.name.clone());
    flow.update(|s| {
        s.outcome = FlowOutcome::Bypassed(e.reason);
        s.service = service;
        s.upstream = Some(e.orig_dst);
    });
}
