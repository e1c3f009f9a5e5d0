//! The datapath's runtime configuration, one entry in the `CONFIG` array.

use crate::Addr16;

/// Where captured connections go and how the proxy marks its own sockets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatapathConfig {
    /// The proxy's IPv4 address (`__be32`), used for v4 and v4-mapped destinations.
    pub proxy_ip4: u32,
    /// The proxy's port, host byte order.
    pub proxy_port: u16,
    pub _pad0: u16,
    /// The proxy's IPv6 address; valid when [`config_flags::HAS_PROXY6`] is set.
    pub proxy_ip6: Addr16,
    /// `SO_MARK` the proxy puts on its upstream sockets; such sockets are never captured.
    pub bypass_mark: u32,
    /// [`config_flags`].
    pub flags: u32,
    /// Capacity of `RECORDS`: at this many live records, connects are not captured
    /// (fail-open, or refused for fail-closed pods) instead of being captured without one.
    pub records_max: u32,
    /// Which of the two lane-route tables the connect hooks read (0 or 1): the agent fills
    /// the other, then switches, so a hook never reads an entry being written.
    pub lane_table: u32,
}

const _: () = assert!(size_of::<DatapathConfig>() == 40);

/// Bits of [`DatapathConfig::flags`].
pub mod config_flags {
    /// The agent has written this entry; until then nothing is captured.
    pub const READY: u32 = 1 << 0;
    /// `proxy_ip6` is set: native IPv6 destinations can be captured.
    pub const HAS_PROXY6: u32 = 1 << 1;
}
