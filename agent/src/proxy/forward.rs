//! The accept loop and per-connection L4 forwarding.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use graylane_common::NameKind;
use tokio::net::{TcpListener, TcpStream};

use crate::{
    datapath::{OrigDstRecord, Records},
    telemetry::flows::{FlowOutcome, FlowStart, Flows},
};

use super::{
    SharedState,
    addrs::{ClientAddr, OrigDstAddr},
    resolve::Resolver,
    upstream,
};

/// The forwarding part of the agent's configuration.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `SO_MARK` of upstream sockets; the connect hooks skip marked sockets.
    pub bypass_mark: u32,
    pub connect_timeout: Duration,
}

/// Accepts until the listener fails; each connection runs on its own task.
pub async fn serve(
    listener: TcpListener,
    cfg: ProxyConfig,
    records: Arc<Records>,
    state: SharedState,
    flows: Arc<Flows>,
) {
    let resolver = Arc::new(Resolver::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = Connection {
            cfg: cfg.clone(),
            records: records.clone(),
            state: state.clone(),
            flows: flows.clone(),
            resolver: resolver.clone(),
        };
        tokio::spawn(conn.run(stream, ClientAddr(peer)));
    }
}

struct Connection {
    cfg: ProxyConfig,
    records: Arc<Records>,
    state: SharedState,
    flows: Arc<Flows>,
    resolver: Arc<Resolver>,
}

impl Connection {
    async fn run(self, mut downstream: TcpStream, client: ClientAddr) {
        let started = Instant::now();
        let local = match downstream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                return tracing::warn!(%client, error = %e, "accepted socket has no local address");
            }
        };
        let record = match self.records.lookup(client.0, local) {
            Ok(Some(r)) => r,
            Ok(None) => {
                // Never guess: a connection without a record is refused, and counted.
                self.flows.refused_without_record(client);
                return tracing::warn!(%client, "no original-destination record; connection refused");
            }
            Err(e) => {
                self.flows.refused_without_record(client);
                return tracing::error!(%client, error = %e, "record lookup failed; connection refused");
            }
        };
        let state = self.state.load();
        let start = flow_start(&state.names, client, &record);
        let orig = OrigDstAddr(record.orig_dst);
        let resolved = match self.resolver.resolve(&state.snapshot, orig) {
            Ok(r) => r,
            Err(e) => {
                let id = self.flows.open(start, None, None);
                self.flows.close(
                    id,
                    FlowOutcome::Failed(e.to_string()),
                    0,
                    0,
                    started.elapsed(),
                );
                return tracing::warn!(%client, %orig, error = %e, "no upstream");
            }
        };
        drop(state);
        let id = self.flows.open(
            start.clone(),
            resolved.service.clone(),
            Some(resolved.upstream.0),
        );
        tracing::info!(
            target: "graylane::flow",
            src_pod = start.src_pod.as_deref().unwrap_or("?"),
            tag = start.tag.as_deref().unwrap_or(""),
            tenant = start.tenant.as_deref().unwrap_or(""),
            %orig,
            upstream = %resolved.upstream,
            service = resolved.service.as_deref().unwrap_or(""),
            "flow"
        );
        let mut upstream = match upstream::connect(
            resolved.upstream,
            self.cfg.bypass_mark,
            self.cfg.connect_timeout,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                self.flows.close(
                    id,
                    FlowOutcome::Failed(format!("connect {}: {e}", resolved.upstream)),
                    0,
                    0,
                    started.elapsed(),
                );
                return tracing::warn!(%client, upstream = %resolved.upstream, error = %e, "upstream connect failed");
            }
        };
        let _ = downstream.set_nodelay(true);
        match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
            Ok((up, down)) => {
                self.flows
                    .close(id, FlowOutcome::Closed, up, down, started.elapsed())
            }
            Err(e) => self.flows.close(
                id,
                FlowOutcome::Failed(e.to_string()),
                0,
                0,
                started.elapsed(),
            ),
        }
    }
}

fn flow_start(names: &crate::datapath::Names, client: ClientAddr, r: &OrigDstRecord) -> FlowStart {
    FlowStart {
        client,
        orig_dst: OrigDstAddr(r.orig_dst),
        src_pod: names.get(NameKind::Pod, r.pod_id).map(str::to_owned),
        src_cgroup: r.cgroup_id,
        tag: names.get(NameKind::Tag, r.tag_id).map(str::to_owned),
        tenant: names.get(NameKind::Tenant, r.tenant_id).map(str::to_owned),
    }
}
