//! The `graylane` CLI: asks the node agent's admin API and prints aligned tables for people
//! or JSON for scripts. Exits non-zero with a one-line cause when the agent is unreachable.

mod client;
mod flows;
mod routes;
mod status;
mod table;
mod tags;

use clap::{Args, ValueEnum};

pub use client::Admin;
pub use flows::FlowsArgs;
pub use routes::RoutesArgs;

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
pub use status::run as status;
pub use tags::run as tags;

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
