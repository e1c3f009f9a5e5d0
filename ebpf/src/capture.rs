//! The capture decision shared by `connect4` and `connect6`.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_ktime_get_ns,
        generated::{
            bpf_get_prandom_u32, bpf_get_socket_cookie, bpf_map_lookup_elem, bpf_set_retval, bpf_sk_release,
        },
    },
    maps::lpm_trie::Key,
    programs::SockAddrContext,
};
use aya_log_ebpf::debug;
use graylane_common::{
    Addr16, Backend, ConnectEvent, DatapathConfig, KernelConn, LISTENER_SLOTS, LaneKey, OrigDst, PodEntry,
    Reason, config_flags, lane_verdict, pod_flags,
};

use crate::{
    counters::{count, records},
    maps::{
        CAPTURE, CONFIG, CONNECT_EVENTS, EVENT_SCRATCH, EXCLUDED_PORTS, KERNEL_CONNS, LANE_ROUTES_0,
        LANE_ROUTES_1, LISTENERS, PENDING,
    },
    pod::current_pod,
};

const SOCK_STREAM: u32 = 1;
const AF_INET: u16 = 2;
const IPPROTO_TCP: u32 = 6;

/// A connect the hook was asked about.
pub struct Connect {
    /// Destination as the pod gave it.
    pub dst: Addr16,
    /// Destination port, host byte order.
    pub port: u16,
    /// `AF_INET` or `AF_INET6`: the socket's family.
    pub family: u16,
    /// A native IPv6 destination: needs an IPv6 proxy address.
    pub needs_proxy6: bool,
}

/// What the hook does with a connect.
pub enum Decision {
    /// Leave the destination as it is.
    Pass,
    /// Refuse the connect (`EPERM`): fail-closed pod and no proxy.
    Refuse,
    /// Rewrite the destination to the proxy described here.
    Redirect(DatapathConfig),
    /// Rewrite the destination to this endpoint: the kernel routed the lane itself.
    Direct(Backend),
}

/// Decides, and for a redirect stores the pending record under the socket cookie.
#[inline(always)]
pub fn decide(ctx: &SockAddrContext, connect: &Connect) -> Decision {
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the kernel's context pointer.
    let (sock_type, protocol) = unsafe { ((*sa).type_, (*sa).protocol) };
    if sock_type != SOCK_STREAM || protocol != IPPROTO_TCP {
        count(Reason::NotTcp);
        return Decision::Pass;
    }
    let Some(cfg) = CONFIG.get(0) else {
        count(Reason::NotReady);
        return Decision::Pass;
    };
    let cfg = *cfg;
    if cfg.flags & config_flags::READY == 0 {
        count(Reason::NotReady);
        return Decision::Pass;
    }
    if cfg.bypass_mark != 0 && socket_mark(ctx) == cfg.bypass_mark {
        count(Reason::ProxyOwn);
        return Decision::Pass;
    }
    let Some((cgroup_id, pod)) = current_pod() else {
        count(Reason::Unmanaged);
        return Decision::Pass;
    };
    // A socket connected again (after a failed connect) starts afresh: no stale Service
    // address for getpeername, no close reported for the old destination.
    // SAFETY: the context is a socket-address context, which the helper accepts.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let _ = KERNEL_CONNS.remove(&cookie);
    let orig = OrigDst {
        addr: connect.dst,
        port: connect.port,
        family: connect.family,
        pod_id: pod.pod_id,
        tag_id: pod.tag_id,
        tenant_id: pod.tenant_id,
        cgroup_id,
        // SAFETY: helper without arguments.
        created_ns: unsafe { bpf_ktime_get_ns() },
    };
    if pod.flags & pod_flags::REDIRECT_OFF != 0 {
        return bypass(&orig, Reason::OptedOut);
    }
    if port_excluded(connect.port) {
        return bypass(&orig, Reason::ExcludedPort);
    }
    if !captured(&connect.dst) {
        return bypass(&orig, Reason::NotCaptured);
    }
    if is_proxy(&cfg, connect) {
        count(Reason::ToProxy);
        return Decision::Pass;
    }
    // Lanes the kernel routes need no proxy: before the proxy's liveness is asked.
    if let Some(d) = kernel_route(&cfg, cookie, connect, &orig) {
        return d;
    }
    if connect.needs_proxy6 && cfg.flags & config_flags::HAS_PROXY6 == 0 {
        return bypass(&orig, Reason::NoProxy6);
    }
    if !proxy_alive() {
        return no_proxy(ctx, &pod, &orig, Reason::FailOpen);
    }
    // Signed: a count seeded late (agent upgrade) may dip below zero; never block on that.
    if records() as i64 >= i64::from(cfg.records_max) {
        // Captured without a record, the proxy would have to refuse it: do not capture.
        count(Reason::RecordsAtCapacity);
        return no_proxy(ctx, &pod, &orig, Reason::RecordsAtCapacity);
    }
    if PENDING.insert(&cookie, &orig, 0).is_err() {
        // Without a record the proxy could not route it: do not capture.
        count(Reason::PendingFull);
        return no_proxy(ctx, &pod, &orig, Reason::PendingFull);
    }
    count(Reason::Captured);
    debug!(ctx, "captured pod {} port {}", pod.pod_id, connect.port);
    Decision::Redirect(cfg)
}

