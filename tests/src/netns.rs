//! Network namespaces made with `ip netns`, deleted on drop.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::process::run;

pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn create(name: &str) -> anyhow::Result<Self> {
        run("ip", &["netns", "add", name]).with_context(|| format!("create netns {name}"))?;
        let ns = Self { name: name.to_owned() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n <ns> …`
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs a short command inside the namespace (no cgroup change) and returns stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let path = self.path();
        let net = format!("--net={}", path.display());
        let mut all = vec![net.as_str(), "--", program];
        all.extend_from_slice(args);
        let out = std::process::Command::new("nsenter").args(&all).output().context("nsenter")?;
        if !out.status.success() {
            bail!("{program} {args:?} in {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
