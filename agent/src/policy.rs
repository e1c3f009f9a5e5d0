//! What the proxy enforces beyond routing: rate limits (local, or global through Redis),
//! concurrency caps, circuit breakers per endpoint and subset, retries, request timeouts,
//! fault injection and mirroring, compiled per service and route into a [`Plan`]. Budgets
//! live in a [`Registry`] so they survive routing-table rebuilds.

mod breaker;
mod budget;
mod fault;
mod gate;
mod global;
mod health;
mod limiter;
mod plan;
mod registry;

pub use breaker::Breaker;
pub use budget::RetryBudget;
pub use fault::roll as roll_faults;
pub use gate::Pass;
pub use global::{GlobalError, GlobalLimits};
pub use health::{AllHealthy, SubsetHealth};
pub use plan::{Limit, Plan, limit_key};
pub use registry::Registry;
