//! The node proxy: accepts captured connections on 15001, learns each one's original
//! destination and source pod from the kernel, detects the protocol, and for each request
//! decides (`plan`), executes (`http`, `opaque`, over `upstream` connections) and records
//! once; failures are one error type (`error`) answered in one place (`respond`).

mod accept;
mod body;
pub mod carriers;
mod conn;
pub mod continuity;
pub mod data;
pub mod data_budget;
mod detect;
mod error;
pub(crate) mod http;
mod iptables;
mod labels;
mod limits;
mod listener;
mod opaque;
pub mod plan;
mod prefixed;
mod respond;
mod state;
#[cfg(test)]
mod test_headers;
mod upstream;

use std::{sync::Arc, time::Duration};

pub use accept::Acceptor;
pub use body::Body;
pub use carriers::Carried;
pub use conn::ConnContext;
pub use error::{ErrorKind, ProxyError, Side};
pub use limits::{EdgeLimits, NoSaturation, Saturation};
pub use listener::{bind_listener, bind_std};
pub use state::{ProxyState, SharedState};
pub use upstream::{
    BoxIo, Connector, Dial, Dialing, Fallback, Namespaces, Origin, PodNetns, TcpDial, connect,
};

use crate::{
    inventory,
    telemetry::{Telemetry, flows::Flows},
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
    /// Idle pooled upstream connections at most (from the descriptor budget), and how long
    /// one may stay idle.
    pub upstream_idle: usize,
    pub upstream_idle_timeout: Duration,
    /// Trace memory and lane hints.
    pub continuity: continuity::ContinuityConfig,
}

/// What serving a connection needs: the routing state, the upstream pool, telemetry.
pub struct Proxy {
    pub cfg: ProxyConfig,
    pub state: SharedState,
    pub flows: Arc<Flows>,
    pub telemetry: Telemetry,
    /// The node's memory of lanes by trace, and hints to and from other nodes.
    pub continuity: continuity::Continuity,
    dial: Arc<dyn Dial>,
    pool: Arc<upstream::Pool>,
    /// Pods' network namespaces, where their upstream connections leave from (`None`:
    /// every connection leaves from the node).
    namespaces: Option<Arc<Namespaces>>,
    /// Set when the agent drains: connections finish their request and close.
    drain: tokio::sync::watch::Sender<bool>,
    /// Where each data lane's store account stands (the agent's checker writes it).
    pub enforcements: Arc<crate::stores::enforcement::Enforcements>,
    /// Data-lane buffers' memory, per pod and in total.
    pub data_budget: Arc<data_budget::DataBudget>,
}

impl Proxy {
    /// `dial` opens upstream connections ([`TcpDial`] on a node), from the calling pods'
    /// `namespaces` when given. Inside the runtime.
    pub fn new(
        cfg: ProxyConfig,
        state: SharedState,
        flows: Arc<Flows>,
        telemetry: Telemetry,
        dial: Arc<dyn Dial>,
        namespaces: Option<Arc<Namespaces>>,
        enforcements: Arc<crate::stores::enforcement::Enforcements>,
    ) -> Arc<Self> {
        let pool = upstream::Pool::new(
            dial.clone(),
            cfg.connect_timeout,
            cfg.upstream_idle,
            cfg.upstream_idle_timeout,
            namespaces.clone(),
        );
        let (drain, _) = tokio::sync::watch::channel(false);
        let continuity = continuity::Continuity::new(&cfg.continuity);
        let data_budget =
            data_budget::DataBudget::new(cfg.limits.data_buffer_total, cfg.limits.data_buffer_per_pod);
        Arc::new(Self {
            cfg,
            state,
            flows,
            telemetry,
            continuity,
            dial,
            pool,
            namespaces,
            drain,
            enforcements,
            data_budget,
        })
    }

    /// A connection from `origin` failed (see [`Namespaces::connect_failed`]).
    pub fn connect_failed_from(&self, origin: &Origin, error: &std::io::Error) {
        if let Some(namespaces) = &self.namespaces {
            namespaces.connect_failed(origin, error);
        }
    }

    /// Where `pod`'s upstream connections leave from: its namespace, or (`Err`, and why)
    /// the node. Counted.
    pub fn origin(&self, key: Option<&Arc<str>>, pod: Option<&inventory::Pod>) -> Result<Origin, Fallback> {
        let found = match (&self.namespaces, key) {
            (None, _) => Err(Fallback::Configured),
            (Some(_), None) => Err(Fallback::UnknownPod),
            (Some(ns), Some(key)) => ns.origin(key, pod),
        };
        let (source, reason) = match &found {
            Ok(_) => ("pod", ""),
            Err(why) => ("node", why.as_str()),
        };
        crate::telemetry::metrics().upstream.source.with_label_values(&[source, reason]).inc();
        found
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

    /// Serves one connection whose caller and destination are known (from the kernel's
    /// record, or a test's), reading the protocol from its first bytes.
    pub async fn serve_connection<T>(self: Arc<Self>, conn: ConnContext, mut io: T)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use crate::telemetry::flows::FlowOutcome;
        let hint = self
            .state
            .load()
            .routing
            .service(conn.orig_dst.0)
            .map_or(crate::routing::Protocol::Detect, |s| s.protocol);
        let (detected, prefix) = detect::detect(&mut io, hint, self.cfg.detect_timeout).await;
        let io = prefixed::PrefixedIo::new(prefix, io);
        match detected {
            detect::Detected::Opaque => opaque::forward(&self, &conn, io).await,
            detect::Detected::Http1 | detect::Detected::Http2 => {
                let h2 = detected == detect::Detected::Http2;
                conn.telemetry.flow.update(|s| s.protocol = if h2 { "http2" } else { "http1" });
                let conn = Arc::new(conn);
                if let Err(e) = http::serve(self.clone(), conn.clone(), io, h2).await {
                    tracing::debug!(client = %conn.client, error = %e, "http connection ended with an error");
                    conn.telemetry.flow.update(|s| s.outcome = FlowOutcome::Failed(e.to_string()));
                } else {
                    conn.telemetry.flow.update(|s| s.outcome = FlowOutcome::Closed);
                }
            }
        }
    }
}
