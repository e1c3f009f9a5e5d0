//! `graylane ui`: the lane map. Without `--prometheus`, the node agent's own page (its flows
//! and routes; reach a cluster node's with `kubectl port-forward`). With it, the cluster's
//! map from every agent's metrics, served here on `--listen` (loopback, 15020): the same
//! page, whose `/map` comes from Prometheus (as Kiali's graph comes from Istio's metrics).

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

use super::{Admin, Common};
use crate::admin::map::{LaneMap, MapData, MapEdge, MapNode, MapService, node_id};

#[derive(Debug, Args)]
pub struct UiArgs {
    #[command(flatten)]
    pub common: Common,
    /// Build the cluster-wide map from this Prometheus (`http://host:port`), which scrapes
    /// every agent's `:15090/metrics`.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Where `--prometheus` mode serves the page (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:15020")]
    pub listen: SocketAddr,
    /// The traffic counted: this far back (a Prometheus duration).
    #[arg(long, default_value = "10m")]
    pub window: String,
    /// Print the address only; do not start a browser.
    #[arg(long)]
    pub no_open: bool,
}

pub fn run(a: &UiArgs) -> anyhow::Result<()> {
    let Some(prometheus) = &a.prometheus else {
        let url = format!("http://{}/ui", a.common.admin);
        // Fail early and clearly when no agent answers there.
        a.common.client().json("/status")?;
        return announce(&url, a.no_open);
    };
    let prom = Prometheus::new(prometheus)?;
    let listener = TcpListener::bind(a.listen).with_context(|| format!("listen on {}", a.listen))?;
    announce(&format!("http://{}/ui", a.listen), a.no_open)?;
    for stream in listener.incoming().flatten() {
        let (prom, window) = (prom.clone(), a.window.clone());
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &prom, &window) {
                eprintln!("graylane ui: {e:#}");
            }
        });
    }
    Ok(())
}

fn announce(url: &str, no_open: bool) -> anyhow::Result<()> {
    println!("lane map: {url}");
    if !no_open {
        let _ = std::process::Command::new("xdg-open")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    Ok(())
}

/// One GET: the page's assets or `/map`; anything else 404. Read-only.
fn serve(stream: TcpStream, prom: &Prometheus, window: &str) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let (status, content_type, body) = match (method, path) {
        ("GET", "/map") => match map(prom, window) {
            Ok(m) => ("200 OK", "application/json", serde_json::to_vec(&m)?),
            Err(e) => ("502 Bad Gateway", "text/plain", format!("{e:#}\n").into_bytes()),
        },
        ("GET", p) => match crate::admin::ui::asset(p) {
            Some((t, b)) => ("200 OK", t, b.as_bytes().to_vec()),
            None => ("404 Not Found", "text/plain", b"the lane map: /ui\n".to_vec()),
        },
        _ => ("405 Method Not Allowed", "text/plain", b"GET only\n".to_vec()),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncontent-security-policy: {}\r\nx-content-type-options: nosniff\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len(),
        crate::admin::ui::CONTENT_SECURITY_POLICY
    )?;
    out.write_all(&body)?;
    Ok(())
}

/// A Prometheus HTTP API.
#[derive(Clone)]
struct Prometheus {
    base: String,
    prefix: String,
}

impl Prometheus {
    fn new(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--prometheus {url}: an http:// address (port-forward a cluster's Prometheus)")
        };
        let (host, prefix) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        let host = if host.contains(':') { host.to_owned() } else { format!("{host}:80") };
        Ok(Self { base: host, prefix: format!("/{}", prefix.trim_end_matches('/')).replace("//", "/") })
    }

    /// An instant query: each series' labels and value.
    fn query(&self, promql: &str) -> anyhow::Result<Vec<(BTreeMap<String, String>, f64)>> {
        let path =
            format!("{}/api/v1/query?query={}", self.prefix.trim_end_matches('/'), super::encode(promql));
        let v: Value =
            Admin::new(&self.base).json(&path).with_context(|| format!("Prometheus at {}", self.base))?;
        if v["status"] != "success" {
            bail!("Prometheus: {}", v["error"].as_str().unwrap_or("query failed"));
        }
        Ok(v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect();
                let value = s["value"][1].as_str().and_then(|x| x.parse().ok()).unwrap_or(0.0);
                (labels, value)
            })
            .collect())
    }
}

/// What the map needs from Prometheus, one query per family.
pub struct Series {
    pub workloads: Vec<(BTreeMap<String, String>, f64)>,
    pub data_lanes: Vec<(BTreeMap<String, String>, f64)>,
    pub requests: Vec<(BTreeMap<String, String>, f64)>,
    pub rates: Vec<(BTreeMap<String, String>, f64)>,
    pub escapes: Vec<(BTreeMap<String, String>, f64)>,
    pub connections: Vec<(BTreeMap<String, String>, f64)>,
    pub commands: Vec<(BTreeMap<String, String>, f64)>,
}

