//! `cargo xtask demo`: the gateway → app → data sample of the seeds, on one node, in a
//! few readable lines: which subset served each kind of traffic, and why. Cleans up after.

use std::time::Instant;

use anyhow::{Context as _, bail};
use graylane_tests::{
    AgentOptions, MariaDb, Pod, Sandbox,
    demo::{APP, DATA, MYSQL, ORDERS, REDIS, SEARCH},
    privileged,
};
use serde_json::Value;

use crate::cmd::build_agent;

pub fn run(keep: bool) -> anyhow::Result<()> {
    // The sandbox finds the agent at target/debug/graylane, which this builds.
    build_agent(false)?;
    let Some(p) = privileged("demo") else { bail!("the demo needs root: sudo -E cargo xtask demo") };
    println!("\n== graylane demo: gateway → app → data, base and gray, one node ==\n");
    let mut sb = Sandbox::new(&p)?;
    let mysql = graylane_tests::demo::build(&mut sb)?;
    let took = sb.start_agent(&AgentOptions::default())?;
    for store in ["default/redis", "default/mysql"] {
        sb.admin().wait_data_lane(store, "stress", "store-enforced")?;
    }
    println!(
        "agent ready in {} ms; pods: gateway (ingress), client, app-v1, app-v2 [gray], stress-app [stress], data-v1, data-v2 [gray], search-v1, orders-v1, redis, mysql\n",
        took.as_millis()
    );
    println!("kill -9 the agent: pods keep reaching pod IPs directly (fail-open)");
    sb.kill_agent()?;
    let data_ip = sb.pod("data-v1").ip;
    let (code, _) = sb.pod("app-v2").curl(&format!("http://{data_ip}:8080/"))?;
    println!("  app-v2 → {data_ip}:8080 with no agent: HTTP {code}");
    let t = Instant::now();
    sb.start_agent(&AgentOptions::default())?;
    let dp = sb.admin().json("/datapath")?;
    let adopted =
        dp["status"]["links"].as_array().context("links")?.iter().filter(|l| l["adopted"] == true).count();
    let links = dp["status"]["links"].as_array().map_or(0, Vec::len);
    println!("  new agent ready in {} ms, adopted {adopted}/{links} pinned links\n", t.elapsed().as_millis());
    println!("rule: requests at the gateway with cookie user=alice are colored gray\n");
    println!("  {:<44} {:<9} WHY", "TRAFFIC", "SERVED BY");
    let app = format!("http://{APP}/");
    let data = format!("http://{DATA}/");
    let search = format!("http://{SEARCH}/");
    show(&sb, "client → app (no tag)", "client", &app, &[])?;
    show(&sb, "client → app (x-graylane-tag: gray)", "client", &app, &["x-graylane-tag:gray"])?;
    show(&sb, "gateway → app (cookie user=alice)", "gateway", &app, &["Cookie:user=alice"])?;
    show(&sb, "gateway → app (forged x-graylane-tag: gray)", "gateway", &app, &["x-graylane-tag:gray"])?;
    show(&sb, "app-v2 → data (no header: the kernel knows)", "app-v2", &data, &[])?;
    show(&sb, "app-v1 → data (no header)", "app-v1", &data, &[])?;
    show(&sb, "app-v2 → search (no gray search: escapes)", "app-v2", &search, &[])?;
    chain(&sb)?;
    caller_address(&sb)?;
    data_lanes(&sb, &mysql)?;

    println!("\n$ graylane flows      # on the node: where each connection went, and why");
    let bin = graylane_tests::binary()?;
    print!("{}", sb.node_exec(bin.to_str().context("binary path")?, &["flows"])?);
    let escapes = sb.metrics().count("graylane_lane_escapes_total", &[])?;
    let gray = sb.metrics().metric("graylane_requests_total", &[("source_tag", "gray")])?;
    println!(
        "\nPrometheus (:15090/metrics): {gray} gray requests, {escapes} of them escaped their lane \
         (graylane_lane_escapes_total)"
    );

    println!("\nThis ran standalone (pods and policies from YAML files). In a cluster:");
    println!(
        "  kubectl apply -k deploy/ && kubectl apply -f deploy/examples/   # agent --kube on every node\n"
    );
    if keep {
        sb.admin().forward(([127, 0, 0, 1], MAP_PORT).into())?;
        println!(
            "the lane map of this demo: http://127.0.0.1:{MAP_PORT}/ui   (live; press Enter to end the demo)"
        );
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    } else {
        println!(
            "the lane map: `cargo xtask demo --keep` keeps this sandbox up and serves its map on http://127.0.0.1:{MAP_PORT}/ui\n"
        );
    }
    Ok(())
}

/// Where `--keep` serves the map (the `graylane ui` port).
const MAP_PORT: u16 = 15020;

