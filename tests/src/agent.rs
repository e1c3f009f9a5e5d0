//! The agent under test, started inside the node netns.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;

use crate::{netns::NetNs, process::Spawned};

/// How to start the agent.
#[derive(Clone, Debug, Default)]
pub struct AgentOptions {
    /// More command-line arguments.
    pub args: Vec<String>,
    /// Run the agent inside this cgroup (e.g. inside the captured subtree).
    pub cgroup: Option<PathBuf>,
    /// `RUST_LOG` for the agent (default `info,graylane=debug`).
    pub log: Option<String>,
    /// The binary to run (default: [`binary`]).
    pub binary: Option<PathBuf>,
    /// Read the inventory from Kubernetes through this kubeconfig (instead of the file).
    pub kubeconfig: Option<PathBuf>,
    /// Run the agent under this open-files limit (soft and hard), through `prlimit`.
    pub open_files: Option<u64>,
}

pub struct Agent {
    proc: Spawned,
    pub log: PathBuf,
}

/// The `graylane` binary under test: `$GRAYLANE_BIN`, or the workspace's debug build.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("GRAYLANE_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/graylane"),
    };
    if !path.exists() {
        bail!("{} not found: build it first (`cargo xtask test` does)", path.display());
    }
    Ok(path)
}

/// The arguments every sandbox agent gets.
pub struct AgentPaths<'a> {
    pub inventory: &'a Path,
    pub cgroup_root: &'a Path,
    pub pin_dir: &'a Path,
    pub proxy_addr: &'a str,
    pub proxy_addr6: &'a str,
    /// `spec.nodeName` of this node's pods (the Kubernetes source's `NODE_NAME`).
    pub node_name: &'a str,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(node: &NetNs, paths: &AgentPaths<'_>, opts: &AgentOptions) -> anyhow::Result<Self> {
        let bin = match &opts.binary {
            Some(b) => b.clone(),
            None => binary()?,
        };
        let source: Vec<String> = match &opts.kubeconfig {
            // No kubelet here: pods name their sandbox cgroups by annotation.
            Some(_) => vec!["--kube".into(), "--cgroup-annotation".into()],
            None => vec!["--inventory".into(), paths.inventory.display().to_string()],
        };
        let mut args: Vec<String> = vec!["agent".into()];
        args.extend(source);
        args.extend([
            "--cgroup-root".into(),
            paths.cgroup_root.display().to_string(),
            "--pin-dir".into(),
            paths.pin_dir.display().to_string(),
            "--proxy-addr".into(),
            paths.proxy_addr.into(),
            "--proxy-addr6".into(),
            paths.proxy_addr6.into(),
        ]);
        // No --service-cidr: every Service cluster IP in the inventory is captured (the
        // default); tests that need a whole range captured ask for it.
        args.extend(opts.args.iter().cloned());
        let net = format!("--net={}", node.path().display());
        if let Some(n) = opts.open_files {
            args.insert(0, bin.display().to_string());
            args.insert(0, format!("--nofile={n}:{n}"));
        }
        let bin = if opts.open_files.is_some() { PathBuf::from("prlimit") } else { bin };
        let mut cmd = match &opts.cgroup {
            Some(cg) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#"cg=$1; shift; echo $$ > "$cg" && exec nsenter "$@""#)
                    .arg("sh")
                    .arg(cg.join("cgroup.procs"))
                    .arg(&net)
                    .arg("--")
                    .arg(&bin);
                c
            }
            None => {
                let mut c = Command::new("nsenter");
                c.arg(&net).arg("--").arg(&bin);
                c
            }
        };
        let level = opts.log.clone().unwrap_or_else(|| "info,graylane=debug".into());
        if let Some(kubeconfig) = &opts.kubeconfig {
            cmd.env("KUBECONFIG", kubeconfig).env("NODE_NAME", paths.node_name);
        }
        cmd.args(&args).env("RUST_LOG", level).env("RUST_BACKTRACE", "0");
        let proc = Spawned::spawn(cmd, "graylane agent", Some(&paths.log)).context("start agent")?;
        Ok(Self { proc, log: paths.log.clone() })
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// kill -9: no cleanup runs in the agent.
    pub fn kill9(&mut self) {
        self.proc.kill(Signal::SIGKILL);
    }

    /// SIGTERM without waiting (it drains, then exits).
    pub fn sigterm(&self) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// SIGTERM, then waits for the agent to exit (it drains first).
    pub fn terminate(&mut self) {
        self.proc.kill(Signal::SIGTERM);
    }

    pub fn exited(&mut self) -> bool {
        self.proc.exited()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
