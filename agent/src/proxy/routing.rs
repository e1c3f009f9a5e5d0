//! The routing table: compiled once per inventory snapshot, read lock-free per request.
//! Service VIP → routes → subset (by lane, route weights, fallback) → tenant-isolated
//! endpoints → load balancer.

mod balance;
mod describe;
mod lane;
mod matcher;
mod rules;
mod subset;
mod table;

pub use balance::PickKey;
pub use lane::{Lane, TagSource, valid_label};
pub use matcher::{CompiledRoute, RequestView};
pub use rules::CompiledRule;
pub use subset::{Decision, RouteError, SubsetHealth, SubsetReason};
pub use table::{Protocol, RoutingTable, ServiceRoutes};
