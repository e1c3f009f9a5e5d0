//! The sockmap of the proxy's listening sockets: the connect hooks capture only while a
//! slot holds a live listener (the kernel drops a closed socket from it, so a dead agent
//! means fail-open). The agent registers its listeners here, takes them out while it is
//! saturated (new connects then go their own way instead of waiting on a full proxy), and
//! checks that its entries are still there.

use std::{
    os::fd::{AsRawFd, RawFd},
    sync::{Arc, Mutex},
};

use aya::maps::{Map, MapData, MapError, SockMap};
use graylane_common::{LISTENER_SLOTS, map_names};

use super::{DatapathError, PinPaths};

/// `BPF_NOEXIST`: fails with `EEXIST` when the slot is taken.
const NOEXIST: u64 = 1;

/// A listening socket the sockmap may point at (kept open while registered).
pub type ListenerSocket = Arc<dyn AsRawFd + Send + Sync>;

/// Slots 0..2 belong to the owner of the pins; an agent taking over parks its listeners in
/// the standby slots meanwhile, so the kernel keeps capturing while the old owner closes.
pub const STANDBY_SLOTS: [u32; 2] = [LISTENER_SLOTS - 2, LISTENER_SLOTS - 1];

pub struct Listeners {
    inner: Mutex<Inner>,
}

struct Inner {
    map: SockMap<MapData>,
    /// Our sockets by slot.
    ours: Vec<(u32, ListenerSocket)>,
    /// Out of the map on purpose (saturated).
    paused: bool,
}

impl Listeners {
    pub(crate) fn new(map: SockMap<MapData>) -> Self {
        Self { inner: Mutex::new(Inner { map, ours: Vec::new(), paused: false }) }
    }

    /// The pinned sockmap of an installed datapath, if there is one (before owning it).
    pub fn open_pinned(pins: &PinPaths) -> Result<Option<Self>, DatapathError> {
        let path = pins.map(map_names::LISTENERS);
        if !path.exists() {
            return Ok(None);
        }
        let data = MapData::from_pin(&path).map_err(DatapathError::map(map_names::LISTENERS))?;
        let map = SockMap::try_from(Map::SockMap(data)).map_err(DatapathError::map(map_names::LISTENERS))?;
        Ok(Some(Self::new(map)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a listening socket in `slot` (kept open until [`Listeners::close`]).
    pub fn register(&self, slot: u32, socket: ListenerSocket) -> Result<(), DatapathError> {
        let mut inner = self.lock();
        inner.map.set(slot, &Fd(socket.as_raw_fd()), 0).map_err(DatapathError::map(map_names::LISTENERS))?;
        inner.ours.retain(|(s, _)| *s != slot);
        inner.ours.push((slot, socket));
        Ok(())
    }

    /// Empties `slot` (no error when it is empty already).
    pub fn clear(&self, slot: u32) {
        let mut inner = self.lock();
        let _ = inner.map.clear_index(&slot);
        inner.ours.retain(|(s, _)| *s != slot);
    }

    /// Takes our listeners out of the map: new connects see no proxy and fail open.
    pub fn pause(&self) {
        let mut inner = self.lock();
        if inner.paused {
            return;
        }
        inner.paused = true;
        let slots: Vec<u32> = inner.ours.iter().map(|(s, _)| *s).collect();
        for slot in slots {
            let _ = inner.map.clear_index(&slot);
        }
    }

    /// Puts our listeners back after [`Listeners::pause`].
    pub fn resume(&self) {
        let mut inner = self.lock();
        if !inner.paused {
            return;
        }
        inner.paused = false;
        let Inner { map, ours, .. } = &mut *inner;
        for (slot, socket) in ours.iter() {
            if let Err(e) = map.set(*slot, &Fd(socket.as_raw_fd()), 0) {
                tracing::error!(slot, error = %e, "could not put the proxy listener back into the sockmap");
            }
        }
    }

    pub fn paused(&self) -> bool {
        self.lock().paused
    }

    /// Slots of ours that were found empty (someone removed our entry) and refilled now.
    pub fn repair(&self) -> Vec<u32> {
        let mut inner = self.lock();
        if inner.paused {
            return Vec::new();
        }
        let Inner { map, ours, .. } = &mut *inner;
        let mut repaired = Vec::new();
        for (slot, socket) in ours.iter() {
            match map.set(*slot, &Fd(socket.as_raw_fd()), NOEXIST) {
                // It was empty: it is ours again now.
                Ok(()) => repaired.push(*slot),
                Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc_eexist()) => {}
                Err(e) => tracing::warn!(slot, error = %e, "checking the proxy listener's sockmap entry"),
            }
        }
        repaired
    }

    /// Empties our slots and lets go of our sockets (draining: they close with their tasks).
    pub fn close(&self) {
        let mut inner = self.lock();
        let Inner { map, ours, .. } = &mut *inner;
        for (slot, _) in ours.drain(..) {
            let _ = map.clear_index(&slot);
        }
    }
}

fn libc_eexist() -> i32 {
    nix::errno::Errno::EEXIST as i32
}

/// A raw descriptor for `SockMap::set` (the socket itself is held by the caller).
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
