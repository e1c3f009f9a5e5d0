//! The `graylane` binary: the node agent and the CLI that talks to it.

use clap::{CommandFactory as _, Parser as _};
use graylane::{agent, cli, config, crds, datapath, inventory};

/// jemalloc with background purging returns freed memory to the system (glibc's malloc
/// keeps a burst's peak in its per-thread arenas): a node proxy's memory falls back after a
/// connection storm.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use graylane::{
    cli::{Cli, Command},
    config::AgentConfig,
};

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graylane: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Flows(a) => cli::flows(&a),
        Command::Tags(c) => cli::tags(&c),
        Command::Routes(a) => cli::routes(&a),
        Command::Rules(c) => cli::rules(&c),
        Command::Status(c) => cli::status(&c),
        Command::Ui(a) => cli::ui(&a),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "graylane", &mut std::io::stdout());
            Ok(())
        }
        Command::Crds { dir } => crds::run(dir.as_deref()),
        Command::Check(args) => {
            let checks = agent::check::run(&args, agent::check::Scope::All);
            print!("{}", agent::check::render(&checks));
            if agent::check::failed(&checks) {
                anyhow::bail!("this node is not ready for the agent: see the ✗ lines above");
            }
            Ok(())
        }
        Command::Agent(args) => {
            init_logging(&args.log_format);
            if args.uninstall {
                return agent::run_uninstall(&datapath::PinPaths::new(&args.pin_dir));
            }
            let checks = agent::check::run(&args, agent::check::Scope::Start);
            if agent::check::failed(&checks) {
                let failures: Vec<_> =
                    checks.into_iter().filter(|c| c.status == agent::check::Status::Fail).collect();
                anyhow::bail!("this node is not ready for the agent:\n{}", agent::check::render(&failures));
            }
            let open_files = raise_fd_limit();
            let cfg = AgentConfig::from_args(&args, open_files)?;
            tracing::info!(config = %serde_json::to_string(&cfg)?, "effective configuration");
            for lowered in &cfg.budget.lowered {
                tracing::warn!(open_files, "{lowered}: lowered to fit the descriptor budget");
            }
            if args.check_config {
                println!("{}", serde_json::to_string_pretty(&cfg)?);
                let config::InventorySource::Files(path) = &cfg.source else { return Ok(()) };
                let snapshot = inventory::load_path(path, &cfg.node_facts())?;
                println!(
                    "inventory ok: {} pods, {} services, {} policies, {} rules",
                    snapshot.pods.len(),
                    snapshot.services.len(),
                    snapshot.policies.len(),
                    snapshot.rules.len()
                );
                return Ok(());
            }
            let runtime =
                tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("proxy").build()?;
            runtime.block_on(agent::run(cfg))
        }
    }
}

/// Every proxied connection costs two descriptors: lifts the soft limit to the hard one and
/// returns what the process got (the descriptor budget is planned from it).
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the open-files limit");
                hard
            }
            Err(e) => {
                tracing::warn!(error = %e, soft, "could not raise the open-files limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the open-files limit; planning for 1024");
            1024
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
