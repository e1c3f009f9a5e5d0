//! `cargo xtask bench`: graylane against its peers in one sandbox, one run, interleaved,
//! each case several times, reported as medians and ratios. Not a test: numbers only.
//!
//! Cases (same client pod position, same nginx backend serving 1 KiB):
//! - HTTP/1.1 keep-alive (wrk): `direct` (no capture, straight to the backend pod),
//!   `graylane` (eBPF capture, L7 routing, tag inference, default observability: metrics,
//!   flows, 1 % of traces exported), `nginx` (a plain reverse proxy in the node netns, the
//!   proxy's position), `iptables` (DNAT into the same graylane proxy), `policy` (graylane
//!   with a rate limit, a breaker and retries).
//! - Two more HTTP/1.1 keep-alive shapes, direct, graylane and nginx each: `1t32c` (one
//!   wrk thread, 32 connections) and `128c` (two threads, 128 connections).
//! - A cost ledger: graylane recording nothing, then metrics, flows, spans at 1 % and at
//!   100 % (exported to a collector), the access log.
//! - HTTP/2 and gRPC-shaped unary calls (h2load): direct, graylane, nginx.
//! - Latency at a fixed rate (h2load, open loop): direct, graylane, nginx at 1,000 and
//!   5,000 requests per second.
//! - The caller's address: upstream connections from the calling pod's namespace (the
//!   default, `graylane`) against the node's (`--upstream-source node`), with keep-alive
//!   and with a new connection per request; upstream connections opened per 1,000
//!   requests.
//! - Lane continuity: base traffic (an untagged client to an untagged backend) against lane
//!   traffic (`graylane`: a gray client to a gray backend, so the lane is written into
//!   the trace headers and remembered per trace), and lane traffic without the trace
//!   memory (`--trace-ids none`).
//! - Data lanes (redis-benchmark, `SET` and `GET`, 10 connections): `redis direct` (no
//!   capture), `redis passthrough` (captured, opaque TCP through the proxy:
//!   `--kernel-lanes off`), `redis kernel` (captured, routed by the connect hook: no proxy),
//!   `redis rewrite` (captured, the gray client's keys prefixed by the Redis codec, logged
//!   in as the lane's ACL user); direct, passthrough and kernel again with 16 requests
//!   pipelined per connection (`-P16`).
//! - The same for MySQL (sysbench `oltp_read_write`, 4 threads, against MariaDB in a pod):
//!   `sysbench direct`, `sysbench passthrough`, `sysbench kernel`, `sysbench lane` (the
//!   lane's schema, its store account, every statement read and mapped), with prepared
//!   statements and as text.
//!
//! For each: requests per second, p50/p99, the proxy's CPU per request (user and system),
//! the node's CPU per request (every CPU, kernel and softirq included) and errors (Redis:
//! requests the store did not count as executed successfully; an error reply stops
//! redis-benchmark and fails the case). Every column is the median over rounds (of an even
//! count, the mean of the middle two); a case with errors in any round is named under the
//! table. Round 0 warms up and is not reported; a case whose agent was just restarted (a
//! profile change) warms up again for a second before it is measured.

mod load;
mod peers;
mod procstat;
mod profile;
mod report;

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, bail};
use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged};

use crate::cmd::{build_agent, root};
use load::Load;
use procstat::{ProcStat, node_busy_s};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const POLICY_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const H2_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 12);
const BASE_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 13);
const IPT_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 99);
const REDIS_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 14);
const REDIS_PASS_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 15);
const MYSQL_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 16);
const MYSQL_PASS_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 17);
/// The gray client's connections to `redis` and `mysql` are the lane's (keys under `gray:`,
/// schemas `*_gray`, logged in as the lane's store accounts); `redis-pass` and
/// `mysql-pass` (the same servers) have no data lanes: opaque TCP.
const DATA_LANES: &str = "apiVersion: graylane.io/v1alpha1
kind: TrafficPolicy
metadata: {name: redis}
spec:
  service: redis
  dataLanes:
    lanes: [{lane: gray, keyPrefix: 'gray:', account: {secret: redis-gray}}]
