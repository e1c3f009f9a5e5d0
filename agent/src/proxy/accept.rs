//! The accept loop: record lookup (exact, never guessed), protocol detection, dispatch.

use std::{sync::Arc, time::Duration};

use tokio::net::{TcpListener, TcpStream};

use super::{
    SharedState,
    addrs::{ClientAddr, OrigDstAddr},
    detect::{Detected, detect},
    http::{self, Upstreams},
    iptables, opaque,
    prefixed::PrefixedIo,
    routing::Protocol,
    source::ConnContext,
};
use crate::{
    datapath::Records,
    proxy::limits::{ConnLimiter, EdgeLimits},
    telemetry::{
        access_log::AccessLog,
        flows::{FlowOutcome, FlowStart, Flows},
        metrics,
        trace::Tracer,
    },
};

/// The forwarding part of the agent's configuration.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `SO_MARK` of upstream sockets; the connect hooks skip marked sockets.
    pub bypass_mark: u32,
    pub connect_timeout: Duration,
    /// How long to wait for a client's first bytes before treating it as opaque TCP.
    pub detect_timeout: Duration,
    /// Accept NATed (iptables) connections without an eBPF record; see `iptables.rs`.
    pub iptables_fallback: bool,
    pub limits: EdgeLimits,
}

/// Everything a connection needs, shared.
pub struct Proxy {
    pub cfg: ProxyConfig,
    pub records: Arc<Records>,
    pub state: SharedState,
    pub flows: Arc<Flows>,
    pub upstreams: Upstreams,
    pub telemetry: ProxyTelemetry,
    conns: Arc<ConnLimiter>,
    /// Set when the agent drains: connections finish their request and close.
    drain: tokio::sync::watch::Sender<bool>,
}

/// Where requests' spans and access-log lines go.
pub struct ProxyTelemetry {
    pub tracer: Tracer,
    pub access_log: Option<AccessLog>,
}

impl Proxy {
    pub fn new(
        cfg: ProxyConfig,
        records: Arc<Records>,
        state: SharedState,
        flows: Arc<Flows>,
        telemetry: ProxyTelemetry,
    ) -> Arc<Self> {
        let upstreams = Upstreams::new(cfg.bypass_mark, cfg.connect_timeout);
        let conns = ConnLimiter::new(&cfg.limits);
        let (drain, _) = tokio::sync::watch::channel(false);
        Arc::new(Self { cfg, records, state, flows, upstreams, telemetry, conns, drain })
    }

    /// Asks every HTTP connection to finish its request in flight and close (HTTP/1.1:
    /// `Connection: close`; HTTP/2: GOAWAY). Opaque TCP streams run until they end.
    pub fn drain(&self) {
        self.drain.send_replace(true);
    }

    /// Resolves once draining has begun.
    pub async fn draining(&self) {
        let mut rx = self.drain.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Downstream connections open now.
    pub fn active_connections(&self) -> usize {
        self.conns.active()
    }

    /// Accepts until the listener fails; each connection runs on its own task.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
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

    async fn connection(self: Arc<Self>, mut stream: TcpStream, client: ClientAddr) {
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                return tracing::warn!(%client, error = %e, "accepted socket has no local address");
            }
        };
        let record = match self.records.lookup(client.0, local) {
            Ok(Some(r)) => Some(r),
            Ok(None) if self.cfg.iptables_fallback => None,
            Ok(None) => {
                // Never guess: a connection without a record is refused, and counted.
                self.flows.refused_without_record();
                metrics().proxy.refused.with_label_values(&["no_record"]).inc();
                return tracing::warn!(%client, "no original-destination record; connection refused");
            }
            Err(e) => {
                self.flows.refused_without_record();
                return tracing::error!(%client, error = %e, "record lookup failed; connection refused");
            }
        };
        let cgroup = record.as_ref().map_or(0, |r| r.cgroup_id);
        let Some(_slot) = self.conns.admit(cgroup) else {
            // Refused at once (closing is the answer): one caller cannot exhaust the node.
            return tracing::debug!(%client, cgroup, "connection cap reached; refused");
        };
        let _ = stream.set_nodelay(true);
        let (ctx, hint) = {
            let state = self.state.load();
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
                        self.flows.refused_without_record();
                        return tracing::warn!(%client, "neither a record nor a NAT original destination; refused");
                    }
                },
            };
            let orig_dst = OrigDstAddr(orig);
            let start = FlowStart {
                client,
                orig_dst,
                src_pod: src_pod.clone(),
                src_cgroup: cgroup,
                tag: record_tag.clone(),
                tenant: record_tenant.clone(),
            };
            let hint = state.routing.service(orig_dst.0).map(|s| s.protocol).unwrap_or(Protocol::Detect);
            let flow = self.flows.open(start, "tcp");
            let workload = state.labels.workload(src_pod.as_deref());
            (
                ConnContext {
                    client,
                    orig_dst,
                    src_pod,
                    record_tag,
                    record_tenant,
                    workload,
                    flow,
                    series: std::sync::Mutex::new(None),
                },
                hint,
            )
        };
        tracing::debug!(
            target: "graylane::flow",
            %client,
            orig_dst = %ctx.orig_dst,
            src_pod = ctx.src_pod.as_deref().unwrap_or("?"),
            tag = ctx.record_tag.as_deref().unwrap_or(""),
            "accepted"
        );
        let (detected, prefix) = detect(&mut stream, hint, self.cfg.detect_timeout).await;
        let io = PrefixedIo::new(prefix, stream);
        match detected {
            Detected::Opaque => opaque::forward(&self, &ctx, io).await,
            Detected::Http1 | Detected::Http2 => {
                let h2 = detected == Detected::Http2;
                ctx.flow.update(|s| s.protocol = if h2 { "http2" } else { "http1" });
                let ctx = Arc::new(ctx);
                if let Err(e) = http::serve(self.clone(), ctx.clone(), io, h2).await {
                    tracing::debug!(client = %ctx.client, error = %e, "http connection ended with an error");
                    ctx.flow.update(|s| s.outcome = FlowOutcome::Failed(e.to_string()));
                } else {
                    ctx.flow.update(|s| s.outcome = FlowOutcome::Closed);
                }
            }
        }
    }
}
