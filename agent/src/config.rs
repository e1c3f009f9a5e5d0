//! Command line → validated, typed configuration, split by subsystem.

mod budget;

pub use budget::{Budget, BudgetError};

use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::Args;
use ipnetwork::IpNetwork;

use crate::{
    datapath::{PinPaths, ProxyTarget},
    inventory::CaptureConfig,
    proxy::{EdgeLimits, ProxyConfig},
};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Standalone inventory: a Kubernetes-style YAML file or a folder of them.
    #[arg(long, env = "GRAYLANE_INVENTORY", conflicts_with = "kube")]
    pub inventory: Option<PathBuf>,
    /// Read the inventory from Kubernetes (in-cluster config or KUBECONFIG).
    #[arg(long)]
    pub kube: bool,
    /// This node's name: pods with this `spec.nodeName` are local. With a standalone
    /// inventory, pods whose `spec.nodeName` names another node are routed to but not
    /// captured here (their `graylane.io/cgroup` is that node's).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Kubernetes source: take a pod's cgroup from its `graylane.io/cgroup` annotation (for
    /// clusters without kubelet's cgroup layout). Off by default: a pod could name another
    /// pod's cgroup and take its identity.
    #[arg(long)]
    pub cgroup_annotation: bool,
    /// Who sees an Istio VirtualService or DestinationRule that has no `exportTo`: `all`
    /// namespaces (Istio's default) or its own `namespace` only (recommended for
    /// multi-tenant clusters: a rule written in one namespace then never steers another's
    /// callers).
    #[arg(long, value_enum, default_value_t = crate::inventory::Export::All)]
    pub rules_default_export: crate::inventory::Export,
    /// Route connections that need nothing from userspace (opaque TCP, no data-lane codec,
    /// no resilience policy, no affinity) in the kernel at connect(): `on` or `off` (every
    /// captured connection goes through the proxy).
    #[arg(long, value_enum, default_value_t = KernelLanes::On)]
    pub kernel_lanes: KernelLanes,
    /// Node address pods' captured connections are sent to; the proxy listens there. An
    /// IP alone means port 15001 (`10.0.0.5` = `10.0.0.5:15001`).
    #[arg(long, env = "GRAYLANE_PROXY_ADDR", value_parser = proxy_addr)]
    pub proxy_addr: Option<SocketAddr>,
    /// IPv6 proxy address, to capture native IPv6 destinations too (an IP alone means
    /// port 15001).
    #[arg(long, env = "GRAYLANE_PROXY_ADDR6", value_parser = proxy_addr)]
    pub proxy_addr6: Option<SocketAddr>,
    /// Service ranges to capture besides what the inventory says (standalone: every
    /// Service cluster IP; Kubernetes: the cluster's ServiceCIDR objects). Pod IPs from the
    /// inventory are always captured.
    #[arg(long = "service-cidr")]
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
    /// Which address upstream connections leave from: `pod` (the calling pod's own: the
    /// proxy opens them in the pod's network namespace, so NetworkPolicy, server logs and
    /// per-client limits see the real caller) or `node` (the node's address).
    #[arg(long, value_enum, default_value_t = UpstreamSource::Pod)]
    pub upstream_source: UpstreamSource,
    /// Admin API address (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin_addr: SocketAddr,
    /// Prometheus metrics address (`/metrics`): loopback unless given (the DaemonSet binds
    /// the node IP, where Prometheus scrapes).
    #[arg(long, default_value = "127.0.0.1:15090", env = "GRAYLANE_METRICS_ADDR")]
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
    /// Which ids the trace memory remembers a lane by: any of `w3c` (traceparent), `b3`,
    /// `jaeger` (uber-trace-id), `sw8` (SkyWalking), `request-id` (x-request-id),
    /// comma-separated, or `none` (no trace memory, no lane hints).
    #[arg(long, default_value = "w3c,b3,jaeger,sw8,request-id", value_parser = crate::proxy::continuity::TraceIds::parse)]
    pub trace_ids: crate::proxy::continuity::TraceIds,
    /// (pod, trace) → lane entries the trace memory holds at most.
    #[arg(long, default_value_t = 100_000)]
    pub trace_memory_entries: usize,
    /// How long the trace memory keeps an entry (milliseconds; at least half of it).
    #[arg(long, default_value_t = 30_000)]
    pub trace_memory_ttl_ms: u64,
    /// The cluster's shared key for lane hints between agents (a file, e.g. a mounted
    /// Secret, of at least 16 bytes); without it this node neither sends nor takes hints.
    /// Hints are taken on the proxy address, UDP port 15011.
    #[arg(long, env = "GRAYLANE_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// What each request records: any of `metrics`, `flows`, `spans` (comma-separated), or
    /// `none`. Less costs less CPU per request (the bench's cost ledger measures each).
    #[arg(long, default_value = "metrics,flows,spans", value_parser = crate::telemetry::Recording::parse)]
    pub record: crate::telemetry::Recording,
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
    /// Downstream connections at once per source pod (more are refused at once); default a
    /// quarter of --max-conns.
    #[arg(long)]
    pub max_conns_per_pod: Option<usize>,
    /// Downstream connections at once in total; default what the open-files limit allows, at
    /// most 100,000 (at the cap the proxy steps out of capture and connects go direct until
    /// it has room).
    #[arg(long)]
    pub max_conns: Option<usize>,
    /// Bytes data-lane connections may hold of messages still arriving (commands,
    /// statements, replies not yet whole), over the node; beyond it such a connection is
    /// refused and counted.
    #[arg(long, default_value_t = 256 << 20)]
    pub data_buffer_bytes: usize,
    /// The same, over one source pod's connections (at most --data-buffer-bytes).
    #[arg(long, default_value_t = 64 << 20)]
    pub data_buffer_bytes_per_pod: usize,
    /// On SIGTERM: how long in-flight requests and connections may take to finish.
    #[arg(long, default_value_t = 20_000)]
    pub drain_timeout_ms: u64,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Detach every program and remove every pin, then exit (refused while an agent owns
    /// the pins).
    #[arg(long)]
    pub uninstall: bool,
    /// If another agent owns the pin dir, ask it to hand over (it stops accepting and
    /// finishes its in-flight work) and take over without a gap in capture.
    #[arg(long)]
    pub takeover: bool,
    /// Validate the configuration and the inventory, print the effective config, and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// `ip:port`, `[ip6]:port`, or an IP alone (the proxy port, 15001).
fn proxy_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip = s.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(s);
    ip.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, graylane_common::PROXY_PORT)).map_err(|_| {
        format!("{s:?}: give the node's IP (port {} is assumed) or IP:port", graylane_common::PROXY_PORT)
    })
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

