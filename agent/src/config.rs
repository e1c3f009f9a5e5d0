//! Command line → validated, typed configuration, split by subsystem.

use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use ipnetwork::IpNetwork;

use crate::{
    datapath::{PinPaths, ProxyTarget},
    inventory::CaptureConfig,
    proxy::{EdgeLimits, ProxyConfig},
};

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
    Agent(Box<AgentArgs>),
    /// Flows through this node's proxy: who called which service, in which lane, and why
    /// the request went where it did.
    Flows(crate::cli::FlowsArgs),
    /// The kernel's pod → tag/tenant maps.
    Tags(crate::cli::Common),
    /// Effective routing per service: subsets, endpoints, routes, fallback.
    Routes(crate::cli::RoutesArgs),
    /// Agent version, attach state, table sizes, last inventory sync.
    Status(crate::cli::Common),
    /// Shell completions: `graylane completions bash > /etc/bash_completion.d/graylane`.
    Completions { shell: clap_complete::Shell },
    /// Print the graylane CustomResourceDefinitions (or write them into a folder).
    Crds {
        /// Write one file per CRD here instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Standalone inventory: a Kubernetes-style YAML file or a folder of them.
    #[arg(long, env = "GRAYLANE_INVENTORY", conflicts_with = "kube")]
    pub inventory: Option<PathBuf>,
    /// Read the inventory from Kubernetes (in-cluster config or KUBECONFIG).
    #[arg(long)]
    pub kube: bool,
    /// This node's name: pods with this `spec.nodeName` are local (Kubernetes source).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Address pods' captured connections are sent to; the proxy listens here.
    #[arg(long, env = "GRAYLANE_PROXY_ADDR")]
    pub proxy_addr: Option<SocketAddr>,
    /// IPv6 proxy address, to capture native IPv6 destinations too.
    #[arg(long, env = "GRAYLANE_PROXY_ADDR6")]
    pub proxy_addr6: Option<SocketAddr>,
    /// Service CIDRs to capture (pod IPs from the inventory are always captured).
    #[arg(long = "service-cidr", default_value = "10.96.0.0/12")]
    pub service_cidrs: Vec<IpNetwork>,
    /// Destination ports never captured.
    #[arg(long = "exclude-port")]
    pub exclude_ports: Vec<u16>,
    /// cgroup v2 directory above every pod cgroup (default: the detected cgroup v2 mount).
    #[arg(long, env = "GRAYLANE_CGROUP_ROOT")]
    pub cgroup_root: Option<PathBuf>,
    /// Where kernel state is pinned.
    #[arg(long, default_value = "/sys/fs/bpf/graylane", env = "GRAYLANE_PIN_DIR")]
    pub pin_dir: PathBuf,
    /// SO_MARK on the proxy's upstream sockets; marked sockets are never captured.
    #[arg(long, default_value = "0x6c61", value_parser = parse_mark)]
    pub bypass_mark: u32,
    /// Admin API address (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin_addr: SocketAddr,
    /// Prometheus metrics address (`/metrics`).
    #[arg(long, default_value = "0.0.0.0:15090", env = "GRAYLANE_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Redis for `global` rate limits shared by every node (`redis://host:6379`,
    /// `redis+unix:///path`); without it, global limits are enforced per node.
    #[arg(long, env = "GRAYLANE_REDIS")]
    pub redis: Option<String>,
    /// How long a request waits for Redis before its node's local limiter decides.
    #[arg(long, default_value_t = 50)]
    pub redis_timeout_ms: u64,
    /// OTLP/HTTP collector for spans (`http://collector:4318/v1/traces`); without it no
    /// spans are exported (trace context still propagates).
    #[arg(long, env = "GRAYLANE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<http::Uri>,
    /// Percent of new traces recorded (a caller's sampling decision is always kept).
    #[arg(long, default_value_t = 1.0)]
    pub trace_sample_percent: f64,
    /// Write one JSON line per request, with its routing explanation, to this file (`-`:
    /// standard output).
    #[arg(long)]
    pub access_log: Option<PathBuf>,
    /// Capacity of the kernel's connection record table: beyond it connects are not
    /// captured (fail-open, or refused for fail-closed pods).
    #[arg(long, default_value_t = graylane_common::max_entries::RECORDS)]
    pub max_connections: u32,
    /// Upstream connect timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub connect_timeout_ms: u64,
    /// How long to wait for a client's first bytes before treating the connection as
    /// opaque TCP (server-speaks-first protocols); at most 100.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub detect_timeout_ms: u64,
    /// Also accept connections NATed to the proxy by iptables (no eBPF record): original
    /// destination from conntrack, caller by source IP (not attested). For comparisons and
    /// nodes without eBPF; off by default.
    #[arg(long)]
    pub iptables_fallback: bool,
    /// A request's headers must arrive within this many milliseconds (slowloris; also
    /// closes idle keep-alive connections).
    #[arg(long, default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Request headers at most (more: 431).
    #[arg(long, default_value_t = 100)]
    pub max_request_headers: usize,
    /// Bytes of request headers at most (more: 431).
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,
    /// A request body that sends nothing for this many milliseconds is aborted.
    #[arg(long, default_value_t = 60_000)]
    pub body_idle_timeout_ms: u64,
    /// HTTP/2 streams open at once per downstream connection.
    #[arg(long, default_value_t = 1000)]
    pub h2_max_streams: u32,
    /// Downstream connections at once per source pod (more are refused at once).
    #[arg(long, default_value_t = 10_000)]
    pub max_conns_per_pod: usize,
    /// Downstream connections at once in total.
    #[arg(long, default_value_t = 100_000)]
    pub max_conns: usize,
    /// On SIGTERM: how long in-flight requests and connections may take to finish.
    #[arg(long, default_value_t = 20_000)]
    pub drain_timeout_ms: u64,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Detach every program and remove every pin, then exit.
    #[arg(long)]
    pub uninstall: bool,
    /// Validate the configuration and the inventory, print the effective config, and exit.
    #[arg(long)]
    pub check_config: bool,
}

