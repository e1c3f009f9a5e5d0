//! Empty library target: lets `agent/build.rs` depend on this crate so cargo rebuilds the
//! agent when the eBPF sources change. The programs live in the `graylane` binary target.
#![no_std]
