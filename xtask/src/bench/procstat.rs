//! CPU time and memory of a process and its children (nginx's workers), from /proc.

use anyhow::Context as _;

pub struct ProcStat {
    pub cpu_s: f64,
    /// The user-space part of `cpu_s`.
    pub user_s: f64,
    pub rss_kib: u64,
}

impl ProcStat {
    /// `pid` and every process whose parent is `pid`.
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let ticks = 100.0; // USER_HZ on Linux
        let mut cpu = 0u64;
        let mut user = 0u64;
        let mut rss = 0u64;
        for p in graylane_tests::processes() {
            let Some(f) = graylane_tests::stat_fields(p) else { continue };
            let ppid: u32 = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            if p != pid && ppid != pid {
                continue;
            }
            let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
            let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
            cpu += utime + stime;
            user += utime;
            rss += graylane_tests::usage(p).0;
        }
        Ok(Self { cpu_s: cpu as f64 / ticks, user_s: user as f64 / ticks, rss_kib: rss })
    }
}

/// Busy CPU seconds of the whole machine so far (every CPU, kernel and softirq included),
/// from `/proc/stat`.
pub fn node_busy_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("/proc/stat is empty")?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total - idle) as f64 / 100.0)
}
