//! Address newtypes, so an original destination is never confused with a peer address.

use std::net::SocketAddr;

/// Where the pod wanted to connect, as the kernel recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct OrigDstAddr(pub SocketAddr);

/// The accepted connection's peer (the pod socket's local address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ClientAddr(pub SocketAddr);

/// The endpoint the proxy connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct UpstreamAddr(pub SocketAddr);

impl std::fmt::Display for OrigDstAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
