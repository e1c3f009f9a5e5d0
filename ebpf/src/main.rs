//! graylane's kernel side: cgroup programs that capture pod TCP connects into the node proxy.
//!
//! Dataflow: `connect4`/`connect6` decide and rewrite the destination, stashing what the pod
//! asked for under the socket cookie (`PENDING`); `sock_ops` moves it under the connection's
//! 4-tuple (`RECORDS`) once the local port exists, and deletes it when the socket closes;
//! `sock_release` drops stashes of connects that never reached `sock_ops`.
//!
//! Lanes the kernel routes itself: `connect*` rewrites the destination to the lane's
//! endpoint (`LANE_ROUTES`) and files the socket under its cookie (`KERNEL_CONNS`);
//! `getpeername*` answers with the Service address; `sock_ops` reports the bytes at close.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features, reason = "atomic_xadd: the bpf target has no atomic RMW types")]

mod capture;
mod connect4;
mod connect6;
mod counters;
mod getpeername;
mod maps;
mod pod;
mod sock_ops;
mod sock_release;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