fn parse_mark(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{s:?}: {e}"))
}

/// Where the inventory comes from.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InventorySource {
    Files(PathBuf),
    Kube,
}

impl std::fmt::Display for InventorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InventorySource::Files(p) => write!(f, "{}", p.display()),
            InventorySource::Kube => f.write_str("kubernetes"),
        }
    }
}

/// The agent's validated configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AgentConfig {
    pub source: InventorySource,
    pub node_name: Option<String>,
    pub cgroup_root: Option<PathBuf>,
    #[serde(serialize_with = "display")]
    pub pins: PinPaths,
    pub proxy_addr: SocketAddr,
    pub proxy_addr6: Option<SocketAddr>,
    pub service_cidrs: Vec<IpNetwork>,
    pub excluded_ports: BTreeSet<u16>,
    pub bypass_mark: u32,
    pub admin_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    #[serde(serialize_with = "redacted")]
    pub redis: Option<String>,
    pub redis_timeout: Duration,
    #[serde(serialize_with = "uri")]
    pub otlp_endpoint: Option<http::Uri>,
    pub trace_sample_percent: f64,
    pub access_log: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub detect_timeout: Duration,
    pub iptables_fallback: bool,
    pub max_connections: u32,
    pub limits: EdgeLimits,
    pub drain_timeout: Duration,
}

fn uri<S: serde::Serializer>(u: &Option<http::Uri>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_str(&u.to_string()),
        None => s.serialize_none(),
    }
}

/// A URL without its password.
fn redacted<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => match (u.split_once("://"), u.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => s.serialize_str(&format!("{scheme}://***@{host}")),
            _ => s.serialize_str(u),
        },
        None => s.serialize_none(),
    }
}

