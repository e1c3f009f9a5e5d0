//! graylane: node-level gray (canary) and tenant traffic routing without sidecars. The
//! modules follow the dataflow: kernel (`datapath`) → `inventory` → `proxy` → `policy` →
//! `telemetry` → `admin` and `cli`. The `graylane` binary is `main.rs`.

pub mod admin;
pub mod agent;
pub mod cli;
pub mod config;
pub mod crds;
pub mod datapath;
pub mod fuzzing;
pub mod inventory;
pub mod policy;
pub mod proxy;
pub mod routing;
pub mod stores;
pub mod telemetry;
pub mod vocab;
