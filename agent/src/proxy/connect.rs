//! Upstream connections: marked so the connect hooks never capture them (no loops), with a
//! bounded connect time.

use std::{io, time::Duration};

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use super::addrs::UpstreamAddr;

/// Connects to `to` with `SO_MARK = mark` within `timeout`.
pub async fn connect(to: UpstreamAddr, mark: u32, timeout: Duration) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to.0), Type::STREAM, None)?;
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
