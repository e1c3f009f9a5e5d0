//! What the proxy enforces beyond routing: rate limits, concurrency caps, request
//! timeouts and fault injection, compiled per service and route into a [`Plan`]. Budgets
//! live in a [`Registry`] so they survive routing-table rebuilds.

mod breaker;
mod budget;
mod fault;
mod gate;
mod limiter;
mod plan;
mod registry;

pub use breaker::Breaker;
pub use budget::RetryBudget;
pub use fault::roll as roll_faults;
pub use gate::Pass;
pub use plan::{Plan, limit_key};
pub use registry::Registry;
