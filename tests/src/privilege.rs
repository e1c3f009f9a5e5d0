//! Privileged tests need root. Without it they skip loudly; with
//! `GRAYLANE_REQUIRE_PRIVILEGED=1` (set by `cargo xtask test` and CI) a skip is a failure.

/// Proof that the caller may create namespaces, cgroups and load eBPF.
pub struct Privileged(());

/// `Some` when running as root. Otherwise prints why the test is skipped, or panics when
/// skips are forbidden.
pub fn privileged(test: &str) -> Option<Privileged> {
    if nix::unistd::geteuid().is_root() {
        return Some(Privileged(()));
    }
    let msg =
        format!("\n!!! SKIPPED {test}: needs root (netns, cgroups, eBPF). Run `sudo -E cargo xtask test`.\n");
    if std::env::var_os("GRAYLANE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{msg}GRAYLANE_REQUIRE_PRIVILEGED=1 forbids skipping privileged tests");
    }
    eprintln!("{msg}");
    None
}
