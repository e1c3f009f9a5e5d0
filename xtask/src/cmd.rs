//! Running commands, saying what runs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Prints and runs `cmd`, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", shown(cmd));
    let status = cmd.status().with_context(|| format!("run {}", shown(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", shown(cmd));
    }
    Ok(())
}

/// Whether a command exits 0 (quietly).
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

/// stdout of a command, or empty.
pub fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn shown(cmd: &Command) -> String {
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

/// `cargo`, as invoked by the running cargo.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Builds the `graylane` binary (eBPF included) and returns its path.
pub fn build_agent(release: bool) -> anyhow::Result<PathBuf> {
    let mut c = cargo();
    c.args(["build", "--package", "graylane"]);
    if release {
        c.arg("--release");
    }
    run(&mut c)?;
    let bin = root().join("target").join(if release { "release" } else { "debug" }).join("graylane");
    Ok(bin)
}
