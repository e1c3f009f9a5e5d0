//! The iptables capture path (opt-in, `--iptables-fallback`): for connections that reached
//! the proxy by NAT rather than by the eBPF hooks, the original destination comes from
//! conntrack (`SO_ORIGINAL_DST`) and the caller from its source IP. That identity is not
//! kernel-attested (a pod can choose its source IP), so this path exists for comparison
//! and for nodes without eBPF, and is off by default.

use std::net::{Ipv4Addr, SocketAddr};

use nix::sys::socket::{getsockopt, sockopt::OriginalDst};
use tokio::net::TcpStream;

/// The pre-NAT destination of an accepted IPv4 connection, if it was NATed to us.
pub fn original_dst(stream: &TcpStream, local: SocketAddr) -> Option<SocketAddr> {
    let sa = getsockopt(stream, OriginalDst).ok()?;
    let dst = SocketAddr::from((Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)), u16::from_be(sa.sin_port)));
    (dst != local).then_some(dst)
}
