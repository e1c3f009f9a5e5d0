//! Rebuild when `bpf-linker` changes (it is an undeclared build dependency).
use which::which;

fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found: {err}; run `cargo xtask setup`"),
    }
}
