//! Connects of managed pods the proxy never saw, read from the `CONNECT_EVENTS` ring buffer
//! as they happen: those the kernel did not capture (opted out, excluded port, not a
//! captured destination, fail-open, fail-closed, tables full), and those it routed or
//! refused itself (kernel lanes) with their close. Events written while no agent ran wait
//! in the pinned buffer for the next one.

use std::net::SocketAddr;

use std::os::fd::AsFd as _;

use aya::maps::{MapData, RingBuf};
use graylane_common::{ConnectEvent, Reason};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::records::socket_addr;

/// A decoded event.
#[derive(Clone, Debug)]
pub struct KernelConnect {
    /// What the pod dialled.
    pub orig_dst: SocketAddr,
    pub pod_id: u32,
    pub tag_id: u32,
    pub tenant_id: u32,
    pub cgroup_id: u64,
    pub reason: Reason,
    /// Kernel lanes: the [`graylane_common::lane_reason`], the endpoint and the subset id.
    pub lane_reason: u32,
    pub endpoint: Option<SocketAddr>,
    pub subset_id: u32,
    /// Kernel lanes: the socket's cookie, pairing a routed connect with its close.
    pub cookie: u64,
    /// `KernelClosed`: bytes the pod sent and received.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

pub struct ConnectEvents {
    ring: RingBuf<MapData>,
}

impl ConnectEvents {
    pub(crate) fn new(ring: RingBuf<MapData>) -> Self {
        Self { ring }
    }

    /// Calls `each` for every event as it arrives, on a thread of its own, for as long as
    /// the agent runs.
    pub fn spawn(mut self, mut each: impl FnMut(KernelConnect) + Send + 'static) -> std::io::Result<()> {
        std::thread::Builder::new().name("connect-events".into()).spawn(move || {
            loop {
                while let Some(item) = self.ring.next() {
                    match ConnectEvent::decode(&item).and_then(|e| decode(&e)) {
                        Some(e) => each(e),
                        None => tracing::warn!(len = item.len(), "malformed connect event ignored"),
                    }
                }
                let mut fds = [PollFd::new(self.ring.as_fd(), PollFlags::POLLIN)];
                if let Err(e) = poll(&mut fds, PollTimeout::from(1000u16))
                    && e != nix::errno::Errno::EINTR
                {
                    return tracing::error!(error = %e, "polling connect events failed; kernel flows stop");
                }
            }
        })?;
        Ok(())
    }
}

/// `None` for a reason this agent does not know.
fn decode(e: &ConnectEvent) -> Option<KernelConnect> {
    let r = &e.record;
    let reason = *Reason::ALL.iter().find(|x| **x as u32 == e.reason)?;
    let endpoint = (e.endpoint.port != 0).then(|| socket_addr(&e.endpoint.addr, e.endpoint.port));
    Some(KernelConnect {
        orig_dst: socket_addr(&r.addr, r.port),
        pod_id: r.pod_id,
        tag_id: r.tag_id,
        tenant_id: r.tenant_id,
        cgroup_id: r.cgroup_id,
        reason,
        lane_reason: e.lane_reason,
        endpoint,
        subset_id: e.subset_id,
        cookie: e.cookie,
        bytes_sent: e.bytes_sent,
        bytes_received: e.bytes_received,
    })
}