fn display<S: serde::Serializer>(p: &PinPaths, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.dir.display().to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("give an inventory: --inventory <file|dir> (standalone) or --kube")]
    NoInventory,
    #[error("--proxy-addr <ip:port> is required: the address pods' connections are redirected to")]
    NoProxyAddr,
    #[error(
        "--proxy-addr {0} must be IPv4 and not unspecified (0.0.0.0): the kernel rewrites destinations to it"
    )]
    BadProxyAddr(SocketAddr),
    #[error("--proxy-addr6 {0} must be a specific IPv6 address")]
    BadProxyAddr6(SocketAddr),
    #[error("--max-connections must be at least 1")]
    NoConnections,
    #[error("--trace-sample-percent must be 0-100")]
    BadSamplePercent,
    #[error("--otlp-endpoint {0} must be http://host:port/path (OTLP/HTTP)")]
    BadOtlpEndpoint(http::Uri),
}

impl AgentConfig {
    pub fn from_args(a: &AgentArgs) -> Result<Self, ConfigError> {
        let source = match (&a.inventory, a.kube) {
            (Some(path), _) => InventorySource::Files(path.clone()),
            (None, true) => InventorySource::Kube,
            (None, false) => return Err(ConfigError::NoInventory),
        };
        let proxy_addr = a.proxy_addr.ok_or(ConfigError::NoProxyAddr)?;
        if !proxy_addr.is_ipv4() || proxy_addr.ip().is_unspecified() {
            return Err(ConfigError::BadProxyAddr(proxy_addr));
        }
        if let Some(v6) = a.proxy_addr6
            && (!v6.is_ipv6() || v6.ip().is_unspecified())
        {
            return Err(ConfigError::BadProxyAddr6(v6));
        }
        if a.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        if !(0.0..=100.0).contains(&a.trace_sample_percent) {
            return Err(ConfigError::BadSamplePercent);
        }
        if let Some(u) = &a.otlp_endpoint
            && (u.scheme_str() != Some("http") || u.authority().is_none())
        {
            return Err(ConfigError::BadOtlpEndpoint(u.clone()));
        }
        Ok(Self {
            max_connections: a.max_connections,
            source,
            node_name: a.node_name.clone(),
            cgroup_root: a.cgroup_root.clone(),
            pins: PinPaths::new(&a.pin_dir),
            proxy_addr,
            proxy_addr6: a.proxy_addr6,
            service_cidrs: a.service_cidrs.clone(),
            excluded_ports: a.exclude_ports.iter().copied().collect(),
            bypass_mark: a.bypass_mark,
            admin_addr: a.admin_addr,
            metrics_addr: a.metrics_addr,
            redis: a.redis.clone(),
            redis_timeout: Duration::from_millis(a.redis_timeout_ms.max(1)),
            otlp_endpoint: a.otlp_endpoint.clone(),
            trace_sample_percent: a.trace_sample_percent,
            access_log: a.access_log.clone(),
            connect_timeout: Duration::from_millis(a.connect_timeout_ms),
            detect_timeout: Duration::from_millis(a.detect_timeout_ms),
            iptables_fallback: a.iptables_fallback,
            drain_timeout: Duration::from_millis(a.drain_timeout_ms),
            limits: EdgeLimits {
                header_read_timeout: Duration::from_millis(a.header_read_timeout_ms.max(1)),
                max_headers: a.max_request_headers.max(1),
                max_header_bytes: a.max_header_bytes.max(1024),
                body_idle_timeout: Duration::from_millis(a.body_idle_timeout_ms.max(1)),
                h2_max_streams: a.h2_max_streams.max(1),
                h2_max_pending_resets: 20,
                h2_max_error_resets: 1024,
                max_per_pod: a.max_conns_per_pod.max(1),
                max_total: a.max_conns.max(1),
            },
        })
    }

    pub fn capture(&self) -> CaptureConfig {
        CaptureConfig {
            service_cidrs: self.service_cidrs.clone(),
            excluded_ports: self.excluded_ports.clone(),
            proxy: ProxyTarget { v4: self.proxy_addr, v6: self.proxy_addr6, bypass_mark: self.bypass_mark },
            records_max: self.max_connections,
        }
    }

    pub fn proxy(&self) -> ProxyConfig {
        ProxyConfig {
            bypass_mark: self.bypass_mark,
            connect_timeout: self.connect_timeout,
            detect_timeout: self.detect_timeout,
            iptables_fallback: self.iptables_fallback,
            limits: self.limits.clone(),
        }
    }
}