---
apiVersion: v1
kind: Secret
metadata: {name: redis-gray}
stringData: {username: gray, password: gray-secret}
---
apiVersion: graylane.io/v1alpha1
kind: TrafficPolicy
metadata: {name: mysql}
spec:
  service: mysql
  dataLanes:
    lanes: [{lane: gray, schemaSuffix: _gray, account: {secret: mysql-gray}}]
---
apiVersion: v1
kind: Secret
metadata: {name: mysql-gray}
stringData: {username: gray, password: gray-secret}";
/// Production's `sbtest` and the lane's copy; `app` reaches everything, `gray` its schemas.
const MYSQL_INIT: &str = "CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%';\
    CREATE USER 'gray'@'%' IDENTIFIED BY 'gray-secret'; GRANT ALL ON `%\\_gray`.* TO 'gray'@'%';\
    CREATE DATABASE sbtest; CREATE DATABASE sbtest_gray;";
const NGINX_PROXY: &str = "10.200.0.1:8081";
const NGINX_PROXY_H2: &str = "10.200.0.1:8082";
const COLLECTOR: &str = "127.0.0.1:4318";
const POLICY: &str = "apiVersion: graylane.io/v1alpha1
kind: TrafficPolicy
metadata: {name: web-policy}
spec:
  service: web-policy
  rateLimit: {requests: 10000000, interval: 1s, key: sourcePod}
  circuitBreaker: {consecutiveFailures: 5}
  retry: {attempts: 2}";

pub struct BenchArgs {
    /// Run only the cases of these names (comma-separated), or those whose name contains one.
    pub only: Option<String>,
    pub rounds: usize,
    pub duration: Duration,
    pub connections: u32,
    /// A second graylane binary to run every graylane case with, interleaved (A/B).
    pub baseline: Option<std::path::PathBuf>,
    /// Profile the agent during each graylane case's first measured round, into this folder.
    pub profile: Option<std::path::PathBuf>,
}

/// Who serves a case: nobody (direct), the graylane agent under a profile, or nginx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proxy {
    None,
    Graylane(Profile),
    Nginx,
}

/// How the agent runs: its observability switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    /// Metrics, flows, spans exported at 1 % (the default), iptables fallback on.
    Default,
    Plain,
    Metrics,
    MetricsFlows,
    Spans100,
    AccessLog,
    /// The default without the trace memory.
    NoTraceMemory,
    /// The default with upstream connections from the node's address.
    NodeSource,
    /// The default with every captured connection through the proxy (`--kernel-lanes off`):
    /// the proxy path of opaque TCP.
    ProxyOnly,
}

impl Profile {
    fn args(self, scratch: &std::path::Path) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--iptables-fallback".into(),
            "--otlp-endpoint".into(),
            format!("http://{COLLECTOR}/v1/traces"),
        ];
        let record = |r: &str| vec!["--record".to_owned(), r.to_owned()];
        match self {
            Profile::Default => {}
            Profile::Plain => a.extend(record("none")),
            Profile::Metrics => a.extend(record("metrics")),
            Profile::MetricsFlows => a.extend(record("metrics,flows")),
            Profile::Spans100 => a.extend(["--trace-sample-percent".into(), "100".into()]),
            Profile::NoTraceMemory => a.extend(["--trace-ids".into(), "none".into()]),
            Profile::NodeSource => a.extend(["--upstream-source".into(), "node".into()]),
            Profile::ProxyOnly => a.extend(["--kernel-lanes".into(), "off".into()]),
            Profile::AccessLog => {
                a.extend(["--access-log".into(), scratch.join("access.log").display().to_string()])
            }
        }
        a
    }
}

/// One measured case.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    proxy: Proxy,
    /// Served by the `--baseline` binary instead of this tree's.
    baseline: bool,
    load: Load,
    /// The client pod: captured (gray), opted out, or captured and untagged.
    client: Client,
    target: Target,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Gray,
    Plain,
    Base,
}

