//! The routing table: compiled once per inventory snapshot, read lock-free per request.
//! Service VIP → routes → subset (by lane, route weights, fallback) → tenant-isolated
//! endpoints → load balancer.

mod balance;
pub mod data;
pub mod describe;
mod endpoint;
pub mod kernel;
mod matcher;
mod rules;
mod subset;
mod table;
mod text;

pub use balance::PickKey;
pub use endpoint::{Endpoint, InFlight, Placement};
pub use matcher::{CompiledRoute, RequestView};
pub use rules::CompiledRule;
pub use subset::{BASE, Decision, RouteError};
pub use table::{NoRoute, Protocol, RoutingTable, ServiceRoutes};
