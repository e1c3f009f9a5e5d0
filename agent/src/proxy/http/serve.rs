//! Serves one downstream connection as HTTP/1.1 (with upgrades) or HTTP/2.

use std::{convert::Infallible, sync::Arc};

use hyper::{body::Incoming, server::conn, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::forward;
use crate::proxy::{Proxy, source::ConnContext};

pub async fn serve<T>(proxy: Arc<Proxy>, ctx: Arc<ConnContext>, io: T, h2: bool) -> Result<(), hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: http::Request<Incoming>| {
        let (proxy, ctx) = (proxy.clone(), ctx.clone());
        async move { Ok::<_, Infallible>(forward::handle(&proxy, &ctx, req, h2).await) }
    });
    let io = TokioIo::new(io);
    if h2 {
        conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc).await
    } else {
        conn::http1::Builder::new().keep_alive(true).serve_connection(io, svc).with_upgrades().await
    }
}
