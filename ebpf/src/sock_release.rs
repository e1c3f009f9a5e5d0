//! `cgroup/sock_release`: drop the pending record of a connect that never reached `sock_ops`
//! (connect failed early), so `PENDING` never grows.

use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_get_socket_cookie, macros::cgroup_sock, programs::SockContext,
};

use crate::maps::PENDING;

#[cgroup_sock(sock_release)]
pub fn sock_release(ctx: SockContext) -> i32 {
    // SAFETY: the context is a socket, which the helper accepts for cgroup/sock programs.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let _ = PENDING.remove(&cookie);
    1
}