/// A connect the agent compiled a lane route for: its endpoint, or its refusal. `None`:
/// the proxy decides (no route, or the connection table is full).
#[inline(always)]
fn kernel_route(cfg: &DatapathConfig, cookie: u64, connect: &Connect, orig: &OrigDst) -> Option<Decision> {
    let key = LaneKey {
        service: connect.dst,
        port: connect.port,
        _pad0: 0,
        tag_id: orig.tag_id,
        tenant_id: orig.tenant_id,
        _pad1: 0,
    };
    // SAFETY: the live table is never written (the agent writes the other one and switches
    // only after hooks that could still read it have finished), so the entry stays as it is.
    let route = if cfg.lane_table == 1 {
        unsafe { LANE_ROUTES_1.get(&key) }
    } else {
        unsafe { LANE_ROUTES_0.get(&key) }
    }?;
    let (verdict, errno, reason, subset_id) = (route.verdict, route.errno, route.reason, route.subset_id);
    if verdict == lane_verdict::REFUSE {
        count(Reason::KernelRefused);
        emit(orig, Reason::KernelRefused, |e| {
            e.lane_reason = reason;
            e.cookie = cookie;
        });
        // SAFETY: connect hooks may set the errno the caller sees.
        unsafe { bpf_set_retval(-(errno as i32)) };
        return Some(Decision::Refuse);
    }
    // SAFETY: helper without arguments.
    let endpoint = route.pick(unsafe { bpf_get_prandom_u32() })?;
    // A v4 socket can only reach a v4 endpoint (the agent compiles per family).
    if connect.family == AF_INET && !endpoint.addr.is_v4_mapped() {
        return None;
    }
    let conn = KernelConn { orig: *orig, endpoint, reason, subset_id, flags: 0, _pad: 0 };
    if KERNEL_CONNS.insert(&cookie, &conn, 0).is_err() {
        count(Reason::KernelConnsFull);
        return None;
    }
    count(Reason::KernelRouted);
    emit(orig, Reason::KernelRouted, |e| {
        e.lane_reason = reason;
        e.endpoint = endpoint;
        e.subset_id = subset_id;
        e.cookie = cookie;
    });
    Some(Decision::Direct(endpoint))
}

/// The proxy cannot take the connect: fail open, or refuse a fail-closed pod.
#[inline(always)]
fn no_proxy(ctx: &SockAddrContext, pod: &PodEntry, orig: &OrigDst, why: Reason) -> Decision {
    if pod.flags & pod_flags::FAIL_CLOSED != 0 {
        count(Reason::FailClosed);
        report(orig, Reason::FailClosed);
        debug!(ctx, "refused pod {}: fail-closed and no proxy", pod.pod_id);
        Decision::Refuse
    } else {
        if why == Reason::FailOpen {
            count(Reason::FailOpen);
        }
        report(orig, why);
        Decision::Pass
    }
}

/// A managed pod's connect that goes its own way: counted and reported.
#[inline(always)]
fn bypass(orig: &OrigDst, why: Reason) -> Decision {
    count(why);
    report(orig, why);
    Decision::Pass
}

/// Tells the agent about a connect that was not captured (dropped and counted when the
/// ring buffer is full).
#[inline(always)]
fn report(orig: &OrigDst, why: Reason) {
    emit(orig, why, |_| {});
}

/// Sends the agent an event about `orig` for `why`, with what `fill` adds (every other field
/// zero); dropped and counted when the ring buffer is full. Built in this CPU's scratch
/// slot, not on the stack (512 bytes for every call together).
#[inline(always)]
pub fn emit(orig: &OrigDst, why: Reason, fill: impl FnOnce(&mut ConnectEvent)) {
    let Some(slot) = EVENT_SCRATCH.get_ptr_mut(0) else {
        count(Reason::EventsDropped);
        return;
    };
    // SAFETY: this CPU's slot; a program runs to completion on its CPU without another
    // program using the slot in between.
    let e = unsafe { &mut *slot };
    e.record = *orig;
    e.reason = why as u32;
    e.lane_reason = 0;
    e.endpoint = Backend::default();
    e.subset_id = 0;
    e.cookie = 0;
    e.bytes_sent = 0;
    e.bytes_received = 0;
    fill(e);
    if CONNECT_EVENTS.output::<ConnectEvent>(e, 0).is_err() {
        count(Reason::EventsDropped);
    }
}

#[inline(always)]
fn socket_mark(ctx: &SockAddrContext) -> u32 {
    // SAFETY: `sk` is a valid full socket in connect hooks.
    unsafe {
        let sk = (*ctx.sock_addr).__bindgen_anon_1.sk;
        if sk.is_null() { 0 } else { (*sk).mark }
    }
}

#[inline(always)]
fn port_excluded(port: u16) -> bool {
    let word = u32::from(port) / 32;
    let bit = u32::from(port) % 32;
    match EXCLUDED_PORTS.get(word) {
        Some(bits) => *bits & (1 << bit) != 0,
        None => false,
    }
}

#[inline(always)]
fn captured(dst: &Addr16) -> bool {
    let key = Key::new(128, dst.octets());
    CAPTURE.get(&key).is_some()
}

#[inline(always)]
fn is_proxy(cfg: &DatapathConfig, connect: &Connect) -> bool {
    if connect.port != cfg.proxy_port {
        return false;
    }
    match connect.dst.v4_be() {
        Some(ip4) => ip4 == cfg.proxy_ip4,
        None => connect.dst == cfg.proxy_ip6,
    }
}

/// Whether any proxy listener is alive. The kernel removes a listener from the sockmap when
/// its socket closes, so this is exact even after a kill -9.
#[inline(always)]
fn proxy_alive() -> bool {
    let mut slot: u32 = 0;
    while slot < LISTENER_SLOTS {
        // SAFETY: a sockmap lookup returns a referenced socket or null; we release it.
        unsafe {
            let sk = bpf_map_lookup_elem(LISTENERS.as_ptr(), (&raw const slot).cast());
            if !sk.is_null() {
                bpf_sk_release(sk);
                return true;
            }
        }
        slot += 1;
    }
    false
}