impl Client {
    fn pod(self) -> &'static str {
        match self {
            Client::Gray => "client",
            Client::Plain => "plain-client",
            Client::Base => "base-client",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Backend,
    BackendH2,
    Service,
    BaseService,
    PolicyService,
    ServiceH2,
    Iptables,
    NginxProxy,
    NginxProxyH2,
    RedisPod,
    RedisLanes,
    RedisPassthrough,
    MysqlPod,
    MysqlLanes,
    MysqlPassthrough,
}

impl Target {
    fn is_store(self) -> bool {
        matches!(
            self,
            Target::RedisPod
                | Target::RedisLanes
                | Target::RedisPassthrough
                | Target::MysqlPod
                | Target::MysqlLanes
                | Target::MysqlPassthrough
        )
    }
}

/// One measured run of a case.
pub struct Sample {
    pub case: &'static str,
    pub load: load::LoadResult,
    /// Proxy CPU seconds (user + system) and its user part; node busy CPU seconds.
    pub cpu_s: f64,
    pub user_s: f64,
    pub node_s: f64,
    pub rss_kib: u64,
    /// Upstream connections the proxy opened (graylane cases).
    pub opened: f64,
}

fn cases(connections: u32) -> Vec<Case> {
    use Profile::*;
    let h1 = Load::Http1 { connections, threads: 2 };
    // Two more load shapes beside nginx: one wrk thread over 32 connections (a client that
    // cannot hide the proxy's latency behind its own parallelism), and 128 connections.
    let one_thread = Load::Http1 { connections: 32, threads: 1 };
    let many = Load::Http1 { connections: 128, threads: 2 };
    let close = Load::Http1Close { connections };
    let h2 = Load::Http2 { clients: 16, streams: 8 };
    let grpc = Load::Grpc { clients: 16, streams: 8 };
    let sysbench = Load::Sysbench { threads: 4, text: false };
    let sysbench_text = Load::Sysbench { threads: 4, text: true };
    let redis = Load::Redis { clients: 10, pipeline: 1 };
    let redis16 = Load::Redis { clients: 10, pipeline: 16 };
    let c = |name, proxy, load, captured: bool, target| Case {
        name,
        proxy,
        baseline: false,
        load,
        client: if captured { Client::Gray } else { Client::Plain },
        target,
    };
    let base = Case {
        name: "continuity: base",
        proxy: Proxy::Graylane(Default),
        baseline: false,
        load: h1,
        client: Client::Base,
        target: Target::BaseService,
    };
    vec![
        c("direct", Proxy::None, h1, false, Target::Backend),
        c("graylane", Proxy::Graylane(Default), h1, true, Target::Service),
        c("nginx", Proxy::Nginx, h1, false, Target::NginxProxy),
        c("iptables", Proxy::Graylane(Default), h1, false, Target::Iptables),
        c("1t32c direct", Proxy::None, one_thread, false, Target::Backend),
        c("1t32c graylane", Proxy::Graylane(Default), one_thread, true, Target::Service),
        c("1t32c nginx", Proxy::Nginx, one_thread, false, Target::NginxProxy),
        c("128c direct", Proxy::None, many, false, Target::Backend),
        c("128c graylane", Proxy::Graylane(Default), many, true, Target::Service),
        c("128c nginx", Proxy::Nginx, many, false, Target::NginxProxy),
        c("policy", Proxy::Graylane(Default), h1, true, Target::PolicyService),
        c("ledger: plain", Proxy::Graylane(Plain), h1, true, Target::Service),
        c("ledger: +metrics", Proxy::Graylane(Metrics), h1, true, Target::Service),
        c("ledger: +flows", Proxy::Graylane(MetricsFlows), h1, true, Target::Service),
        c("ledger: +spans 1%", Proxy::Graylane(Default), h1, true, Target::Service),
        c("ledger: +spans 100%", Proxy::Graylane(Spans100), h1, true, Target::Service),
        c("ledger: +access log", Proxy::Graylane(AccessLog), h1, true, Target::Service),
        c("h2 direct", Proxy::None, h2, false, Target::BackendH2),
        c("h2 graylane", Proxy::Graylane(Default), h2, true, Target::ServiceH2),
        c("h2 nginx", Proxy::Nginx, h2, false, Target::NginxProxyH2),
        c("grpc direct", Proxy::None, grpc, false, Target::BackendH2),
        c("grpc graylane", Proxy::Graylane(Default), grpc, true, Target::ServiceH2),
        c("grpc nginx", Proxy::Nginx, grpc, false, Target::NginxProxyH2),
        c("1k/s direct", Proxy::None, Load::Rate { per_second: 1000 }, false, Target::Backend),
        c("1k/s graylane", Proxy::Graylane(Default), Load::Rate { per_second: 1000 }, true, Target::Service),
        c("1k/s nginx", Proxy::Nginx, Load::Rate { per_second: 1000 }, false, Target::NginxProxy),
        c("5k/s direct", Proxy::None, Load::Rate { per_second: 5000 }, false, Target::Backend),
        c("5k/s graylane", Proxy::Graylane(Default), Load::Rate { per_second: 5000 }, true, Target::Service),
        c("5k/s nginx", Proxy::Nginx, Load::Rate { per_second: 5000 }, false, Target::NginxProxy),
        base,
        c("continuity: gray", Proxy::Graylane(Default), h1, true, Target::Service),
        c("continuity: no memory", Proxy::Graylane(NoTraceMemory), h1, true, Target::Service),
        c("source: node", Proxy::Graylane(NodeSource), h1, true, Target::Service),
        c("close: pod", Proxy::Graylane(Default), close, true, Target::Service),
        c("close: node", Proxy::Graylane(NodeSource), close, true, Target::Service),
        c("redis direct", Proxy::None, redis, false, Target::RedisPod),
        c("redis passthrough", Proxy::Graylane(ProxyOnly), redis, true, Target::RedisPassthrough),
        c("redis kernel", Proxy::Graylane(Default), redis, true, Target::RedisPassthrough),
        c("redis rewrite", Proxy::Graylane(Default), redis, true, Target::RedisLanes),
        c("redis -P16 direct", Proxy::None, redis16, false, Target::RedisPod),
        c("redis -P16 passthrough", Proxy::Graylane(ProxyOnly), redis16, true, Target::RedisPassthrough),
        c("redis -P16 kernel", Proxy::Graylane(Default), redis16, true, Target::RedisPassthrough),
        c("sysbench direct", Proxy::None, sysbench, false, Target::MysqlPod),
        c("sysbench passthrough", Proxy::Graylane(ProxyOnly), sysbench, true, Target::MysqlPassthrough),
        c("sysbench kernel", Proxy::Graylane(Default), sysbench, true, Target::MysqlPassthrough),
        c("sysbench lane", Proxy::Graylane(Default), sysbench, true, Target::MysqlLanes),
        c("sysbench text direct", Proxy::None, sysbench_text, false, Target::MysqlPod),
        c(
            "sysbench text passthrough",
            Proxy::Graylane(ProxyOnly),
            sysbench_text,
            true,
            Target::MysqlPassthrough,
        ),
        c("sysbench text lane", Proxy::Graylane(Default), sysbench_text, true, Target::MysqlLanes),
    ]
}

/// Whether an agent binary has the `--kernel-lanes` flag.
fn knows_kernel_lanes(binary: &std::path::Path) -> bool {
    std::process::Command::new(binary)
        .args(["agent", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--kernel-lanes"))
}

/// Redis and MariaDB pods with their Services and data lanes.
struct Stores {
    redis_ip: Ipv4Addr,
    mysql_ip: Ipv4Addr,
    _mysql: graylane_tests::MariaDb,
}

fn serve_stores(sb: &mut Sandbox) -> anyhow::Result<Stores> {
    let redis_dir = sb.scratch().join("redis");
    std::fs::create_dir_all(&redis_dir)?;
    let redis = sb.add_pod(PodSpec::new("redis").label("app", "redis"))?;
    redis.serve_redis(&redis_dir)?;
    redis.run(
        "redis-cli",
        &[
            "ACL",
            "SETUSER",
            "gray",
            "on",
            ">gray-secret",
            "~gray:*",
            "&gray:*",
            "+@all",
            "-@dangerous",
            "-function",
        ],
    )?;
    sb.add_service(
        ServiceSpec::new("redis", REDIS_VIP).named_port(6379, 6379, "tcp-redis").select("app", "redis"),
    );
    sb.add_service(
        ServiceSpec::new("redis-pass", REDIS_PASS_VIP)
            .named_port(6379, 6379, "tcp-redis")
            .select("app", "redis"),
    );
    let mysql = graylane_tests::MariaDb::start(sb, "mysql", MYSQL_INIT)?;
    // The tables of production and of the lane, written once (sysbench's read-write mix
    // keeps their size).
    for schema in ["sbtest", "sbtest_gray"] {
        let (ok, out, err) = sb.pod("mysql").run(
            "sysbench",
            &[
                "oltp_read_write",
                "--db-driver=mysql",
                "--mysql-host=127.0.0.1",
                "--mysql-user=app",
                "--mysql-password=secret",
                &format!("--mysql-db={schema}"),
                "--tables=2",
                "--table-size=10000",
                "prepare",
            ],
        )?;
        if !ok {
            bail!("sysbench prepare {schema}: {out}{err}");
        }
    }
    sb.add_service(
        ServiceSpec::new("mysql", MYSQL_VIP).named_port(3306, 3306, "mysql").select("app", "mysql"),
    );
    sb.add_service(
        ServiceSpec::new("mysql-pass", MYSQL_PASS_VIP)
            .named_port(3306, 3306, "tcp-mysql")
            .select("app", "mysql"),
    );
    sb.add_document(DATA_LANES);
    let redis_ip = sb.pod("redis").ip;
    let mysql_ip = sb.pod("mysql").ip;
    Ok(Stores { redis_ip, mysql_ip, _mysql: mysql })
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let bin = build_agent(true)?;
    let all = cases(args.connections);
    // `--only a,b`: each a case's name, or a part of the names of the cases it picks.
    let wanted: Vec<&str> =
        args.only.as_deref().map(|o| o.split(',').map(str::trim).collect()).unwrap_or_default();
    let picks = |name: &str| {
        wanted.is_empty()
            || wanted.iter().any(|w| {
                let exact = all.iter().any(|c| c.name == *w);
                if exact { name == *w } else { name.contains(w) }
            })
    };
    let mut chosen: Vec<Case> = all.iter().filter(|c| picks(c.name)).copied().collect();
    if args.baseline.is_some() {
        let twins: Vec<Case> = chosen
            .iter()
            .filter(|c| matches!(c.proxy, Proxy::Graylane(_)))
            .map(|c| Case {
                name: Box::leak(format!("{} [baseline]", c.name).into_boxed_str()),
                baseline: true,
                ..*c
            })
            .collect();
        chosen.extend(twins);
    }
    let Some(p) = privileged("bench") else { bail!("the benchmark needs root: sudo -E cargo xtask bench") };
    let mut sb = Sandbox::new(&p)?;
    sb.add_pod(PodSpec::new("client").tag("gray"))?;
    sb.add_pod(PodSpec::new("plain-client").annotate("graylane.io/redirect", "false"))?;
    sb.add_pod(PodSpec::new("base-client"))?;
    let backend_conf = peers::backend(sb.scratch())?;
    let server = sb.add_pod(PodSpec::new("server").label("app", "web").tag("gray"))?;
    server.spawn("nginx", &["-c", &backend_conf.display().to_string()])?;
    server.wait_listening(8080)?;
    server.wait_listening(8082)?;
    let server_ip = server.ip;
    let base_server = sb.add_pod(PodSpec::new("base-server").label("app", "web-base"))?;
    base_server.spawn("nginx", &["-c", &backend_conf.display().to_string()])?;
    base_server.wait_listening(8080)?;
    sb.add_service(
        ServiceSpec::new("web-base", BASE_VIP).named_port(80, 8080, "http").select("app", "web-base"),
    );
    sb.add_service(ServiceSpec::new("web", VIP).named_port(80, 8080, "http").select("app", "web"));
    sb.add_service(ServiceSpec::new("web-h2", H2_VIP).named_port(80, 8082, "h2c").select("app", "web"));
    sb.add_service(ServiceSpec::new("web-ipt", IPT_VIP).named_port(80, 8080, "http").select("app", "web"));
    sb.add_service(
        ServiceSpec::new("web-policy", POLICY_VIP).named_port(80, 8080, "http").select("app", "web"),
    );
    sb.add_document(POLICY);
    // The stores only when a chosen case uses them (a baseline from before a data-lane
    // field could not read their policy).
    let stores = if chosen.iter().any(|c| c.target.is_store()) { Some(serve_stores(&mut sb)?) } else { None };
    let (redis_ip, mysql_ip) =
        stores.as_ref().map_or((Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED), |s| (s.redis_ip, s.mysql_ip));
    let proxy_conf = peers::reverse_proxy(sb.scratch(), NGINX_PROXY, NGINX_PROXY_H2, server_ip)?;
    let nginx_pid = sb.spawn_node("nginx", &["-c", &proxy_conf.display().to_string()])?;
    let collector_conf = peers::collector(sb.scratch(), COLLECTOR)?;
    sb.spawn_node("nginx", &["-c", &collector_conf.display().to_string()])?;
    // iptables: the plain client's route to IPT_VIP beats its blackhole; the node NATs it.
    sb.pod("plain-client").ip(&[
        "route",
        "add",
        &format!("{IPT_VIP}/32"),
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])?;
    sb.node_exec(
        "iptables",
        &[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
            "-d",
            &IPT_VIP.to_string(),
            "--dport",
            "80",
            "-j",
            "DNAT",
            "--to-destination",
            "10.200.0.1:15001",
        ],
    )?;

    let url = |t: Target| match t {
        Target::Backend => format!("http://{server_ip}:8080/index.html"),
        Target::BackendH2 => format!("http://{server_ip}:8082/index.html"),
        Target::Service => format!("http://{VIP}/index.html"),
        Target::BaseService => format!("http://{BASE_VIP}/index.html"),
        Target::PolicyService => format!("http://{POLICY_VIP}/index.html"),
        Target::ServiceH2 => format!("http://{H2_VIP}/index.html"),
        Target::Iptables => format!("http://{IPT_VIP}/index.html"),
        Target::NginxProxy => format!("http://{NGINX_PROXY}/index.html"),
        Target::NginxProxyH2 => format!("http://{NGINX_PROXY_H2}/index.html"),
        Target::RedisPod => format!("{redis_ip}:6379"),
        Target::RedisLanes => format!("{REDIS_VIP}:6379"),
        Target::RedisPassthrough => format!("{REDIS_PASS_VIP}:6379"),
        Target::MysqlPod => format!("{mysql_ip}:3306"),
        Target::MysqlLanes => format!("{MYSQL_VIP}:3306"),
        Target::MysqlPassthrough => format!("{MYSQL_PASS_VIP}:3306"),
    };
    let mut agent_profile: Option<(Profile, bool)> = None;
    let mut samples: Vec<Sample> = Vec::new();
    for round in 0..=args.rounds {
        // Round 0 warms every path up (pools, caches) and is not reported. Cases run
        // grouped by agent profile (an agent restart between groups).
        let mut ordered = chosen.clone();
        // With a baseline, the two binaries take turns first from round to round.
        ordered.sort_by_key(|c| match c.proxy {
            Proxy::Graylane(p) => (p as u8, c.baseline != (round % 2 == 0)),
            _ => (0, false),
        });
        for case in ordered {
            let mut restarted = false;
            if let Proxy::Graylane(profile) = case.proxy
                && agent_profile != Some((profile, case.baseline))
            {
                if agent_profile.is_some() {
                    sb.kill_agent()?;
                }
                let binary = match (&args.baseline, case.baseline) {
                    (Some(b), true) => b.clone(),
                    _ => bin.clone(),
                };
                let mut args = profile.args(sb.scratch());
                if case.baseline && !knows_kernel_lanes(&binary) {
                    // A build from before kernel lanes: every connection is the proxy's.
                    args.retain(|a| a != "--kernel-lanes" && a != "off");
                }
                let opts = AgentOptions {
                    args,
                    log: Some("warn".into()),
                    binary: Some(binary),
                    ..Default::default()
                };
                sb.start_agent(&opts)?;
                agent_profile = Some((profile, case.baseline));
                std::thread::sleep(Duration::from_millis(300));
                restarted = true;
            }
            let proxy_pid = match case.proxy {
                Proxy::None => None,
                Proxy::Graylane(_) => sb.agent()?.pid(),
                Proxy::Nginx => Some(nginx_pid),
            };
            let pod = sb.pod(case.client.pod());
            let duration = if round == 0 { Duration::from_secs(1) } else { args.duration };
            let mut target = url(case.target);
            if matches!(case.load, Load::Grpc { .. }) {
                target = target.replace("/index.html", "/echo.Echo/Unary");
            }
            let store = matches!(case.load, Load::Redis { .. }).then(|| sb.pod("redis"));
            if restarted && round > 0 {
                // A fresh agent warms up as round 0 did before it is measured.
                load::run(pod, store, &target, case.load, Duration::from_secs(1), sb.scratch())
                    .with_context(|| format!("{}: warm-up after the agent's restart", case.name))?;
            }
            let opened = |sb: &Sandbox| match case.proxy {
                // A baseline from before empty families were declared has none until
                // the first connection.
                Proxy::Graylane(_) => sb
                    .metrics()
                    .count("graylane_upstream_connections_total", &[("result", "opened")])
                    .or_else(|e| if case.baseline { Ok(0.0) } else { Err(e) }),
                _ => Ok(0.0),
            };
            let opened_before = opened(&sb)?;
            let before = proxy_pid.map(ProcStat::read).transpose()?;
            let node_before = node_busy_s()?;
            let profiler = match (&args.profile, proxy_pid, case.proxy) {
                (Some(dir), Some(pid), Proxy::Graylane(_)) if round == 1 => {
                    Some(profile::start(dir, case.name, pid)?)
                }
                _ => None,
            };
            let result = load::run(pod, store, &target, case.load, duration, sb.scratch());
            if let Some(p) = profiler {
                p.finish(result.as_ref().map_or(0, |r| r.requests))?;
            }
            let node_s = node_busy_s()? - node_before;
            let after = proxy_pid.map(ProcStat::read).transpose()?;
            let opened = opened(&sb)? - opened_before;
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    let log = sb.agent_log();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    bail!("{}: {e}\nagent log (newest first):\n{}", case.name, tail.join("\n"));
                }
            };
            if round == 0 {
                continue;
            }
            let (cpu_s, user_s, rss_kib) = match (before, after) {
                (Some(b), Some(a)) => (a.cpu_s - b.cpu_s, a.user_s - b.user_s, a.rss_kib),
                _ => (0.0, 0.0, 0),
            };
            let per = |s: f64| s * 1e6 / result.requests.max(1) as f64;
            eprintln!(
                "bench: round {round} {:<22} {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}  proxy CPU/req {:.1} us (user {:.1})  node CPU/req {:.1} us",
                case.name,
                result.rps,
                result.p50_ms,
                result.p99_ms,
                result.errors,
                per(cpu_s),
                per(user_s),
                per(node_s),
            );
            samples.push(Sample { case: case.name, load: result, cpu_s, user_s, node_s, rss_kib, opened });
        }
    }
    if args.baseline.is_some() {
        eprint!("{}", report::ab(&samples));
    }
    if args.only.is_some() {
        // Some cases only: their medians, no ratios (their peers may not have run).
        print!("{}", report::table(&samples, args));
        return Ok(());
    }
    let out = report::render(&samples, args);
    print!("{out}");
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("report.txt");
    std::fs::write(&path, &out).with_context(|| format!("write {}", path.display()))?;
    eprintln!("bench: report written to {}", path.display());
    Ok(())
}
