//! What the request path reads: one immutable snapshot, swapped atomically on change.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::labels::Labels;
use crate::{datapath::Names, inventory::Snapshot, routing::RoutingTable};

/// The inventory, the kernel's name table and the compiled routing table as of the last
/// sync.
#[derive(Default)]
pub struct ProxyState {
    pub snapshot: Arc<Snapshot>,
    pub names: Names,
    pub routing: RoutingTable,
    /// Bounded metric label values for this snapshot.
    pub labels: Labels,
}

impl ProxyState {
    pub fn new(snapshot: Arc<Snapshot>, names: Names, registry: &crate::policy::Registry) -> Self {
        let routing = RoutingTable::build(&snapshot, registry);
        Self::with_routing(snapshot, names, routing)
    }

    /// With a routing table already built from `snapshot`.
    pub fn with_routing(snapshot: Arc<Snapshot>, names: Names, routing: RoutingTable) -> Self {
        let labels = Labels::build(&snapshot);
        Self { snapshot, names, routing, labels }
    }
}

/// Shared, lock-free for readers.
pub type SharedState = Arc<ArcSwap<ProxyState>>;
