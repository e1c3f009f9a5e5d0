//! The accept loop: the kernel's record of each connection (exact, never guessed), the
//! connection caps, then the connection is served.

use std::{sync::Arc, time::Duration};

use tokio::net::{TcpListener, TcpStream};

use super::{
    Proxy,
    conn::ConnContext,
    iptables,
    limits::{ConnLimiter, Saturation},
};
use crate::{
    datapath::Records,
    telemetry::{ConnTelemetry, flows::FlowStart, metrics},
    vocab::{ClientAddr, OrigDstAddr},
};

/// Accepts captured connections for a [`Proxy`].
pub struct Acceptor {
    proxy: Arc<Proxy>,
    records: Arc<Records>,
    conns: Arc<ConnLimiter>,
}

impl Acceptor {
    pub fn new(proxy: Arc<Proxy>, records: Arc<Records>, saturation: Arc<dyn Saturation>) -> Arc<Self> {
        let conns = ConnLimiter::new(&proxy.cfg.limits, saturation);
        Arc::new(Self { proxy, records, conns })
    }

    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Downstream connections open now.
    pub fn active_connections(&self) -> usize {
        self.conns.active()
    }

    /// Accepts until the listener fails; each connection runs on its own task.
    pub async fn serve(self: Arc<Self>, listener: Arc<TcpListener>) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    tokio::spawn(self.clone().connection(stream, ClientAddr(peer)));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn connection(self: Arc<Self>, stream: TcpStream, client: ClientAddr) {
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                return tracing::warn!(%client, error = %e, "accepted socket has no local address");
            }
        };
        let proxy = &self.proxy;
        let record = match self.records.lookup(client.0, local) {
            Ok(Some(r)) => Some(r),
            Ok(None) if proxy.cfg.iptables_fallback => None,
            Ok(None) => {
                // Never guess: a connection without a record is refused, and counted.
                proxy.flows.refused_without_record();
                metrics().proxy.refused.with_label_values(&["no_record"]).inc();
                return tracing::warn!(%client, "no original-destination record; connection refused");
            }
            Err(e) => {
                proxy.flows.refused_without_record();
                return tracing::error!(%client, error = %e, "record lookup failed; connection refused");
            }
        };
        let cgroup = record.as_ref().map_or(0, |r| r.cgroup_id);
        let Some(_slot) = self.conns.admit(cgroup) else {
            // Refused at once (closing is the answer): one caller cannot exhaust the node.
            return tracing::debug!(%client, cgroup, "connection cap reached; refused");
        };
        let _ = stream.set_nodelay(true);
        let conn = {
            let state = proxy.state.load();
            let (orig, src_pod, record_tag, record_tenant, cgroup) = match &record {
                Some(r) => {
                    let (pod, tag, tenant) = ConnContext::names(&state, r);
                    (r.orig_dst, pod, tag, tenant, r.cgroup_id)
                }
                None => match iptables::original_dst(&stream, local) {
                    // Identity by source IP: only on this opt-in path.
                    Some(dst) => {
                        let pod = state.snapshot.pod_by_ip(client.0.ip());
                        (
                            dst,
                            pod.map(|p| p.key().0),
                            pod.and_then(|p| p.tag.clone()),
                            pod.and_then(|p| p.tenant.clone()),
                            0,
                        )
                    }
                    None => {
                        proxy.flows.refused_without_record();
                        return tracing::warn!(%client, "neither a record nor a NAT original destination; refused");
                    }
                },
            };
            let orig_dst = OrigDstAddr(orig);
            let src_pod: Option<Arc<str>> = src_pod.map(Into::into);
            let pod = src_pod.as_deref().and_then(|k| state.snapshot.pod_by_name(k));
            let origin = proxy.origin(src_pod.as_ref(), pod.map(|p| &**p));
            let start = FlowStart {
                client,
                orig_dst,
                src_pod: src_pod.as_deref().map(str::to_owned),
                src_cgroup: cgroup,
                tag: record_tag.clone(),
                tenant: record_tenant.clone(),
                source_ip: Some(origin.as_ref().map_or("node", |o| o.as_str())),
                source_fallback: origin.as_ref().err().map(|f| f.as_str()),
            };
            let flow = proxy.flows.open(start, "tcp");
            let workload = state.labels.workload(src_pod.as_deref());
            ConnContext {
                origin: origin.unwrap_or_default(),
                client,
                orig_dst,
                record_tag,
                record_tenant,
                telemetry: ConnTelemetry::new(flow, workload, client.0, src_pod.clone()),
                src_pod,
            }
        };
        tracing::debug!(
            target: "graylane::flow",
            %client,
            orig_dst = %conn.orig_dst,
            src_pod = conn.src_pod.as_deref().unwrap_or("?"),
            tag = conn.record_tag.as_deref().unwrap_or(""),
            "accepted"
        );
        proxy.clone().serve_connection(conn, stream).await;
    }
}
