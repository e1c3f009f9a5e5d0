//! `/map`: the lane map's data — workloads by version (a workload's pods of one tag) grouped
//! by the Service they serve, and traffic per lane between them from the flow table, with
//! fallbacks and escapes kept apart, refusals, data-lane mappings and recent flows per
//! edge. `graylane ui --prometheus` builds the same shape from every agent's metrics.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::{
    inventory::{Pod, workload},
    proxy::ProxyState,
    routing::describe::ServiceView,
    telemetry::flows::{Flow, FlowOutcome},
};

/// Recent flows kept per edge.
const EDGE_FLOWS: usize = 20;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LaneMap {
    /// Where the data comes from (`node …`, `prometheus …`).
    pub source: String,
    pub lanes: Vec<String>,
    pub tenants: Vec<String>,
    pub nodes: Vec<MapNode>,
    pub services: Vec<MapService>,
    pub edges: Vec<MapEdge>,
    /// Why edges have no flows (Prometheus: flows stay on their nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows_note: Option<String>,
}

/// A workload's pods of one tag: a version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MapNode {
    pub id: String,
    pub label: String,
    /// `workload`, `store` (serves a data store) or `outside` (callers graylane does not know).
    pub kind: String,
    pub service: Option<String>,
    pub tag: Option<String>,
    pub tenant: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MapService {
    pub id: String,
    pub rules_from: Option<String>,
    pub fallback: String,
    pub subsets: Vec<MapSubset>,
    pub routes: Vec<MapRoute>,
    pub data_lanes: Vec<MapDataLane>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MapSubset {
    pub subset: String,
    pub tenant: Option<String>,
    pub endpoints: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MapRoute {
    pub name: String,
    /// `subset weight, …`.
    pub to: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MapDataLane {
    pub lane: String,
    pub protocol: String,
    pub mapping: String,
    pub enforcement: String,
}

/// Traffic of one lane (and tenant) from one version to another.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MapEdge {
    pub id: String,
    pub from: String,
    pub to: String,
    pub service: Option<String>,
    pub tag: Option<String>,
    pub tenant: Option<String>,
    /// `proxy` or `kernel`.
    pub path: String,
    pub requests: u64,
    pub connections: u64,
    /// Requests or connections served outside their lane, by reason.
    pub escapes: u64,
    pub reasons: BTreeMap<String, u64>,
    /// Connections or requests graylane refused (tenant isolation, no endpoints, policy).
    pub refused: u64,
    /// Data-lane mappings seen on this edge and the commands refused in them.
    pub data: Vec<MapData>,
    pub flows: Vec<EdgeFlow>,
    /// Per second (Prometheus); the page derives it from counts otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MapData {
    pub lane: String,
    pub mapping: String,
    pub rejected: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EdgeFlow {
    pub id: u64,
    pub endpoint: String,
    pub subset: String,
    /// The routing explanation: the subset's reason, the route, the data lane, the failure.
    pub why: String,
    /// The coloring rule that gave the lane, if one did.
    pub rule: String,
}

/// The id of a version node: a workload's pods of one tag (and one tenant: a tenant's
/// instances are apart from another's).
pub fn node_id(workload: &str, tag: Option<&str>, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("{workload}@{}%{t}", tag.unwrap_or("base")),
        None => format!("{workload}@{}", tag.unwrap_or("base")),
    }
}

/// Reasons that mean the request or connection left its lane.
pub fn is_escape(reason: &str) -> bool {
    reason.starts_with("fallback") || reason == "lane_lost"
}

/// The node's map: every known version, the Services they serve, traffic from `flows`.
pub fn build(state: &ProxyState, flows: &[Flow], services: &[ServiceView], source: String) -> LaneMap {
    let mut map = LaneMap { source, ..LaneMap::default() };
    let mut lanes = BTreeSet::new();
    let mut tenants = BTreeSet::new();
    // Which Service each pod serves (a data store's first), from the routing table.
    let mut serves: HashMap<String, (String, bool)> = HashMap::new();
    let mut seen_services = BTreeSet::new();
    for v in services {
        if !seen_services.insert(v.service.clone()) {
            continue;
        }
        let store = !v.data_lanes.is_empty();
        for s in &v.subsets {
            for e in &s.endpoints {
                let entry = serves.entry(e.pod.clone()).or_insert_with(|| (v.service.clone(), store));
                if store && !entry.1 {
                    *entry = (v.service.clone(), true);
                }
            }
        }
        map.services.push(service(v));
    }
    // Versions: a workload's pods of one tag.
    let mut nodes: BTreeMap<String, (MapNode, Vec<String>)> = BTreeMap::new();
    for pod in &state.snapshot.pods {
        let id = version_of(pod);
        let key = pod.key().0;
        let (service, store) = serves.get(&key).cloned().map_or((None, false), |(s, d)| (Some(s), d));
        lanes.extend(pod.tag.clone());
        tenants.extend(pod.tenant.clone());
        let entry = nodes.entry(id.clone()).or_insert_with(|| {
            let node = MapNode {
                id,
                label: String::new(),
                kind: if store { "store" } else { "workload" }.into(),
                service: service.clone(),
                tag: pod.tag.clone(),
                tenant: pod.tenant.clone(),
            };
            (node, Vec::new())
        });
        entry.1.push(pod.name.clone());
        if entry.0.service.is_none() {
            entry.0.service = service;
        }
    }
    let pods: HashMap<String, &std::sync::Arc<Pod>> =
        state.snapshot.pods.iter().map(|p| (p.key().0, p)).collect();
    let version = |pod: Option<&str>| pod.and_then(|p| pods.get(p)).map(|p| version_of(p));
    // Edges from the flow table, oldest first (the newest flows end each edge's list).
    let mut edges: BTreeMap<String, MapEdge> = BTreeMap::new();
    let mut outside = false;
    for f in flows {
        if matches!(f.state.outcome, FlowOutcome::Bypassed(_)) {
            continue;
        }
        let Some(service) = f.state.service.as_deref().filter(|s| s.contains('/')) else { continue };
        let from = version(f.start.src_pod.as_deref()).unwrap_or_else(|| {
            outside = true;
            "outside".to_owned()
        });
        let refused = matches!(f.state.outcome, FlowOutcome::Failed(_)) || f.state.local_reason.is_some();
        let to = version(f.state.endpoint_pod.as_deref()).unwrap_or_else(|| format!("svc:{service}"));
        let tag = f.state.lane_tag.clone().or_else(|| f.start.tag.clone());
        let tenant = f.start.tenant.clone();
        let reason = f.state.reason.unwrap_or("");
        // A data lane on the store's base endpoints is kept in its lane by its mapping.
        let escape = (is_escape(reason) && f.state.data_lane.is_none()) || f.state.lane_lost.is_some();
        let path = f.state.path;
        let id = format!(
            "{from}>{to}#{}#{}{}{}",
            tag.as_deref().unwrap_or(""),
            tenant.as_deref().unwrap_or(""),
            if escape { "#escape" } else { "" },
            if refused && f.state.endpoint_pod.is_none() { "#refused" } else { "" }
        );
        lanes.extend(tag.clone());
        tenants.extend(tenant.clone());
        let e = edges.entry(id.clone()).or_insert_with(|| MapEdge {
            id,
            from: from.clone(),
            to: to.clone(),
            service: Some(service.to_owned()),
            tag: tag.clone(),
            tenant: tenant.clone(),
            path: path.to_owned(),
            ..MapEdge::default()
        });
        let count = if f.state.protocol == "tcp" {
            e.connections += 1;
            1
        } else {
            e.requests += f.state.requests;
            f.state.requests.max(1)
        };
        if escape {
            e.escapes += count;
            let why = if f.state.lane_lost.is_some() { "lane_lost" } else { reason };
            *e.reasons.entry(why.to_owned()).or_default() += count;
        }
        if refused {
            e.refused += 1;
        }
        if let Some(d) = &f.state.data_lane {
            let lane = tag.clone().unwrap_or_default();
            match e.data.iter_mut().find(|x| x.mapping == **d) {
                Some(x) => x.rejected += f.state.data_rejected,
                None => {
                    e.data.push(MapData { lane, mapping: d.to_string(), rejected: f.state.data_rejected })
                }
            }
        }
        e.flows.push(edge_flow(f));
        if e.flows.len() > EDGE_FLOWS {
            e.flows.remove(0);
        }
    }
    for (_, (mut node, names)) in nodes {
        node.label = match names.as_slice() {
            [one] => one.clone(),
            many => {
                format!("{} ({} pods)", node.id.split_once('@').map_or(&*node.id, |(w, _)| w), many.len())
            }
        };
        map.nodes.push(node);
    }
    if outside {
        map.nodes.push(MapNode {
            id: "outside".into(),
            label: "outside the mesh".into(),
            kind: "outside".into(),
            ..MapNode::default()
        });
    }
    map.edges = edges.into_values().collect();
    map.lanes = lanes.into_iter().collect();
    map.tenants = tenants.into_iter().collect();
    map
}

fn version_of(pod: &Pod) -> String {
    node_id(&workload(pod), pod.tag.as_deref(), pod.tenant.as_deref())
}

fn edge_flow(f: &Flow) -> EdgeFlow {
    let s = &f.state;
    let mut why: Vec<String> = Vec::new();
    if s.path == "kernel" {
        why.push("via=kernel".into());
    }
    why.extend(s.reason.map(str::to_owned));
    why.extend(s.route.as_deref().map(|r| format!("route={r}")));
    why.extend(s.lane_lost.as_deref().map(|l| format!("lane_lost={l}")));
    why.extend(s.data_lane.as_deref().map(|d| format!("data lane: {d}")));
    if s.data_rejected > 0 {
        why.push(format!("refused {}", s.data_rejected));
    }
    why.extend(s.local_reason.map(str::to_owned));
    if let FlowOutcome::Failed(e) = &s.outcome {
        why.push(format!("failed: {e}"));
    }
    EdgeFlow {
        id: f.id,
        endpoint: s
            .endpoint_pod
            .as_deref()
            .map(str::to_owned)
            .or(s.upstream.map(|u| u.to_string()))
            .unwrap_or_default(),
        subset: s.subset.as_deref().unwrap_or("").to_owned(),
        why: why.join(" "),
        rule: s.rule.as_deref().unwrap_or("").to_owned(),
    }
}

fn service(v: &ServiceView) -> MapService {
    MapService {
        id: v.service.clone(),
        rules_from: v.rules_from.clone(),
        fallback: serde_json::to_value(&v.fallback).map(|f| f.to_string()).unwrap_or_default(),
        subsets: v
            .subsets
            .iter()
            .map(|s| MapSubset {
                subset: s.subset.clone(),
                tenant: s.tenant.clone(),
                endpoints: s.endpoints.iter().map(|e| e.pod.clone()).collect(),
            })
            .collect(),
        routes: v
            .routes
            .iter()
            .map(|r| MapRoute {
                name: r.name.clone(),
                to: r
                    .destinations
                    .iter()
                    .map(|d| format!("{} {}", d.subset, d.weight))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
        data_lanes: v
            .data_lanes
            .iter()
            .map(|d| MapDataLane {
                lane: d.lane.clone(),
                protocol: d.protocol.to_owned(),
                mapping: d.mapping.clone(),
                enforcement: d.enforcement.to_owned(),
            })
            .collect(),
    }
}
