//! Processes the sandbox starts: killed by pid on drop, never by name.

use std::{
    path::Path,
    process::{Child, Command, Output, Stdio},
};

use anyhow::{Context as _, bail};
use nix::{sys::signal::Signal, unistd::Pid};

/// Runs a command to completion; fails with its stderr.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program).args(args).output().with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A command that joins `cgroup_procs` first, then enters the network namespace at `netns`
/// (joining the cgroup first matters: `ip netns exec` remounts /sys).
pub fn in_pod(cgroup_procs: &Path, netns: &Path, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"cg=$1; ns=$2; shift 2; echo $$ > "$cg" && exec nsenter --net="$ns" -- "$@""#)
        .arg("sh")
        .arg(cgroup_procs)
        .arg(netns)
        .arg(program)
        .args(args);
    cmd
}

/// A child process we own.
pub struct Spawned {
    child: Option<Child>,
    pub label: String,
}

impl Spawned {
    pub fn spawn(mut cmd: Command, label: &str, log: Option<&Path>) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::null());
        match log {
            Some(path) => {
                let file = std::fs::File::create(path)?;
                cmd.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = cmd.spawn().with_context(|| format!("spawn {label}"))?;
        Ok(Self { child: Some(child), label: label.to_owned() })
    }

    /// Wraps a child started by the caller (its stdout/stderr may be piped).
    pub fn from_child(child: Child, label: &str) -> Self {
        Self { child: Some(child), label: label.to_owned() }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` to our child and to every process it started (nginx's workers, a
    /// server's forks: orphaned, they would outlive the test and load the machine for the
    /// next one), then reaps it.
    pub fn kill(&mut self, signal: Signal) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            let family = descendants(pid);
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), signal);
            for p in family {
                let _ = nix::sys::signal::kill(Pid::from_raw(p as i32), signal);
            }
            let _ = child.wait();
        }
    }

    /// Whether it has exited already.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// Waits for exit and returns the output (stdout must have been piped by the caller).
    pub fn wait_output(mut self) -> anyhow::Result<Output> {
        let child = self.child.take().context("already reaped")?;
        Ok(child.wait_with_output()?)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill(Signal::SIGKILL);
    }
}

/// Every live process below `pid` (children, their children, ...), read from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> =
        processes().filter_map(|p| Some((p, stat_fields(p)?.get(1)?.parse().ok()?))).collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

/// The pids in `/proc` now.
pub fn processes() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces): state
/// is 0, the parent's pid 1, utime 11, stime 12. `None` when the process is gone.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Resident memory (KiB) and open descriptors of process `pid`, from `/proc` (0 when gone).
pub fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0);
    (rss, fds)
}

/// CPU seconds (user + system) process `pid` has used so far, from `/proc` (0 when gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let fields = stat_fields(pid).unwrap_or_default();
    let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    ticks / hz
}
