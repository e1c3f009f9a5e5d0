//! Serves one downstream connection as HTTP/1.1 (with upgrades) or HTTP/2.

use std::{convert::Infallible, sync::Arc};

use hyper::{body::Incoming, server::conn, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::request;
use crate::proxy::{Proxy, conn::ConnContext, upstream::LocalConn};

pub async fn serve<T>(proxy: Arc<Proxy>, ctx: Arc<ConnContext>, io: T, h2: bool) -> Result<(), hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let owner = proxy.clone();
    // HTTP/1.1: one request at a time, its upstream connection driven by this task.
    let local = LocalConn::new(proxy.pool.clone());
    let svc_local = local.clone();
    let svc = service_fn(move |req: http::Request<Incoming>| {
        let (proxy, ctx, local) = (proxy.clone(), ctx.clone(), svc_local.clone());
        async move { Ok::<_, Infallible>(request::handle(&proxy, &ctx, req, h2, (!h2).then_some(&local)).await) }
    });
    let io = TokioIo::new(io);
    let limits = &owner.cfg.limits;
    if h2 {
        let conn = conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_streams)
            .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
            .max_local_error_reset_streams(limits.h2_max_error_resets)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = owner.draining() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    } else {
        let conn = conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(limits.max_headers)
            .max_header_size(limits.max_header_bytes)
            .serve_connection(io, svc)
            .with_upgrades();
        tokio::pin!(conn);
        let served = tokio::select! {
            r = local.drive(conn.as_mut()) => r,
            () = owner.draining() => {
                conn.as_mut().graceful_shutdown();
                local.drive(conn).await
            }
        };
        local.release();
        served
    }
}
