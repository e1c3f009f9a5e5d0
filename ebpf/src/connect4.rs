//! `cgroup/connect4`: capture IPv4 TCP connects of managed pods.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use graylane_common::Addr16;

use crate::capture::{Connect, Decision, decide};

const AF_INET: u16 = 2;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the kernel's context pointer.
    let (ip4, port_be) = unsafe { ((*sa).user_ip4, (*sa).user_port) };
    let connect = Connect {
        dst: Addr16::from_v4_be(ip4),
        port: u16::from_be(port_be as u16),
        family: AF_INET,
        needs_proxy6: false,
    };
    match decide(&ctx, &connect) {
        Decision::Pass => 1,
        Decision::Refuse => 0,
        Decision::Redirect(cfg) => {
            // SAFETY: connect4 may write user_ip4/user_port (4-byte stores).
            unsafe {
                (*sa).user_ip4 = cfg.proxy_ip4;
                (*sa).user_port = u32::from(cfg.proxy_port.to_be());
            }
            1
        }
        Decision::Direct(to) => match to.addr.v4_be() {
            Some(ip4) => {
                // SAFETY: connect4 may write user_ip4/user_port (4-byte stores).
                unsafe {
                    (*sa).user_ip4 = ip4;
                    (*sa).user_port = u32::from(to.port.to_be());
                }
                1
            }
            None => 1,
        },
    }
}
