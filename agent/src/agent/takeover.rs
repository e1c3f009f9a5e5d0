//! Taking the pins: at once when nobody holds them; with `--takeover`, from the agent that
//! does, without a gap in capture. The successor binds its listeners first and parks them
//! in the sockmap's standby slots (connects queue on them), asks the owner to hand over
//! (`POST /takeover` on the admin address; SIGTERM if that fails), and waits for the pin
//! lock, which the owner lets go as soon as it stops accepting.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    config::AgentConfig,
    datapath::{DatapathError, Holder, ListenerSocket, Listeners, PinOwner, STANDBY_SLOTS},
};

/// The pins, and the listeners bound before them (to serve from, in the same order as the
/// configured proxy addresses) with the standby slots they are parked in.
pub struct Taken {
    pub owner: PinOwner,
    pub listeners: Vec<Arc<tokio::net::TcpListener>>,
    pub standby: Option<Listeners>,
}

impl Taken {
    /// Empties the standby slots (once the listeners sit in the owner's slots).
    pub fn release_standby(&mut self) {
        if let Some(standby) = self.standby.take() {
            for slot in STANDBY_SLOTS {
                standby.clear(slot);
            }
        }
    }
}

const REFUSED: &str = "stop it first, or start this one with --takeover to hand over without a gap";

pub async fn take(cfg: &AgentConfig) -> anyhow::Result<Taken> {
    let holder = match PinOwner::try_acquire(&cfg.pins)? {
        Ok(owner) => return Ok(Taken { owner, listeners: Vec::new(), standby: None }),
        Err(holder) if !cfg.takeover => {
            let dir = cfg.pins.dir.clone();
            return Err(DatapathError::Owned { dir, holder: holder.to_string(), hint: REFUSED }.into());
        }
        Err(holder) => holder,
    };
    tracing::info!(%holder, pin_dir = %cfg.pins.dir.display(), "taking over from the running agent");
    let mut listeners = Vec::new();
    for addr in cfg.proxy_addrs() {
        let l = crate::proxy::bind_listener(addr).with_context(|| format!("bind proxy {addr}"))?;
        listeners.push(Arc::new(l));
    }
    // Keep capture on while the owner's listeners close (a missing sockmap is fine: the
    // old agent never installed one, so there is nothing to keep on).
    let standby = Listeners::open_pinned(&cfg.pins)?;
    if let Some(standby) = &standby {
        for (slot, l) in STANDBY_SLOTS.iter().zip(&listeners) {
            standby.register(*slot, l.clone() as ListenerSocket)?;
        }
    }
    if let Err(e) = ask(cfg.admin_addr) {
        tracing::warn!(admin = %cfg.admin_addr, error = %e, "the owner did not answer POST /takeover; signalling it");
        signal(&holder)?;
    }
    let pins = cfg.pins.clone();
    let wait = cfg.drain_timeout + Duration::from_secs(10);
    let owner = tokio::task::spawn_blocking(move || PinOwner::wait(&pins, wait)).await??;
    tracing::info!("the previous agent handed over the pins");
    Ok(Taken { owner, listeners, standby })
}

/// `POST /takeover` to the running agent's admin API.
fn ask(admin: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(
        b"POST /takeover HTTP/1.1\r\nHost: graylane\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    match &head[9..12] {
        b"202" => Ok(()),
        other => Err(std::io::Error::other(format!("answered {}", String::from_utf8_lossy(other)))),
    }
}

fn signal(holder: &Holder) -> anyhow::Result<()> {
    let pid = holder
        .pid
        .context("the owner is in another pid namespace and did not answer on the admin address")?;
    let pid = i32::try_from(pid).context("pid out of range")?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)
        .with_context(|| format!("SIGTERM to pid {pid}"))
}
