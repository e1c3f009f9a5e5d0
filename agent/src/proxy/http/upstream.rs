//! Pooled upstream connections: HTTP/1.1 keep-alive and HTTP/2 (prior knowledge)
//! multiplexing, over sockets marked so the kernel never captures them.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{
    Uri,
    uri::{Authority, PathAndQuery, Scheme},
};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpStream;

use super::ReqBody;
use crate::proxy::{addrs::UpstreamAddr, connect};

/// Connects to the endpoint named by the URI's authority: an IP:port (endpoints), or a
/// host name resolved here (a trace collector), on a bypass-marked socket.
#[derive(Clone)]
pub struct Connector {
    mark: u32,
    timeout: Duration,
}

impl Connector {
    pub fn new(mark: u32, timeout: Duration) -> Self {
        Self { mark, timeout }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (mark, timeout) = (self.mark, self.timeout);
        Box::pin(async move {
            let authority = uri.authority().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no endpoint in {uri}"))
            })?;
            // `ip:port` or `[ip6]:port` parse as a socket address; names are resolved.
            let addr: SocketAddr = match authority.as_str().parse() {
                Ok(a) => a,
                Err(_) => {
                    let port = authority.port_u16().unwrap_or(80);
                    tokio::net::lookup_host((authority.host(), port)).await?.next().ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, format!("{authority}: no address"))
                    })?
                }
            };
            connect::connect(UpstreamAddr(addr), mark, timeout).await.map(TokioIo::new)
        })
    }
}

pub struct Upstreams {
    pub h1: Client<Connector, ReqBody>,
    pub h2: Client<Connector, ReqBody>,
}

impl Upstreams {
    pub fn new(mark: u32, timeout: Duration) -> Self {
        let connector = Connector { mark, timeout };
        let h1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            // hyper's default is an adaptive 8 KiB+ buffer per connection; responses stream.
            .http1_read_buf_exact_size(4096)
            .build(connector.clone());
        let h2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Self { h1, h2 }
    }
}

/// The URI the pool is keyed by: the endpoint (its authority, if already made), and the
/// request's path and query.
pub fn endpoint_uri(
    endpoint: SocketAddr,
    authority: Option<Authority>,
    original: &Uri,
) -> Result<Uri, http::Error> {
    let authority = match authority {
        Some(a) => a,
        None => Authority::try_from(endpoint.to_string().as_str())?,
    };
    let path = original.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path);
    Ok(Uri::from_parts(parts)?)
}
