//! The proxy in-process: request-path behaviour in milliseconds, without root (see
//! `harness.rs`). One test binary; the sandbox tier (`tests/`) covers the kernel's part.

mod continuity;
mod data;
mod errors;
mod gamma;
mod harness;
mod lanes;
mod pool;
mod resilience;
mod scoping;
