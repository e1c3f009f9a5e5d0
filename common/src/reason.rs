//! Why the datapath did what it did: one per-CPU counter per reason.

/// Verdicts and events of the kernel programs. Each value indexes the `COUNTERS` per-CPU
/// array. Values are never reused: retire one by leaving a gap.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A connect was redirected to the proxy and its record stored.
    Captured = 0,
    /// The caller's cgroup is not a known pod on this node.
    Unmanaged = 1,
    /// The destination is neither a captured CIDR nor a known pod IP.
    NotCaptured = 2,
    /// The destination port is excluded.
    ExcludedPort = 3,
    /// The pod opted out (`graylane.io/redirect: "false"`).
    OptedOut = 4,
    /// The socket carries the proxy's bypass mark (the proxy's own upstream connection).
    ProxyOwn = 5,
    /// No proxy listened: the connect went to its original destination.
    FailOpen = 6,
    /// No proxy listened and the pod is fail-closed: the connect was refused.
    FailClosed = 7,
    /// The pending-connect map was full: not captured (fail-open or refused by fail mode).
    PendingFull = 8,
    /// The record map was full: the proxy will find no record and refuse the connection.
    RecordFull = 9,
    /// `sock_ops` moved a pending connect under its 4-tuple.
    RecordStored = 10,
    /// A captured connection closed and its record was deleted.
    RecordDeleted = 11,
    /// A native IPv6 destination, but no IPv6 proxy address is configured.
    NoProxy6 = 12,
    /// Not a TCP stream socket.
    NotTcp = 13,
    /// The datapath is not configured yet (no `CONFIG` entry).
    NotReady = 14,
    /// The destination is the proxy itself.
    ToProxy = 15,
    /// `RECORDS` is at capacity: not captured (fail-open, or refused for fail-closed pods).
    RecordsAtCapacity = 16,
    /// The connect-event ring buffer was full: a bypassed connect is missing from the flows.
    EventsDropped = 17,
    /// The kernel routed the connect to the lane's endpoint itself (no proxy).
    KernelRouted = 18,
    /// The kernel refused the connect as the proxy would have (tenant isolation, a lane
    /// that may not fall back, no endpoints).
    KernelRefused = 19,
    /// A kernel-routed connection closed.
    KernelClosed = 20,
    /// The kernel-connection table was full: the connect went to the proxy instead.
    KernelConnsFull = 21,
}

impl Reason {
    /// Number of counter slots (highest value + 1).
    pub const COUNT: u32 = 22;

    /// Every reason, in value order.
    pub const ALL: [Reason; Self::COUNT as usize] = [
        Reason::Captured,
        Reason::Unmanaged,
        Reason::NotCaptured,
        Reason::ExcludedPort,
        Reason::OptedOut,
        Reason::ProxyOwn,
        Reason::FailOpen,
        Reason::FailClosed,
        Reason::PendingFull,
        Reason::RecordFull,
        Reason::RecordStored,
        Reason::RecordDeleted,
        Reason::NoProxy6,
        Reason::NotTcp,
        Reason::NotReady,
        Reason::ToProxy,
        Reason::RecordsAtCapacity,
        Reason::EventsDropped,
        Reason::KernelRouted,
        Reason::KernelRefused,
        Reason::KernelClosed,
        Reason::KernelConnsFull,
    ];

    /// A stable snake_case name for metrics and the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Captured => "captured",
            Reason::Unmanaged => "unmanaged",
            Reason::NotCaptured => "not_captured",
            Reason::ExcludedPort => "excluded_port",
            Reason::OptedOut => "opted_out",
            Reason::ProxyOwn => "proxy_own",
            Reason::FailOpen => "fail_open",
            Reason::FailClosed => "fail_closed",
            Reason::PendingFull => "pending_map_full",
            Reason::RecordFull => "record_map_full",
            Reason::RecordStored => "record_stored",
            Reason::RecordDeleted => "record_deleted",
            Reason::NoProxy6 => "no_proxy6",
            Reason::NotTcp => "not_tcp",
            Reason::NotReady => "not_ready",
            Reason::ToProxy => "to_proxy",
            Reason::RecordsAtCapacity => "records_at_capacity",
            Reason::EventsDropped => "events_dropped",
            Reason::KernelRouted => "kernel_routed",
            Reason::KernelRefused => "kernel_refused",
            Reason::KernelClosed => "kernel_closed",
            Reason::KernelConnsFull => "kernel_conns_full",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_value_in_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as u32, i as u32, "{r:?}");
        }
    }
}
