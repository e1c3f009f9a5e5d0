//! Opening upstream connections: TCP from sockets marked so the connect hooks never
//! capture them (no loops), created in the caller's network namespace when it has one
//! ([`Origin`]), within the connect timeout. A [`Dial`] is what the pool and opaque TCP
//! open connections with; tests dial in-memory servers instead.

use std::{future::Future, io, pin::Pin, time::Duration};

use socket2::{Domain, Socket, Type};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpSocket, TcpStream},
};

use super::origin::Origin;
use crate::vocab::UpstreamAddr;

/// A connected byte stream to an endpoint.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub type BoxIo = Box<dyn Io>;
pub type Dialing = Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>>;

/// Opens connections to endpoints.
pub trait Dial: Send + Sync + 'static {
    /// A connection to `to`, leaving from `from`.
    fn dial(&self, from: &Origin, to: UpstreamAddr) -> Dialing;
}

/// Marked TCP sockets, from the caller's namespace or the node.
#[derive(Clone, Debug)]
pub struct TcpDial {
    pub mark: u32,
    pub timeout: Duration,
}

impl Dial for TcpDial {
    fn dial(&self, from: &Origin, to: UpstreamAddr) -> Dialing {
        let (mark, timeout) = (self.mark, self.timeout);
        // Created now, on this thread (entering a namespace is per thread); connected below.
        let socket = socket_from(from, Domain::for_address(to.0));
        Box::pin(
            async move { connect_socket(socket?, to, mark, timeout).await.map(|s| Box::new(s) as BoxIo) },
        )
    }
}

/// A socket in `from`'s namespace (checked when the caller connected; failing now is a
/// connect failure, never a silent switch to the node's address).
fn socket_from(from: &Origin, domain: Domain) -> io::Result<Socket> {
    match from {
        Origin::Pod(ns) => ns.socket(domain),
        Origin::Node => Socket::new(domain, Type::STREAM, None),
    }
}

/// Connects to `to` from the node with `SO_MARK = mark` (0: unmarked) within `timeout`.
pub async fn connect(to: UpstreamAddr, mark: u32, timeout: Duration) -> io::Result<TcpStream> {
    connect_socket(Socket::new(Domain::for_address(to.0), Type::STREAM, None)?, to, mark, timeout).await
}

async fn connect_socket(
    socket: Socket,
    to: UpstreamAddr,
    mark: u32,
    timeout: Duration,
) -> io::Result<TcpStream> {
    if mark != 0 {
        socket.set_mark(mark)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    let socket = TcpSocket::from_std_stream(socket.into());
    match tokio::time::timeout(timeout, socket.connect(to.0)).await {
        Ok(result) => result,
        Err(_) => {
            Err(io::Error::new(io::ErrorKind::TimedOut, format!("connect {to} timed out after {timeout:?}")))
        }
    }
}
