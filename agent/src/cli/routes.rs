//! `graylane routes [SERVICE]`: the effective routing of each service port.

use clap::Args;
use serde_json::Value;

use super::{
    Common, Output, print_json, query,
    table::{Table, cell},
};

#[derive(Debug, Args)]
pub struct RoutesArgs {
    /// Only this service (`name` or `namespace/name`).
    pub service: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(a: &RoutesArgs) -> anyhow::Result<()> {
    let routes =
        a.common.client().json(&format!("/routes{}", query(&[("service", a.service.as_deref())])))?;
    if a.common.output == Output::Json {
        return print_json(&routes);
    }
    let services = routes.as_array().cloned().unwrap_or_default();
    if services.is_empty() {
        println!("no services");
        return Ok(());
    }
    for s in &services {
        let fallback = match s["fallback"]["mode"].as_str() {
            Some("chain") => format!("chain {}", s["fallback"]["chain"]),
            Some(m) => m.to_owned(),
            None => "base".into(),
        };
        println!(
            "{} {} ({}) fallback={} policy={}",
            cell(&s["service"]),
            cell(&s["address"]),
            cell(&s["protocol"]),
            fallback,
            cell(&s["policy"])
        );
        if let Some(from) = s["rules_from"].as_str() {
            println!("  rules from: {from}");
        }
        for d in s["data_lanes"].as_array().into_iter().flatten() {
            println!(
                "  data lane {} ({}): {}, unsupported commands: {}",
                cell(&d["lane"]),
                cell(&d["protocol"]),
                cell(&d["mapping"]),
                cell(&d["on_unsupported"])
            );
            let served = if d["served"] == true { "" } else { " — not served" };
            println!("    {}{served}, account: {}", cell(&d["enforcement"]), cell(&d["account"]));
            if let Some(why) = d["enforcement_detail"].as_str() {
                println!("    why: {why}");
            }
        }
        let mut t = Table::new(&["  SUBSET", "TENANT", "ENDPOINTS"]);
        for sub in s["subsets"].as_array().into_iter().flatten() {
            let eps: Vec<String> = sub["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let ejected = if e["ejected"] == true { " (ejected)" } else { "" };
                    format!("{}@{}{ejected}", cell(&e["pod"]), cell(&e["address"]))
                })
                .collect();
            t.row(vec![format!("  {}", cell(&sub["subset"])), cell(&sub["tenant"]), eps.join(", ")]);
        }
        print!("{}", t.render());
        for r in s["routes"].as_array().into_iter().flatten() {
            println!(
                "  route {}: match {} → {}",
                cell(&r["name"]),
                r["match"],
                destinations(&r["destinations"])
            );
        }
    }
    Ok(())
}

fn destinations(d: &Value) -> String {
    let parts: Vec<String> = d
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| format!("{}:{}", cell(&x["subset"]), cell(&x["weight"])))
        .collect();
    if parts.is_empty() { "lane/base".into() } else { parts.join(" ") }
}
