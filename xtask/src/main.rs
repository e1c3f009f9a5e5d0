//! `cargo xtask <task>`: everything a developer or CI runs, from a fresh machine.

mod bench;
mod cmd;
mod demo;
mod fuzz;
mod scale;
mod setup;
mod soak;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing (nightly rust-src, LLVM 22, bpf-linker, bpftool, clients).
    Setup,
    /// Build the agent (and its eBPF programs, once).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Lint, unit tests, and the privileged real-kernel sandbox tests.
    Test {
        /// Allow privileged tests to skip when not root (never in CI).
        #[arg(long)]
        allow_skip: bool,
        /// Seconds per fuzz target after the tests (0: no fuzzing).
        #[arg(long, default_value_t = 20)]
        fuzz_time: u64,
        /// Extra arguments for the test binaries (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the demo: pods in namespaces, the agent, traffic, and what graylane saw.
    Demo {
        /// Keep the sandbox up afterwards and serve its lane map on 127.0.0.1:15020 until
        /// Enter is pressed.
        #[arg(long)]
        keep: bool,
    },
    /// The agent with a large inventory: time to ready, memory, change latency.
    Scale {
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        #[arg(long, default_value_t = 1_000)]
        services: usize,
    },
    /// Every fuzz target for a bounded time from the checked-in corpus (nightly).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        time: u64,
    },
    /// Steady traffic with periodic kill -9 and tag churn: RSS slope, fds, success rate.
    Soak {
        #[arg(long, default_value_t = 20)]
        minutes: u64,
    },
    /// Benchmark graylane against direct, nginx and iptables capture, with a cost ledger,
    /// HTTP/2, gRPC and fixed-rate latency cases (not a test).
    Bench {
        /// Only the cases of these names, or whose name contains one (comma-separated), e.g.
        /// `graylane` or `redis,sysbench`.
        #[arg(long)]
        only: Option<String>,
        /// Interleaved rounds; each case runs once per round (after a warm-up round).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds per run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// wrk connections.
        #[arg(long, default_value_t = 32)]
        connections: u32,
        /// Another graylane binary (e.g. the build before a change): each graylane case also
        /// runs with it, interleaved in every round, and the CPU per request is compared.
        #[arg(long)]
        baseline: Option<std::path::PathBuf>,
        /// Profile the agent (perf: hottest symbols, CPU time, context switches) during each
        /// graylane case's first measured round, into this folder.
        #[arg(long)]
        profile: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Build { release } => {
            setup::run()?;
            cmd::build_agent(release).map(|_| ())
        }
        Task::Test { allow_skip, fuzz_time, args } => {
            setup::run()?;
            test::run(allow_skip, fuzz_time, &args)
        }
        Task::Fuzz { time } => {
            setup::run()?;
            fuzz::run(time)
        }
        Task::Soak { minutes } => {
            setup::run()?;
            soak::run(minutes)
        }
        Task::Demo { keep } => {
            setup::run()?;
            demo::run(keep)
        }
        Task::Scale { pods, services } => {
            setup::run()?;
            scale::run(pods, services)
        }
        Task::Bench { only, rounds, seconds, connections, baseline, profile } => {
            setup::run()?;
            let duration = std::time::Duration::from_secs(seconds);
            let args = bench::BenchArgs { only, rounds, duration, connections, baseline, profile };
            bench::run(&args)
        }
    }
}
