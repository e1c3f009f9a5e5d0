//! Connects the kernel did not capture for managed pods (opted out, excluded port, not a
//! captured destination, fail-open, fail-closed, tables full), read from the
//! `CONNECT_EVENTS` ring buffer as they happen. Events written while no agent ran wait in
//! the pinned buffer for the next one.

use std::net::SocketAddr;

use std::os::fd::AsFd as _;

use aya::maps::{MapData, RingBuf};
use graylane_common::{ConnectEvent, Reason};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::records::socket_addr;

/// A decoded event.
#[derive(Clone, Debug)]
pub struct Bypassed {
    pub orig_dst: SocketAddr,
    pub pod_id: u32,
    pub tag_id: u32,
    pub tenant_id: u32,
    pub cgroup_id: u64,
    pub reason: &'static str,
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
    pub fn spawn(mut self, mut each: impl FnMut(Bypassed) + Send + 'static) -> std::io::Result<()> {
        std::thread::Builder::new().name("connect-events".into()).spawn(move || {
            loop {
                while let Some(item) = self.ring.next() {
                    match ConnectEvent::decode(&item) {
                        Some(e) => each(decode(&e)),
                        None => tracing::warn!(len = item.len(), "short connect event ignored"),
                    }
                }
                let mut fds = [PollFd::new(self.ring.as_fd(), PollFlags::POLLIN)];
                if let Err(e) = poll(&mut fds, PollTimeout::from(1000u16))
                    && e != nix::errno::Errno::EINTR
                {
                    return tracing::error!(error = %e, "polling connect events failed; bypassed flows stop");
                }
            }
        })?;
        Ok(())
    }
}

fn decode(e: &ConnectEvent) -> Bypassed {
    let r = &e.record;
    let reason = Reason::ALL.iter().find(|x| **x as u32 == e.reason).map_or("unknown", |x| x.name());
    Bypassed {
        orig_dst: socket_addr(&r.addr, r.port),
        pod_id: r.pod_id,
        tag_id: r.tag_id,
        tenant_id: r.tenant_id,
        cgroup_id: r.cgroup_id,
        reason,
    }
}