/// Where upstream connections leave from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamSource {
    /// The calling pod's address (its network namespace).
    Pod,
    /// The node's address.
    Node,
}

/// Whether the connect hooks route lanes themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelLanes {
    On,
    Off,
}

/// The agent's validated configuration.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AgentConfig {
    pub source: InventorySource,
    pub node_name: Option<String>,
    /// Who sees an Istio rule without `exportTo`.
    pub rules_default_export: crate::inventory::Export,
    pub kernel_lanes: KernelLanes,
    pub cgroup_annotation: bool,
    pub cgroup_root: Option<PathBuf>,
    #[serde(serialize_with = "display")]
    pub pins: PinPaths,
    pub proxy_addr: SocketAddr,
    pub proxy_addr6: Option<SocketAddr>,
    pub service_cidrs: Vec<IpNetwork>,
    pub excluded_ports: BTreeSet<u16>,
    pub bypass_mark: u32,
    pub upstream_source: UpstreamSource,
    pub admin_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    #[serde(serialize_with = "redacted")]
    pub redis: Option<String>,
    pub redis_timeout: Duration,
    #[serde(serialize_with = "uri")]
    pub otlp_endpoint: Option<http::Uri>,
    pub trace_sample_percent: f64,
    pub access_log: Option<PathBuf>,
    pub record: crate::telemetry::Recording,
    pub trace_ids: crate::proxy::continuity::TraceIds,
    pub trace_memory_entries: usize,
    pub trace_memory_ttl: Duration,
    pub peer_key_file: Option<PathBuf>,
    #[serde(skip)]
    pub peer_key: Option<Arc<[u8]>>,
    pub connect_timeout: Duration,
    pub detect_timeout: Duration,
    pub iptables_fallback: bool,
    pub max_connections: u32,
    pub limits: EdgeLimits,
    pub drain_timeout: Duration,
    pub takeover: bool,
    /// What the open-files limit allows (caps above are already within it).
    pub budget: Budget,
}

/// The hint key: the file's bytes, trailing whitespace trimmed (a Secret written by hand
/// often ends in a newline), at least 16 of them.
fn read_peer_key(path: &std::path::Path) -> Result<Arc<[u8]>, ConfigError> {
    let fail = |cause: String| ConfigError::PeerKey { path: path.into(), cause };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let key = bytes.trim_ascii_end();
    if key.len() < 16 {
        return Err(fail(format!("{} bytes; a key has at least 16", key.len())));
    }
    Ok(Arc::from(key))
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
    #[error(
        "--proxy-addr <node IP> is required: the address pods' connections are redirected to (port 15001 unless given)"
    )]
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
    #[error("--peer-key-file {path}: {cause}")]
    PeerKey { path: PathBuf, cause: String },
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

