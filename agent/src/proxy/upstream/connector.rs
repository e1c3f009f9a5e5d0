//! A connector for hyper-util's client (the OTLP exporter's): connects to the URI's
//! authority, an `ip:port` or a host name resolved here, on a bypass-marked socket.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::dial::connect;
use crate::vocab::UpstreamAddr;

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
            connect(UpstreamAddr(addr), mark, timeout).await.map(TokioIo::new)
        })
    }
}
