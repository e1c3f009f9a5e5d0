//! HTTP/1.1 plumbing for the admin API and the metrics endpoint, hardened like the proxy's
//! edge: a header read timeout (slowloris, idle keep-alive), bounded request heads, and
//! connection caps per source address and in total, so a flood from one pod cannot take
//! the agent's descriptors or keep `/healthz` from answering.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use std::convert::Infallible;

use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::AdminContext;

/// A request's head must arrive within this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer, hence the largest request head (hyper's minimum).
const MAX_HEAD_BYTES: usize = 8192;

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The admin API (loopback).
    Admin,
    /// `/metrics` only (scraped from outside the node).
    Metrics,
}

impl Site {
    /// Connections at once: (per source address, in total). Part of the descriptor budget.
    pub const fn caps(self) -> (usize, usize) {
        match self {
            Site::Admin => (32, 64),
            Site::Metrics => (8, 64),
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Site::Admin => "admin",
            Site::Metrics => "metrics",
        }
    }
}

/// Binds every address now (so errors surface at startup) and serves them on a dedicated
/// thread with its own runtime.
pub fn spawn(
    sites: &[(SocketAddr, Site)],
    ctx: Arc<AdminContext>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut bound = Vec::new();
    for (addr, site) in sites {
        // SO_REUSEPORT: a new agent binds while this one drains.
        let l = crate::proxy::bind_std(*addr)
            .map_err(|e| std::io::Error::new(e.kind(), format!("bind {} on {addr}: {e}", site.name())))?;
        bound.push((l, *site));
    }
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return tracing::error!(error = %e, "admin runtime failed to start"),
        };
        rt.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (l, site) in bound {
                tasks.spawn(serve(l, site, ctx.clone()));
            }
            while tasks.join_next().await.is_some() {}
        });
    })
}

async fn serve(std_listener: std::net::TcpListener, site: Site, ctx: Arc<AdminContext>) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!(error = %e, "admin listener failed"),
    };
    let caps = Arc::new(Caps::new(site));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(site = site.name(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = caps.admit(peer.ip()) else {
            crate::telemetry::metrics().proxy.admin_refused.with_label_values(&[site.name()]).inc();
            continue; // dropped: closed at once
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: Request<Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&ctx, site, &req)) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(32)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Connections per source address and in total.
struct Caps {
    per_source: usize,
    total: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place under the caps.
struct Slot(Arc<Caps>, IpAddr);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.0.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

impl Caps {
    fn new(site: Site) -> Self {
        let (per_source, total) = site.caps();
        Self { per_source, total, open: Mutex::new(HashMap::new()) }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = open.values().sum();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.per_source || total >= self.total {
            if *n == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(Slot(self.clone(), ip))
    }
}

fn handle(ctx: &AdminContext, site: Site, req: &Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let (Site::Admin, Some(query)) = (site, target.strip_prefix("/flows?")) {
        let filter = super::flows::FlowFilter::parse(query);
        if filter.follow {
            return Response::builder()
                .header("content-type", "application/x-ndjson")
                .body(super::flows::follow(ctx.flows.clone(), filter))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"internal error")).boxed()));
        }
    }
    // The lane map's page and scripts: static, served as they are.
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if let (Site::Admin, &Method::GET, Some((content_type, body))) =
        (site, req.method(), super::ui::asset(path))
    {
        return answer(StatusCode::OK, content_type, Bytes::from_static(body.as_bytes()));
    }
    let (status, content_type, body) = match site {
        Site::Admin => ctx.route(req.method(), target),
        Site::Metrics => ctx.metrics(req.method(), target),
    };
    answer(status, content_type, Bytes::from(body))
}

/// Every answer: the page's policy (only its own scripts, styles and origin), no sniffing,
/// no caching of live state.
fn answer(status: StatusCode, content_type: &str, body: Bytes) -> Response<BoxBody<Bytes, Infallible>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-security-policy", super::ui::CONTENT_SECURITY_POLICY)
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-store")
        .body(Full::new(body).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"internal error")).boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_source_and_in_total() {
        let caps = Arc::new(Caps { per_source: 2, total: 3, open: Mutex::new(HashMap::new()) });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let (a1, a2) = (caps.admit(a), caps.admit(a));
        assert!(a1.is_some() && a2.is_some() && caps.admit(a).is_none(), "per source");
        let b1 = caps.admit(b);
        assert!(b1.is_some() && caps.admit(b).is_none(), "in total");
        drop(a1);
        assert!(caps.admit(b).is_some());
    }
}
