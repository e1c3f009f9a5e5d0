//! The node proxy: accepts captured connections on 15001, learns each one's original
//! destination and source pod from the kernel, and forwards it (L4 for now).

mod addrs;
mod forward;
mod listener;
mod resolve;
mod state;
mod upstream;

pub use addrs::{ClientAddr, OrigDstAddr};
pub use forward::{ProxyConfig, serve};
pub use listener::bind_listener;
pub use state::{ProxyState, SharedState};