fn map(prom: &Prometheus, window: &str) -> anyhow::Result<LaneMap> {
    let by = "source_workload, source_tag, destination_service, destination_subset";
    let series = Series {
        workloads: prom.query("max by (workload, service, subset, tag, tenant) (graylane_workload_info)")?,
        data_lanes: prom.query("max by (destination_service, lane, protocol, mapping) (graylane_data_lane_info)")?,
        requests: prom.query(&format!("sum by ({by}) (increase(graylane_requests_total[{window}]))"))?,
        rates: prom.query(&format!("sum by ({by}) (rate(graylane_requests_total[1m]))"))?,
        escapes: prom.query(&format!("sum by ({by}, reason) (increase(graylane_lane_escapes_total[{window}]))"))?,
        connections: prom.query(&format!(
            "sum by (source_workload, destination_service, result) (increase(graylane_tcp_connections_total[{window}]))"
        ))?,
        commands: prom.query(&format!(
            "sum by (destination_service, lane, result) (increase(graylane_data_commands_total[{window}]))"
        ))?,
    };
    Ok(build(&series, &format!("prometheus {}{} (last {window})", prom.base, prom.prefix)))
}

/// The map from the metric families: versions from `graylane_workload_info`, edges from
/// request, escape and connection counts, data mappings from `graylane_data_lane_info`.
pub fn build(s: &Series, source: &str) -> LaneMap {
    let mut b = Builder::default();
    let stores: BTreeSet<String> =
        s.data_lanes.iter().filter_map(|(l, _)| label(l, "destination_service")).collect();
    for (l, _) in &s.workloads {
        b.version(l, &stores);
    }
    for (l, v) in &s.requests {
        let id = b.edge(l, false);
        b.edges.entry(id).and_modify(|e| e.requests += v.round() as u64);
    }
    for (l, v) in &s.rates {
        let id = b.edge(l, false);
        b.edges.entry(id).and_modify(|e| *e.rate.get_or_insert(0.0) += v);
    }
    for (l, v) in &s.escapes {
        let reason = l.get("reason").cloned().unwrap_or_default();
        let n = v.round() as u64;
        if n == 0 {
            continue;
        }
        // The escaped requests were counted with the lane's others: they move to the red edge.
        let plain = b.edge(l, false);
        b.edges.entry(plain).and_modify(|e| e.requests = e.requests.saturating_sub(n));
        let id = b.edge(l, true);
        b.edges.entry(id).and_modify(|e| {
            e.requests += n;
            e.escapes += n;
            *e.reasons.entry(reason).or_default() += n;
        });
    }
    for (l, v) in &s.connections {
        let n = v.round() as u64;
        if n > 0 {
            b.connections(l, n);
        }
    }
    // Data lanes: each store's mappings on the edges of that lane into it.
    for (l, _) in &s.data_lanes {
        let (Some(service), Some(lane), Some(mapping)) =
            (label(l, "destination_service"), label(l, "lane"), label(l, "mapping"))
        else {
            continue;
        };
        let rejected: u64 = s
            .commands
            .iter()
            .filter(|(c, _)| {
                c.get("destination_service") == Some(&service)
                    && c.get("lane") == Some(&lane)
                    && c.get("result").is_some_and(|r| r == "rejected")
            })
            .map(|(_, v)| v.round() as u64)
            .sum();
        for e in b.edges.values_mut() {
            if e.service.as_deref() == Some(service.as_str()) && e.tag.as_deref() == Some(lane.as_str()) {
                e.data.push(MapData { lane: lane.clone(), mapping: mapping.clone(), rejected });
            }
        }
    }
    b.finish(source)
}

fn label(l: &BTreeMap<String, String>, k: &str) -> Option<String> {
    l.get(k).filter(|v| !v.is_empty()).cloned()
}

#[derive(Default)]
struct Builder {
    nodes: BTreeMap<String, MapNode>,
    edges: BTreeMap<String, MapEdge>,
    services: BTreeSet<String>,
    /// (service, subset) → the versions serving it.
    serving: BTreeMap<(String, String), Vec<String>>,
}

