//! `cargo xtask test`: format and lint checks, then every test, privileged ones included,
//! then each fuzz target for a short bounded time.

use anyhow::bail;

use crate::cmd::{self, build_agent, cargo};

pub fn run(allow_skip: bool, fuzz_seconds: u64, args: &[String]) -> anyhow::Result<()> {
    let root = nix_root();
    if !root && !allow_skip {
        bail!(
            "the sandbox tests need root (network namespaces, cgroups, eBPF): run `sudo -E cargo xtask test`, \
             or pass --allow-skip to run the rest and skip them loudly"
        );
    }
    cmd::run(cargo().args(["fmt", "--all", "--check"]))?;
    cmd::run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "graylane-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let bin = build_agent(false)?;
    let mut test = cargo();
    test.args(["test", "--workspace", "--exclude", "graylane-ebpf", "--no-fail-fast", "--"]).args(args);
    test.env("GRAYLANE_BIN", &bin);
    if !allow_skip {
        test.env("GRAYLANE_REQUIRE_PRIVILEGED", "1");
    }
    cmd::run(&mut test)?;
    if fuzz_seconds > 0 && args.is_empty() {
        crate::fuzz::run(fuzz_seconds)?;
    }
    Ok(())
}

fn nix_root() -> bool {
    crate::cmd::output("id", &["-u"]).trim() == "0"
}
