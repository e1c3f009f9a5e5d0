//! `cgroup/sock_release`: drop the pending record of a connect that never reached `sock_ops`
//! (connect failed early), so `PENDING` never grows; likewise a kernel-routed connect that
//! never sent its SYN (reported closed, no bytes). One that did is reported by `sock_ops`
//! when TCP closes it, which may be after the process let go of the socket.

use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_get_socket_cookie, macros::cgroup_sock, programs::SockContext,
};

use graylane_common::{Reason, kernel_conn_flags};

use crate::{
    capture::emit,
    counters::count,
    maps::{KERNEL_CONNS, PENDING},
};

#[cgroup_sock(sock_release)]
pub fn sock_release(ctx: SockContext) -> i32 {
    // SAFETY: the context is a socket, which the helper accepts for cgroup/sock programs.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let _ = PENDING.remove(&cookie);
    // SAFETY: the value is copied out at once.
    if let Some(conn) = (unsafe { KERNEL_CONNS.get(&cookie) }).copied()
        && conn.flags & kernel_conn_flags::SEEN == 0
    {
        emit(&conn.orig, Reason::KernelClosed, |e| {
            e.lane_reason = conn.reason;
            e.cookie = cookie;
        });
        let _ = KERNEL_CONNS.remove(&cookie);
        count(Reason::KernelClosed);
    }
    1
}
