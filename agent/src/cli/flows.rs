//! `graylane flows`: where traffic went, in which lane, and why.

use clap::Args;
use serde_json::Value;

use super::{
    Common, Output, print_json, query,
    table::{Table, cell},
};

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Only flows whose request lane (or source pod) has this tag.
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    /// Source pod: `name` or `namespace/name`.
    #[arg(long)]
    pub pod: Option<String>,
    /// Destination service: `name` or `namespace/name`.
    #[arg(long)]
    pub service: Option<String>,
    /// The newest N flows.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Keep printing new flows as they are accepted.
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub common: Common,
}

const HEADER: &[&str] = &[
    "ID", "SOURCE", "TAG", "TAG FROM", "TENANT", "SERVICE", "SUBSET", "ENDPOINT", "PROTO", "REQS", "LAST",
    "WHY",
];

pub fn run(a: &FlowsArgs) -> anyhow::Result<()> {
    let limit = a.limit.map(|n| n.to_string());
    let follow = a.follow.then_some("1");
    let path = format!(
        "/flows{}",
        query(&[
            ("tag", a.tag.as_deref()),
            ("tenant", a.tenant.as_deref()),
            ("pod", a.pod.as_deref()),
            ("service", a.service.as_deref()),
            ("limit", limit.as_deref()),
            ("follow", follow),
        ])
    );
    let client = a.common.client();
    if a.follow {
        if a.common.output == Output::Table {
            println!("{}", Table::new(HEADER).render().trim_end());
        }
        client.follow(&path, |flow| match a.common.output {
            Output::Json => println!("{flow}"),
            Output::Table => {
                let mut t = Table::new(HEADER);
                t.row(row(&flow));
                // One row at a time: columns cannot align across rows here.
                print!("{}", t.render().lines().nth(1).map(|l| format!("{l}\n")).unwrap_or_default());
            }
        })?;
        return Ok(());
    }
    let flows = client.json(&path)?;
    if a.common.output == Output::Json {
        return print_json(&flows);
    }
    let mut t = Table::new(HEADER);
    for f in flows.as_array().into_iter().flatten() {
        t.row(row(f));
    }
    if t.is_empty() {
        println!("no flows");
    } else {
        print!("{}", t.render());
    }
    Ok(())
}

fn row(f: &Value) -> Vec<String> {
    let tag = if f["lane_tag"].is_null() { &f["tag"] } else { &f["lane_tag"] };
    let endpoint = match (&f["endpoint_pod"], &f["upstream"]) {
        (Value::String(p), _) => p.clone(),
        (_, u) => cell(u),
    };
    vec![
        cell(&f["id"]),
        cell(&f["src_pod"]),
        cell(tag),
        cell(&f["tag_source"]),
        cell(&f["tenant"]),
        cell(&f["service"]),
        cell(&f["subset"]),
        endpoint,
        cell(&f["protocol"]),
        cell(&f["requests"]),
        cell(&f["last_status"]),
        why(f),
    ]
}

/// The routing explanation: why that subset, by which route or rule.
fn why(f: &Value) -> String {
    let mut parts = Vec::new();
    if f["path"] == "kernel" {
        parts.push("via=kernel".to_owned());
    }
    if let Some(r) = f["reason"].as_str() {
        parts.push(r.to_owned());
    }
    if let Some(r) = f["route"].as_str() {
        parts.push(format!("route={r}"));
    }
    if let Some(r) = f["rule"].as_str() {
        parts.push(format!("rule={r}"));
    }
    if let Some(l) = f["lane_lost"].as_str() {
        parts.push(format!("lane_lost={l}"));
    }
    if let Some(d) = f["data_lane"].as_str() {
        parts.push(format!("data lane: {d}"));
    }
    if let Some(n) = f["data_rejected"].as_u64().filter(|n| *n > 0) {
        parts.push(format!("refused {n}"));
    }
    // Upstream from the node's address instead of the caller's own, and why.
    if let Some(r) = f["source_fallback"].as_str().filter(|r| *r != "configured") {
        parts.push(format!("from_node={r}"));
    }
    if let Some(Value::Object(o)) = f.get("outcome") {
        if let Some(e) = o.get("failed").and_then(Value::as_str) {
            parts.push(format!("failed: {e}"));
        }
        if let Some(r) = o.get("bypassed").and_then(Value::as_str) {
            parts.push(format!("bypassed by the kernel: {r}"));
        }
    }
    if parts.is_empty() { "-".into() } else { parts.join(" ") }
}
