//! A real `redis-server` for the test, reachable only through a unix socket in its own
//! scratch folder (no TCP port: nothing leaves the machine, every netns can reach it).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;

use crate::process::Spawned;

pub struct Redis {
    proc: Spawned,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts `redis-server` and waits until it answers PING.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("graylane-redis-").tempdir()?;
        let socket = dir.path().join("redis.sock");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocketperm", "700"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path());
        let log = dir.path().join("redis.log");
        let proc = Spawned::spawn(cmd, "redis-server", Some(&log))
            .context("redis-server (install it: cargo xtask setup)")?;
        let redis = Self { proc, socket, _dir: dir };
        for _ in 0..200 {
            if redis.cli(&["PING"]).is_ok_and(|o| o.trim() == "PONG") {
                return Ok(redis);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("redis-server did not answer: {}", std::fs::read_to_string(log).unwrap_or_default())
    }

    /// `redis+unix://…`, for the agent's `--redis`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs `redis-cli` against this server.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("redis-cli").arg("-s").arg(&self.socket).args(args).output()?;
        if !out.status.success() {
            bail!("redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// kill -9: Redis is gone (the socket file stays, refusing connections).
    pub fn kill(&mut self) {
        self.proc.kill(Signal::SIGKILL);
    }
}
