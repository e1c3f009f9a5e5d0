//! `--profile DIR`: while a graylane case runs its first measured round, `perf record`
//! samples the agent (cpu-clock at 499 Hz, DWARF call graphs: release builds keep no frame
//! pointers) and `perf stat` counts its CPU time, context switches, migrations and page
//! faults. Reports go to `DIR/<case>.txt` (hottest symbols) and `DIR/<case>.stat` (with the
//! requests served, to read per request). Sampling costs the agent CPU: a profiled round is
//! an explanation, not a measurement.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::Context as _;

pub struct Profiler {
    record: Child,
    stat: Child,
    data: PathBuf,
    stat_out: PathBuf,
    report: PathBuf,
}

/// Starts sampling `pid` for `case`.
pub fn start(dir: &Path, case: &str, pid: u32) -> anyhow::Result<Profiler> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let stem: String = case.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let (data, stat_out, report) =
        (dir.join(format!("{stem}.data")), dir.join(format!("{stem}.stat")), dir.join(format!("{stem}.txt")));
    let pid = pid.to_string();
    let record = Command::new("perf")
        .args([
            "record",
            "-q",
            "-F",
            "499",
            "-e",
            "cpu-clock",
            "--call-graph",
            "dwarf,16384",
            "-p",
            &pid,
            "-o",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("perf record (Debian's linux-perf)")?;
    let stat = Command::new("perf")
        .args(["stat", "-e", "task-clock,context-switches,cpu-migrations,page-faults", "-p", &pid, "-o"])
        .arg(&stat_out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("perf stat")?;
    Ok(Profiler { record, stat, data, stat_out, report })
}

impl Profiler {
    /// Stops sampling (SIGINT, as perf expects) and writes the reports.
    pub fn finish(mut self, requests: u64) -> anyhow::Result<()> {
        for child in [&mut self.record, &mut self.stat] {
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
        let out = Command::new("perf")
            .args([
                "report",
                "--no-children",
                "--percent-limit",
                "0.5",
                "--stdio",
                "--sort",
                "dso,symbol",
                "-g",
                "none",
                "-i",
            ])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output()
            .context("perf report")?;
        std::fs::write(&self.report, &out.stdout)
            .with_context(|| format!("write {}", self.report.display()))?;
        let mut stat = std::fs::read_to_string(&self.stat_out).unwrap_or_default();
        stat.push_str(&format!("\nrequests served: {requests}\n"));
        std::fs::write(&self.stat_out, stat).with_context(|| format!("write {}", self.stat_out.display()))?;
        eprintln!("bench: profile in {} and {}", self.report.display(), self.stat_out.display());
        Ok(())
    }
}
