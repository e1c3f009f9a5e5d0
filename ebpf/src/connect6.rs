//! `cgroup/connect6`: capture IPv6 TCP connects, and IPv4 ones made through v6 sockets.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use graylane_common::Addr16;

use crate::capture::{Connect, Decision, decide};

const AF_INET6: u16 = 10;

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the kernel's context pointer; user_ip6 allows 4-byte loads.
    let (words, port_be) = unsafe {
        ([(*sa).user_ip6[0], (*sa).user_ip6[1], (*sa).user_ip6[2], (*sa).user_ip6[3]], (*sa).user_port)
    };
    let dst = Addr16::from_v6_be(words);
    let connect = Connect {
        dst,
        port: u16::from_be(port_be as u16),
        family: AF_INET6,
        needs_proxy6: !dst.is_v4_mapped(),
    };
    match decide(&ctx, &connect) {
        Decision::Pass => 1,
        Decision::Refuse => 0,
        Decision::Redirect(cfg) => {
            let to = if dst.is_v4_mapped() { Addr16::from_v4_be(cfg.proxy_ip4) } else { cfg.proxy_ip6 };
            // SAFETY: connect6 may write user_ip6 words and user_port (4-byte stores).
            unsafe {
                (*sa).user_ip6[0] = to.words[0];
                (*sa).user_ip6[1] = to.words[1];
                (*sa).user_ip6[2] = to.words[2];
                (*sa).user_ip6[3] = to.words[3];
                (*sa).user_port = u32::from(cfg.proxy_port.to_be());
            }
            1
        }
        Decision::Direct(to) => {
            // SAFETY: connect6 may write user_ip6 words and user_port (4-byte stores).
            unsafe {
                (*sa).user_ip6[0] = to.addr.words[0];
                (*sa).user_ip6[1] = to.addr.words[1];
                (*sa).user_ip6[2] = to.addr.words[2];
                (*sa).user_ip6[3] = to.addr.words[3];
                (*sa).user_port = u32::from(to.port.to_be());
            }
            1
        }
    }
}
