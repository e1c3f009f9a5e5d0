//! HTTP/1.1 plumbing for the admin API.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use std::convert::Infallible;

use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;

use super::AdminContext;

/// What a listener serves.
#[derive(Clone, Copy)]
pub enum Site {
    /// The admin API (loopback).
    Admin,
    /// `/metrics` only (scraped from outside the node).
    Metrics,
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
            .map_err(|e| std::io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
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
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&ctx, site, &req)) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
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
    let (status, content_type, body) = match site {
        Site::Admin => ctx.route(req.method(), target),
        Site::Metrics => ctx.metrics(req.method(), target),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"internal error")).boxed()))
}
