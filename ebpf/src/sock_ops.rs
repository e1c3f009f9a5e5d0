//! `sock_ops`: file each captured connect under its 4-tuple, and forget it on close.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_TCP_CONNECT_CB},
    helpers::generated::bpf_get_socket_cookie,
    macros::sock_ops,
    programs::SockOpsContext,
};
use core::ptr::read_volatile;

use graylane_common::{Addr16, FlowKey, Reason, kernel_conn_flags};

use crate::{
    capture::emit,
    counters::{add_records, count},
    maps::{KERNEL_CONNS, PENDING, RECORDS},
};

const AF_INET: u32 = 2;
const TCP_FIN_WAIT2: u32 = 5;
const TCP_CLOSE: u32 = 7;
const TCP_LAST_ACK: u32 = 9;
const TCP_CLOSING: u32 = 11;

#[sock_ops]
pub fn sock_ops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_CONNECT_CB => on_connect(&ctx),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == TCP_CLOSE => on_close(&ctx),
        _ => {}
    }
    1
}

/// The SYN is about to leave: the local port is known, so the record can be keyed by the
/// tuple the proxy will see on accept. Runs before the proxy can possibly accept.
#[inline(always)]
fn on_connect(ctx: &SockOpsContext) {
    // SAFETY: the context is a sock_ops context, which the helper accepts.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: the value is copied out at once.
    let Some(orig) = (unsafe { PENDING.get(&cookie) }).copied() else {
        // A connection the kernel routed: its close reports the bytes.
        if let Some(conn) = KERNEL_CONNS.get_ptr_mut(&cookie) {
            // SAFETY: a valid map value; only this socket's callbacks touch it.
            unsafe { (*conn).flags |= kernel_conn_flags::SEEN };
            let _ = ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);
        }
        return;
    };
    let _ = PENDING.remove(&cookie);
    let key = flow_key(ctx);
    if RECORDS.insert(&key, &orig, 0).is_err() {
        count(Reason::RecordFull);
        return;
    }
    count(Reason::RecordStored);
    add_records(1);
    let _ = ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);
}

#[inline(always)]
fn on_close(ctx: &SockOpsContext) {
    if RECORDS.remove(&flow_key(ctx)).is_ok() {
        count(Reason::RecordDeleted);
        add_records(u64::MAX);
        return;
    }
    // SAFETY: the context is a sock_ops context, which the helper accepts.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: the value is copied out at once.
    let Some(conn) = (unsafe { KERNEL_CONNS.get(&cookie) }).copied() else {
        return;
    };
    let ops = ctx.ops;
    // SAFETY: 8-byte loads of the context's byte counters.
    let (acked, received) = unsafe {
        (read_volatile(&raw const (*ops).bytes_acked), read_volatile(&raw const (*ops).bytes_received))
    };
    // The counters include the SYN's and the FINs' sequence numbers: payload is what is
    // left. Both FINs went (and were acknowledged) when TCP closed from these states; from
    // any other (a reset) none did.
    let fins = u64::from(matches!(ctx.arg(0), TCP_FIN_WAIT2 | TCP_LAST_ACK | TCP_CLOSING));
    let (sent, received) = (acked.saturating_sub(1 + fins), received.saturating_sub(fins));
    emit(&conn.orig, Reason::KernelClosed, |e| {
        e.lane_reason = conn.reason;
        e.endpoint = conn.endpoint;
        e.subset_id = conn.subset_id;
        e.cookie = cookie;
        e.bytes_sent = sent;
        e.bytes_received = received;
    });
    let _ = KERNEL_CONNS.remove(&cookie);
    count(Reason::KernelClosed);
}

/// The connection from the pod's side: local = pod, remote = proxy.
///
/// Every context field is read with a volatile load at its own constant offset: the
/// verifier rejects context loads whose offset the compiler computed from a branch.
#[inline(always)]
fn flow_key(ctx: &SockOpsContext) -> FlowKey {
    let ops = ctx.ops;
    // SAFETY: `ops` is the kernel's context pointer; each field is a 4-byte readable load.
    let (family, lip4, rip4, lip6, rip6, lport, rport) = unsafe {
        (
            read_volatile(&raw const (*ops).family),
            read_volatile(&raw const (*ops).local_ip4),
            read_volatile(&raw const (*ops).remote_ip4),
            [
                read_volatile(&raw const (*ops).local_ip6[0]),
                read_volatile(&raw const (*ops).local_ip6[1]),
                read_volatile(&raw const (*ops).local_ip6[2]),
                read_volatile(&raw const (*ops).local_ip6[3]),
            ],
            [
                read_volatile(&raw const (*ops).remote_ip6[0]),
                read_volatile(&raw const (*ops).remote_ip6[1]),
                read_volatile(&raw const (*ops).remote_ip6[2]),
                read_volatile(&raw const (*ops).remote_ip6[3]),
            ],
            read_volatile(&raw const (*ops).local_port),
            read_volatile(&raw const (*ops).remote_port),
        )
    };
    let (src, dst) = if family == AF_INET {
        (Addr16::from_v4_be(lip4), Addr16::from_v4_be(rip4))
    } else {
        (Addr16::from_v6_be(lip6), Addr16::from_v6_be(rip6))
    };
    FlowKey { src, dst, src_port: lport as u16, dst_port: remote_port(rport), _pad: 0 }
}

/// `remote_port` is network byte order; little-endian kernels also shift it into the upper
/// half of the word. Accept both encodings.
#[inline(always)]
fn remote_port(raw: u32) -> u16 {
    if raw > 0xffff { u32::from_be(raw) as u16 } else { u16::from_be(raw as u16) }
}
