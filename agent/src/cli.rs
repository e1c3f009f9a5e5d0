//! The `graylane` CLI: asks the node agent's admin API and prints aligned tables for people
//! or JSON for scripts. Exits non-zero with a one-line cause when the agent is unreachable.

mod client;
mod flows;
mod routes;
mod rules;
mod status;
mod table;
mod tags;
mod ui;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use client::Admin;
pub use flows::FlowsArgs;
pub use routes::RoutesArgs;
pub use ui::UiArgs;

#[derive(Debug, Parser)]
#[command(
    name = "graylane",
    version,
    about = "Gray (canary) and tenant traffic routing for Kubernetes, without sidecars"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent: kernel capture, inventory sync, node proxy, admin API.
    Agent(Box<crate::config::AgentArgs>),
    /// Check this node for the agent (kernel, BTF, cgroup v2, bpffs, capabilities, pin
    /// dir, open files, ports, inventory) with the agent's flags; exits 1 when it would not
    /// work.
    Check(Box<crate::config::AgentArgs>),
    /// Flows through this node's proxy: who called which service, in which lane, and why
    /// the request went where it did.
    Flows(FlowsArgs),
    /// The kernel's pod → tag/tenant maps.
    Tags(Common),
    /// Effective routing per service: subsets, endpoints, routes, fallback.
    Routes(RoutesArgs),
    /// How rules in other languages (Istio, Gateway API, OpenSergo) were taken: where they
    /// apply, accepted or why not, fields not honoured.
    Rules(Common),
    /// Agent version, attach state, table sizes, last inventory sync.
    Status(Common),
    /// The lane map in a browser: this node's (the agent's `/ui`), or with `--prometheus`
    /// the cluster's, served on 127.0.0.1:15020.
    Ui(UiArgs),
    /// Shell completions: `graylane completions bash > /etc/bash_completion.d/graylane`.
    Completions { shell: clap_complete::Shell },
    /// Print the graylane CustomResourceDefinitions (or write them into a folder).
    Crds {
        /// Write one file per CRD here instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Where the agent is and how to print.
#[derive(Debug, Args)]
pub struct Common {
    /// The agent's admin API.
    #[arg(long, global = true, default_value = "127.0.0.1:15000", env = "GRAYLANE_ADMIN")]
    pub admin: String,
    /// `table` for people, `json` for scripts.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t)]
    pub output: Output,
}

impl Common {
    pub fn client(&self) -> Admin {
        Admin::new(&self.admin)
    }
}

pub use flows::run as flows;
pub use routes::run as routes;
pub use rules::run as rules;
pub use status::run as status;
pub use tags::run as tags;
pub use ui::run as ui;

/// Prints `value` as pretty JSON.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `?k=v&…` from the pairs that are set.
fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v)))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
