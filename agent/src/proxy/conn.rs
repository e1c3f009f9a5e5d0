//! Who is calling, per captured connection: the kernel record's source pod (its attested
//! identity), what that pod implies for the lane of the connection's requests, and the
//! connection's telemetry.

use std::sync::Arc;

use graylane_common::NameKind;

use super::{state::ProxyState, upstream::Origin};
use crate::{
    datapath::OrigDstRecord,
    inventory::Pod,
    telemetry::ConnTelemetry,
    vocab::{ClientAddr, Lane, OrigDstAddr},
};

/// A pod whose headers are not trusted before coloring (an ingress gateway).
pub const INGRESS_ROLE: &str = "ingress";

/// A captured connection.
pub struct ConnContext {
    pub client: ClientAddr,
    pub orig_dst: OrigDstAddr,
    /// `namespace/name` of the calling pod, from the kernel record.
    pub src_pod: Option<Arc<str>>,
    /// The pod's tag and tenant as the kernel recorded them at connect time.
    pub record_tag: Option<String>,
    pub record_tenant: Option<String>,
    pub telemetry: ConnTelemetry,
    /// Where its upstream connections leave from (the pod's own address, or the node).
    pub origin: Origin,
}

impl ConnContext {
    /// The pod, tag and tenant names of a kernel record.
    pub fn names(state: &ProxyState, r: &OrigDstRecord) -> (Option<String>, Option<String>, Option<String>) {
        let n = &state.names;
        (
            n.get(NameKind::Pod, r.pod_id).map(str::to_owned),
            n.get(NameKind::Tag, r.tag_id).map(str::to_owned),
            n.get(NameKind::Tenant, r.tenant_id).map(str::to_owned),
        )
    }

    /// The calling pod as the current inventory knows it.
    pub fn pod<'a>(&self, state: &'a ProxyState) -> Option<&'a Arc<Pod>> {
        self.src_pod.as_deref().and_then(|k| state.snapshot.pod_by_name(k))
    }

    /// Whether lane headers from this caller are honored: a pod in the mesh that is not
    /// an ingress. Unknown callers and ingress pods are outside the trust boundary.
    pub fn trusted(pod: Option<&Pod>) -> bool {
        pod.is_some_and(|p| p.role.as_deref() != Some(INGRESS_ROLE))
    }

    /// The lane the caller itself implies: its current annotations, else the record's.
    pub fn source_lane(&self, pod: Option<&Pod>) -> Lane {
        let (tag, tenant) = match pod {
            Some(p) => (p.tag.clone(), p.tenant.clone()),
            None => (self.record_tag.clone(), self.record_tenant.clone()),
        };
        Lane::of_source_pod(tag, tenant)
    }
}
