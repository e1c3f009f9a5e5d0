//! The node proxy: accepts captured connections on 15001, learns each one's original
//! destination and source pod from the kernel, detects the protocol, resolves the request's
//! lane, and routes it to a tag subset of the destination service.

mod accept;
mod addrs;
mod connect;
mod detect;
pub(crate) mod http;
mod iptables;
mod labels;
mod limits;
mod listener;
mod opaque;
mod prefixed;
pub mod routing;
pub(crate) mod source;
mod state;

pub use accept::{Proxy, ProxyConfig, ProxyTelemetry};
pub use addrs::{ClientAddr, OrigDstAddr};
pub use http::Connector;
pub use limits::EdgeLimits;
pub use listener::{bind_listener, bind_std};
pub use state::{ProxyState, SharedState};