/// client → orders-v1 (base, forwards only `traceparent`) → data: the gray request keeps
/// its lane through the app that dropped the tag, by its trace id.
fn chain(sb: &Sandbox) -> anyhow::Result<()> {
    let url = format!("http://{ORDERS}/");
    let out = sb.pod("client").python_json("chain_client.py", &[&url, "3", "traceparent", "gray"])?;
    let pods = out[0]["pods"]
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let flows = sb.admin().json("/flows?pod=default/orders-v1")?;
    let last = flows.as_array().and_then(|a| a.last()).cloned().unwrap_or(Value::Null);
    println!(
        "  {:<44} {pods:<9} orders-v1 passes on only traceparent; its call: tag {} from {}, subset {}",
        "client → orders → data (gray)",
        last["lane_tag"].as_str().unwrap_or("-"),
        last["tag_source"].as_str().unwrap_or("-"),
        last["subset"].as_str().unwrap_or("-"),
    );
    Ok(())
}

/// The stress lane writes to Redis and MySQL like production does, with no code change;
/// graylane keeps its data under `shadow:` keys and in `orders_shadow`.
fn data_lanes(sb: &Sandbox, mysql: &MariaDb) -> anyhow::Result<()> {
    let (redis, db) = (REDIS.to_string(), MYSQL.to_string());
    println!(
        "\nstress test on shared data stores (dataLanes: Redis keyPrefix shadow:, MySQL schemaSuffix _shadow; both store-enforced: the lane logs in as accounts the stores limit to its data)"
    );
    let mut refused = String::new();
    for (pod, who, n) in [("app-v1", "prod", "5"), ("stress-app", "stress", "8")] {
        let flush = if pod == "stress-app" { "flushall" } else { "-" };
        let out = sb.pod(pod).python_json("data_writer.py", &[&redis, &db, who, n, flush])?;
        if pod == "stress-app" {
            refused = out[0]["flushall"].as_str().unwrap_or("?").to_owned();
        }
    }
    let cli = |args: &[&str]| -> anyhow::Result<String> {
        let mut a = vec!["-h", "127.0.0.1", "-p", "6379"];
        a.extend_from_slice(args);
        let (_, out, _) = sb.pod("redis").run("redis-cli", &a)?;
        Ok(out.trim().to_owned())
    };
    let prod_keys = cli(&["EVAL", "return #redis.call('KEYS', 'order:*')", "0"])?;
    let shadow_keys = cli(&["EVAL", "return #redis.call('KEYS', 'shadow:order:*')", "0"])?;
    let prod_rows = mysql.sql("SELECT COUNT(*) FROM orders.t")?;
    let shadow_rows = mysql.sql("SELECT COUNT(*) FROM orders_shadow.t")?;
    println!("  {:<28} {:>10} {:>10}", "", "production", "shadow");
    println!("  {:<28} {:>10} {:>10}", "Redis order:* keys", prod_keys, shadow_keys);
    println!("  {:<28} {:>10} {:>10}", "MySQL orders.t rows", prod_rows, shadow_rows);
    println!("  stress-app FLUSHALL: {refused}");
    Ok(())
}

/// Which address the server saw: the calling pod's own, so NetworkPolicy and server logs
/// keep the real caller.
fn caller_address(sb: &Sandbox) -> anyhow::Result<()> {
    let (_, body) = sb.pod("app-v1").curl(&format!("http://{DATA}/"))?;
    let seen: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    println!(
        "\n  data saw app-v1's request come from {} (app-v1's own IP is {}, the node's {}):\n  \
         the proxy connects from the caller's network namespace, so NetworkPolicy and server logs see the real caller",
        seen["client"].as_str().unwrap_or("?"),
        sb.pod("app-v1").ip,
        sb.node_ip(),
    );
    Ok(())
}

/// Sends a few requests and prints who served them and the routing explanation.
fn show(sb: &Sandbox, what: &str, from: &str, url: &str, headers: &[&str]) -> anyhow::Result<()> {
    let pod: &Pod = sb.pod(from);
    let mut args = vec![url.to_owned(), "3".to_owned()];
    args.extend(headers.iter().map(|h| (*h).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = pod.python_json("http_load.py", &refs)?;
    let pods = out[0]["pods"]
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let flows = sb.admin().json("/flows")?;
    let last = flows
        .as_array()
        .and_then(|a| a.iter().rfind(|f| f["src_pod"] == format!("default/{from}")))
        .cloned()
        .unwrap_or(Value::Null);
    let why = format!(
        "tag {} from {}, subset {} ({})",
        last["lane_tag"].as_str().unwrap_or("-"),
        last["tag_source"].as_str().unwrap_or("-"),
        last["subset"].as_str().unwrap_or("-"),
        last["reason"].as_str().unwrap_or("-"),
    );
    println!("  {what:<44} {pods:<9} {why}");
    Ok(())
}