impl AgentConfig {
    /// `open_files`: the process' open-files limit (after raising it), which the connection
    /// caps must fit in.
    pub fn from_args(a: &AgentArgs, open_files: u64) -> Result<Self, ConfigError> {
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
        let peer_key = a.peer_key_file.as_deref().map(read_peer_key).transpose()?;
        let budget =
            Budget::plan(open_files, a.max_conns.map(|n| n.max(1)), a.max_conns_per_pod.map(|n| n.max(1)))?;
        Ok(Self {
            max_connections: a.max_connections,
            source,
            node_name: a.node_name.clone(),
            rules_default_export: a.rules_default_export,
            kernel_lanes: a.kernel_lanes,
            cgroup_annotation: a.cgroup_annotation,
            cgroup_root: a.cgroup_root.clone(),
            pins: PinPaths::new(&a.pin_dir),
            proxy_addr,
            proxy_addr6: a.proxy_addr6,
            service_cidrs: a.service_cidrs.clone(),
            excluded_ports: a.exclude_ports.iter().copied().collect(),
            bypass_mark: a.bypass_mark,
            upstream_source: a.upstream_source,
            admin_addr: a.admin_addr,
            metrics_addr: a.metrics_addr,
            redis: a.redis.clone(),
            redis_timeout: Duration::from_millis(a.redis_timeout_ms.max(1)),
            otlp_endpoint: a.otlp_endpoint.clone(),
            trace_sample_percent: a.trace_sample_percent,
            access_log: a.access_log.clone(),
            record: a.record,
            trace_ids: a.trace_ids,
            trace_memory_entries: a.trace_memory_entries.max(16),
            trace_memory_ttl: Duration::from_millis(a.trace_memory_ttl_ms.max(100)),
            peer_key_file: a.peer_key_file.clone(),
            peer_key,
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
                max_per_pod: budget.max_conns_per_pod,
                max_total: budget.max_conns,
                data_buffer_per_pod: a.data_buffer_bytes_per_pod.min(a.data_buffer_bytes),
                data_buffer_total: a.data_buffer_bytes,
            },
            takeover: a.takeover,
            budget,
        })
    }

    /// The proxy's listen addresses: IPv4, then IPv6 if given (their sockmap slots, in order).
    pub fn proxy_addrs(&self) -> Vec<SocketAddr> {
        [Some(self.proxy_addr), self.proxy_addr6].into_iter().flatten().collect()
    }

    /// Addresses no pod may claim: this node's interfaces and the proxy's.
    pub fn node_facts(&self) -> crate::inventory::NodeFacts {
        let proxy: Vec<std::net::IpAddr> = self.proxy_addrs().iter().map(SocketAddr::ip).collect();
        crate::inventory::NodeFacts::read(&proxy)
            .named(self.node_name.clone())
            .exporting(self.rules_default_export)
    }

    pub fn capture(&self) -> CaptureConfig {
        CaptureConfig {
            service_cidrs: self.service_cidrs.clone(),
            cluster_ips: match self.source {
                InventorySource::Files(_) => crate::inventory::ClusterIps::Every,
                InventorySource::Kube => crate::inventory::ClusterIps::Ranges,
            },
            excluded_ports: self.excluded_ports.clone(),
            proxy: ProxyTarget { v4: self.proxy_addr, v6: self.proxy_addr6, bypass_mark: self.bypass_mark },
            records_max: self.max_connections,
            kernel_lanes: self.kernel_lanes == KernelLanes::On,
        }
    }

    pub fn proxy(&self) -> ProxyConfig {
        ProxyConfig {
            bypass_mark: self.bypass_mark,
            connect_timeout: self.connect_timeout,
            detect_timeout: self.detect_timeout,
            iptables_fallback: self.iptables_fallback,
            limits: self.limits.clone(),
            upstream_idle: self.budget.upstream_idle,
            upstream_idle_timeout: Duration::from_secs(30),
            continuity: crate::proxy::continuity::ContinuityConfig {
                ids: self.trace_ids,
                entries: self.trace_memory_entries,
                ttl: self.trace_memory_ttl,
                peer_key: self.peer_key.clone(),
                bypass_mark: self.bypass_mark,
            },
        }
    }

    /// Where this node takes lane hints (the proxy's address, port 15011), if it does.
    pub fn hint_addr(&self) -> Option<SocketAddr> {
        self.peer_key
            .as_ref()
            .map(|_| SocketAddr::new(self.proxy_addr.ip(), crate::proxy::continuity::HINT_PORT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_proxy_address_means_the_proxy_port() {
        assert_eq!(proxy_addr("10.0.0.5"), Ok("10.0.0.5:15001".parse().expect("addr")));
        assert_eq!(proxy_addr("10.0.0.5:16001"), Ok("10.0.0.5:16001".parse().expect("addr")));
        assert_eq!(proxy_addr("fd00::1"), Ok("[fd00::1]:15001".parse().expect("addr")));
        assert_eq!(proxy_addr("[fd00::1]"), Ok("[fd00::1]:15001".parse().expect("addr")));
        assert!(proxy_addr("node-1").expect_err("a name").contains("give the node's IP"));
    }
}
