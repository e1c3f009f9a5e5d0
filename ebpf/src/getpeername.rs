//! `cgroup/getpeername4` and `cgroup/getpeername6`: a kernel-routed connection's peer is
//! the Service address the pod dialled, not the endpoint the kernel chose.

use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_get_socket_cookie, macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use graylane_common::OrigDst;

use crate::maps::KERNEL_CONNS;

/// What the pod dialled, if the kernel routed this socket.
#[inline(always)]
fn dialled(ctx: &SockAddrContext) -> Option<OrigDst> {
    // SAFETY: the context is a socket-address context, which the helper accepts.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: the value is copied out at once.
    unsafe { KERNEL_CONNS.get(&cookie) }.map(|c| c.orig)
}

#[cgroup_sock_addr(getpeername4)]
pub fn getpeername4(ctx: SockAddrContext) -> i32 {
    if let Some(orig) = dialled(&ctx)
        && let Some(ip4) = orig.addr.v4_be()
    {
        let sa = ctx.sock_addr;
        // SAFETY: getpeername4 may write user_ip4/user_port (4-byte stores).
        unsafe {
            (*sa).user_ip4 = ip4;
            (*sa).user_port = u32::from(orig.port.to_be());
        }
    }
    1
}

#[cgroup_sock_addr(getpeername6)]
pub fn getpeername6(ctx: SockAddrContext) -> i32 {
    if let Some(orig) = dialled(&ctx) {
        let sa = ctx.sock_addr;
        let to = orig.addr;
        // SAFETY: getpeername6 may write user_ip6 words and user_port (4-byte stores).
        unsafe {
            (*sa).user_ip6[0] = to.words[0];
            (*sa).user_ip6[1] = to.words[1];
            (*sa).user_ip6[2] = to.words[2];
            (*sa).user_ip6[3] = to.words[3];
            (*sa).user_port = u32::from(orig.port.to_be());
        }
    }
    1
}