impl Builder {
    /// A `graylane_workload_info` series: a version and what it serves.
    fn version(&mut self, l: &BTreeMap<String, String>, stores: &BTreeSet<String>) {
        let Some(workload) = label(l, "workload") else { return };
        let tag = label(l, "tag");
        let service = label(l, "service");
        let tenant = label(l, "tenant");
        let id = node_id(&workload, tag.as_deref(), tenant.as_deref());
        if let (Some(svc), Some(subset)) = (&service, label(l, "subset")) {
            self.serving.entry((svc.clone(), subset)).or_default().push(id.clone());
            self.services.insert(svc.clone());
        }
        let kind =
            if service.as_ref().is_some_and(|svc| stores.contains(svc)) { "store" } else { "workload" };
        self.nodes.entry(id.clone()).or_insert_with(|| MapNode {
            label: short(&workload).to_owned(),
            id,
            kind: kind.into(),
            service,
            tag,
            tenant,
        });
    }

    /// The node of a calling workload in a lane: its version of that tag, else any of its
    /// versions, else a node of its own (`outside` for callers graylane does not know).
    fn source(&mut self, workload: &str, tag: Option<&str>) -> String {
        if workload.is_empty() || workload == "unknown" {
            self.nodes.entry("outside".into()).or_insert_with(|| MapNode {
                id: "outside".into(),
                label: "outside the mesh".into(),
                kind: "outside".into(),
                ..MapNode::default()
            });
            return "outside".into();
        }
        let exact = node_id(workload, tag, None);
        if self.nodes.contains_key(&exact) {
            return exact;
        }
        if let Some(any) = self.nodes.keys().find(|k| k.split_once('@').is_some_and(|(w, _)| w == workload)) {
            return any.clone();
        }
        let base = node_id(workload, None, None);
        self.nodes.entry(base.clone()).or_insert_with(|| MapNode {
            id: base.clone(),
            label: short(workload).to_owned(),
            kind: "workload".into(),
            ..MapNode::default()
        });
        base
    }

    /// The edge of a request series (`escape`: its red twin), created empty.
    fn edge(&mut self, l: &BTreeMap<String, String>, escape: bool) -> String {
        let tag = label(l, "source_tag");
        let from = self.source(l.get("source_workload").map_or("", String::as_str), tag.as_deref());
        let service = label(l, "destination_service").unwrap_or_default();
        let subset = label(l, "destination_subset").unwrap_or_default();
        let to = self
            .serving
            .get(&(service.clone(), subset))
            .and_then(|v| v.first().cloned())
            .unwrap_or_else(|| format!("svc:{service}"));
        let id =
            format!("{from}>{to}#{}#{}", tag.as_deref().unwrap_or(""), if escape { "#escape" } else { "" });
        self.edges.entry(id.clone()).or_insert_with(|| MapEdge {
            id: id.clone(),
            from,
            to,
            service: Some(service),
            tag,
            path: "proxy".into(),
            ..MapEdge::default()
        });
        id
    }

    /// Opaque TCP connections (no lane label): into the Service, by result.
    fn connections(&mut self, l: &BTreeMap<String, String>, n: u64) {
        let result = l.get("result").cloned().unwrap_or_default();
        let from = self.source(l.get("source_workload").map_or("", String::as_str), None);
        let service = label(l, "destination_service").unwrap_or_default();
        let refused = !matches!(result.as_str(), "forwarded" | "kernel");
        let path = if result == "kernel" { "kernel" } else { "proxy" };
        let id = format!("{from}>svc:{service}##{path}{}", if refused { "#refused" } else { "" });
        let e = self.edges.entry(id.clone()).or_insert_with(|| MapEdge {
            id,
            from,
            to: format!("svc:{service}"),
            service: Some(service.clone()),
            path: path.into(),
            ..MapEdge::default()
        });
        self.services.insert(service);
        if refused {
            e.refused += n;
            *e.reasons.entry(result).or_default() += n;
        } else {
            e.connections += n;
        }
    }

    fn finish(self, source: &str) -> LaneMap {
        let mut lanes = BTreeSet::new();
        let mut tenants = BTreeSet::new();
        for n in self.nodes.values() {
            lanes.extend(n.tag.clone());
            tenants.extend(n.tenant.clone());
        }
        lanes.extend(self.edges.values().filter_map(|e| e.tag.clone()));
        LaneMap {
            source: source.to_owned(),
            flows_note: Some("flows stay on their node: `graylane flows` there, or its own map".into()),
            services: self
                .services
                .into_iter()
                .map(|id| MapService { id, ..MapService::default() })
                .collect(),
            nodes: self.nodes.into_values().collect(),
            edges: self.edges.into_values().collect(),
            lanes: lanes.into_iter().collect(),
            tenants: tenants.into_iter().collect(),
        }
    }
}

fn short(workload: &str) -> &str {
    workload.rsplit_once('/').map_or(workload, |(_, w)| w)
}
