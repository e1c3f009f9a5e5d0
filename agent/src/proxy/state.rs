//! What the request path reads: one immutable snapshot, swapped atomically on change.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::{datapath::Names, inventory::Snapshot};

/// The inventory and the kernel's name table as of the last sync.
#[derive(Default)]
pub struct ProxyState {
    pub snapshot: Arc<Snapshot>,
    pub names: Names,
}

/// Shared, lock-free for readers.
pub type SharedState = Arc<ArcSwap<ProxyState>>;
