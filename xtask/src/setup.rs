//! Installs what the build and the tests need, only what is missing, and says so.

use std::process::Command;

use anyhow::bail;

use crate::cmd::run as sh;
use crate::cmd::{output, succeeds};

/// Debian packages: LLVM for bpf-linker, bpftool for tests, real clients and peers.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libclang-22-dev",
    "bpftool",
    "iproute2",
    "curl",
    "python3",
    "iptables",
    "nginx-light",
    "wrk",
    "nghttp2-client",
    "redis-server",
    "mariadb-server",
    "mariadb-client",
    "nats-server",
    "rabbitmq-server",
    "sysbench",
    "prometheus",
    "nodejs",
    "chromium",
    "fonts-dejavu-core",
    "linux-perf",
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

pub fn run() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!("xtask: setup: Debian packages present");
    } else {
        eprintln!("xtask: setup: installing {}", missing.join(" "));
        sh(Command::new("apt-get").args(["update", "-qq"]))?;
        sh(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends"]).args(&missing))?;
    }
    if !output("rustup", &["toolchain", "list"]).lines().any(|l| l.starts_with("nightly")) {
        bail!(
            "the nightly toolchain is missing (the eBPF programs build with nightly): rustup toolchain install nightly"
        );
    }
    if output("rustup", &["component", "list", "--toolchain", "nightly", "--installed"])
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        eprintln!("xtask: setup: nightly rust-src present");
    } else {
        sh(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    // Python test clients: grpcio (a real gRPC client/server), h2 (a strict HTTP/2 server),
    // kubernetes-validate (Kubernetes schemas, for deploy/), opentelemetry-proto (the
    // official OTLP messages, to parse the spans graylane exports), xxhash (trace keys in
    // forged lane hints), and the data stores' real clients: redis-py, PyMySQL, MySQL's
    // connector (server-side prepared statements), nats-py.
    for (module, package) in [
        ("grpc", "grpcio"),
        ("h2", "h2"),
        ("xxhash", "xxhash"),
        ("redis", "redis"),
        ("pymysql", "pymysql"),
        ("mysql.connector", "mysql-connector-python"),
        ("nats", "nats-py"),
        ("pika", "pika"),
        ("kubernetes_validate", "kubernetes-validate"),
        ("opentelemetry.proto.collector.trace.v1.trace_service_pb2", "opentelemetry-proto"),
    ] {
        if succeeds("python3", &["-c", &format!("import {module}")]) {
            eprintln!("xtask: setup: python {package} present");
        } else {
            sh(Command::new("python3").args(["-m", "pip", "install", "-q", package]))?;
        }
    }
    // The published schemas of the rule languages (Gateway API, Istio), to validate the
    // examples: kubernetes-models, pinned by tests/fixtures/schemas/package-lock.json.
    if !succeeds("npm", &["--version"]) {
        sh(Command::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends", "npm"]))?;
    }
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/schemas");
    if schemas.join("node_modules/@kubernetes-models/istio").exists() {
        eprintln!("xtask: setup: rule language schemas present");
    } else {
        sh(Command::new("npm").args(["ci", "--silent", "--no-audit", "--no-fund"]).current_dir(&schemas))?;
    }
    // The lane map's browser tests: playwright-core drives Debian's chromium, pinned by
    // tests/ui/package-lock.json.
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui");
    if ui.join("node_modules/playwright-core").exists() {
        eprintln!("xtask: setup: playwright-core present");
    } else {
        sh(Command::new("npm").args(["ci", "--silent", "--no-audit", "--no-fund"]).current_dir(&ui))?;
    }
    if succeeds("bpf-linker", &["--version"]) {
        eprintln!("xtask: setup: bpf-linker present");
    } else {
        sh(Command::new("cargo")
            .args(["install", "bpf-linker", "--locked", "--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", LLVM_PREFIX))?;
    }
    Ok(())
}

fn installed(package: &str) -> bool {
    output("dpkg-query", &["-W", "-f=${Status}", package]).contains("install ok installed")
}
