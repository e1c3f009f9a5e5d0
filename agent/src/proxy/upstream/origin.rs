//! Where an upstream connection leaves from: the calling pod's own network namespace — so
//! the server, its NetworkPolicy and its logs see the pod's IP — or the node.
//!
//! A socket belongs to the namespace it was created in. The proxy's thread enters the
//! pod's namespace, creates the socket and returns before anything else runs on it
//! (ztunnel's in-pod model); connecting, reading and writing then happen from the node's
//! side as for any socket. The socket is the agent's: not in the pod's cgroup (never
//! captured, never counted as the pod's), marked with the bypass mark, unreachable for
//! the pod's processes.

use std::{
    fs::File,
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Socket, Type};

/// The source of upstream connections for one caller.
#[derive(Clone, Debug, Default)]
pub enum Origin {
    /// The node's own address.
    #[default]
    Node,
    /// The calling pod's network namespace.
    Pod(Arc<PodNetns>),
}

impl Origin {
    /// Pools keep connections apart by this: 0 for the node, else the namespace's inode.
    pub fn key(&self) -> u64 {
        match self {
            Self::Node => 0,
            Self::Pod(ns) => ns.inode,
        }
    }

    /// `pod` or `node` (flows, metrics).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Pod(_) => "pod",
        }
    }
}

/// A handle on a pod's network namespace (held open while the pod is on the node).
#[derive(Debug)]
pub struct PodNetns {
    /// `namespace/name` of the pod.
    pub pod: Arc<str>,
    pub inode: u64,
    ns: File,
    /// The agent's own namespace, to come back to.
    home: Arc<File>,
}

impl PodNetns {
    pub fn new(pod: Arc<str>, inode: u64, ns: File, home: Arc<File>) -> Self {
        Self { pod, inode, ns, home }
    }

    /// Whether this namespace holds `ip` as its own address (a UDP socket made in it and
    /// pointed at `ip` leaves from `ip`: the route is local), and can be entered at all;
    /// `None`: entering is enough. (Binding proves nothing: an empty namespace lets any
    /// address be bound.)
    pub fn holds(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return self.socket(Domain::IPV4).is_ok() };
        let to = SocketAddr::new(ip, 9);
        let Ok(s) = self.made(Domain::for_address(to), Type::DGRAM) else { return false };
        s.connect(&to.into()).is_ok()
            && s.local_addr().ok().and_then(|a| a.as_socket()).is_some_and(|a| a.ip() == ip)
    }

    /// A TCP socket of `domain` created inside the pod's namespace.
    pub fn socket(&self, domain: Domain) -> io::Result<Socket> {
        self.made(domain, Type::STREAM)
    }

    fn made(&self, domain: Domain, ty: Type) -> io::Result<Socket> {
        setns(&self.ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let socket = Socket::new(domain, ty, None);
        if let Err(e) = setns(&*self.home, CloneFlags::CLONE_NEWNET) {
            // This thread would go on serving every caller from this pod's namespace: an
            // identity leak no error value can undo.
            tracing::error!(pod = %self.pod, error = %e, "cannot return to the agent's network namespace; aborting");
            std::process::abort();
        }
        socket
    }
}
