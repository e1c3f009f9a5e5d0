//! The admin API on 127.0.0.1:15000 (health, readiness, flows, datapath state, tags, the
//! lane map at `/ui`) and
//! Prometheus metrics on :15090.
//! It runs on its own thread and runtime so it answers while the proxy is saturated.

mod flows;
pub mod lifecycle;
pub mod map;
pub mod routes;
mod server;
mod tags;
pub mod ui;

pub use lifecycle::{Lifecycle, Phase};
pub use routes::AdminContext;
pub use server::{Site, spawn};
