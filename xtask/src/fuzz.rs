//! `cargo xtask fuzz --time N`: every fuzz target (`fuzz/fuzz_targets/`) under libFuzzer
//! for N seconds each, from the checked-in corpus; reports executions per target. A crash
//! leaves its reproducer in `fuzz/artifacts/<target>/` (check it in: `cargo test` replays
//! it) and fails the run.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cmd::{root, succeeds};

const TARGETS: [&str; 10] =
    ["headers", "inventory", "route", "record", "requests", "redis", "mysql", "nats", "amqp", "kernel_lanes"];

pub fn run(seconds: u64) -> anyhow::Result<()> {
    if !succeeds("cargo", &["fuzz", "--version"]) {
        crate::cmd::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = root().join("fuzz");
    let mut report = Vec::new();
    for target in TARGETS {
        // New inputs go to a scratch corpus; the checked-in one (minimized with
        // `cargo fuzz cmin`) is read as a seed and stays as it is.
        let corpus = dir.join("corpus").join(target);
        let scratch = dir.join("target").join("corpus").join(target);
        std::fs::create_dir_all(&scratch)?;
        eprintln!("xtask: fuzz {target} for {seconds} s");
        let out = Command::new("cargo")
            .current_dir(&dir)
            .env("GRAYLANE_SKIP_EBPF", "1")
            // No sanitizer: the code under test is safe Rust; we hunt panics, overflows (debug
            // assertions are on) and hangs, and the build is much faster.
            .args(["+nightly", "fuzz", "run", "--sanitizer", "none", target])
            .arg(&scratch)
            .arg(&corpus)
            .args(["--", &format!("-max_total_time={seconds}"), "-print_final_stats=1", "-rss_limit_mb=2048"])
            .output()
            .with_context(|| format!("cargo fuzz run {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let execs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "?".into());
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            bail!(
                "fuzz target {target} failed after {execs} executions (reproducer in fuzz/artifacts/{target}/):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        report.push(format!("{target}: {execs} executions in {seconds} s, no crash"));
    }
    for line in &report {
        println!("fuzz: {line}");
    }
    Ok(())
}
