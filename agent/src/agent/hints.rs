//! The lane-hint listener: datagrams from other nodes' agents on the proxy address, UDP
//! port 15011, handed to the proxy's trace memory; each counted by result. Also publishes
//! the trace memory's size for `/metrics`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;

use crate::proxy::Proxy;

/// Binds the hint port (`SO_REUSEPORT`: a new agent taking over binds beside the old).
pub fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, None).context("hint socket")?;
    s.set_reuse_port(true).context("SO_REUSEPORT")?;
    s.set_nonblocking(true).context("non-blocking")?;
    s.bind(&addr.into()).with_context(|| format!("bind lane hints {addr}"))?;
    tokio::net::UdpSocket::from_std(s.into()).context("hint socket")
}

/// Takes hints until the task is dropped (`socket`: none when hints are off). The proxy
/// shares the socket, to take hints waiting there when a request needs one now.
pub async fn run(proxy: Arc<Proxy>, socket: Option<tokio::net::UdpSocket>) {
    let socket = socket.map(Arc::new);
    if let Some(s) = &socket {
        proxy.continuity.take_hints_from(s.clone());
    }
    let mut size = tokio::time::interval(Duration::from_secs(5));
    loop {
        let readable = async {
            match &socket {
                Some(s) => s.readable().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = size.tick() => proxy.continuity.publish_size(),
            r = readable => match r {
                // Taken and remembered under the lock requests catch up under.
                Ok(()) => {
                    proxy.continuity.take_waiting(&proxy.state.load());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "lane hint socket");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}
