//! The other rule languages in Kubernetes: Gateway API `HTTPRoute`, Istio
//! `VirtualService`/`DestinationRule`, OpenSergo traffic and fault-tolerance kinds, watched
//! as dynamic objects when the cluster serves their CRDs (each kind in the newest version
//! served), and the `status.parents[]` conditions of HTTPRoutes written back, the way
//! conformant implementations report acceptance.

use std::{collections::BTreeMap, time::Duration};

use kube::{
    Api, Client, ResourceExt as _,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams},
    runtime::reflector::Store,
};
use serde_json::{Value, json};

use super::convert::Invalid;
use crate::inventory::{
    languages::{self, ForeignDoc, Parsed},
    policy::{Named, TrafficLabelRuleSpec},
    report::Report,
};

/// The controller name graylane writes in HTTPRoute status.
pub const CONTROLLER: &str = "graylane.io/agent";

/// (group, versions newest first, kind, plural).
const KINDS: &[(&str, &[&str], &str, &str)] = &[
    ("gateway.networking.k8s.io", &["v1", "v1beta1"], "HTTPRoute", "httproutes"),
    ("gateway.networking.k8s.io", &["v1", "v1beta1"], "ReferenceGrant", "referencegrants"),
    ("gateway.networking.k8s.io", &["v1"], "GRPCRoute", "grpcroutes"),
    ("networking.istio.io", &["v1", "v1beta1", "v1alpha3"], "VirtualService", "virtualservices"),
    ("networking.istio.io", &["v1", "v1beta1", "v1alpha3"], "DestinationRule", "destinationrules"),
    ("traffic.opensergo.io", &["v1alpha1"], "TrafficRouter", "trafficrouters"),
    ("traffic.opensergo.io", &["v1alpha1"], "TrafficLabelRule", "trafficlabelrules"),
    ("traffic.opensergo.io", &["v1alpha1"], "WorkloadLabelRule", "workloadlabelrules"),
    ("fault-tolerance.opensergo.io", &["v1alpha1"], "FaultToleranceRule", "faulttolerancerules"),
    ("fault-tolerance.opensergo.io", &["v1alpha1"], "RateLimitStrategy", "ratelimitstrategies"),
    ("fault-tolerance.opensergo.io", &["v1alpha1"], "ThrottlingStrategy", "throttlingstrategies"),
    ("fault-tolerance.opensergo.io", &["v1alpha1"], "ConcurrencyLimitStrategy", "concurrencylimitstrategies"),
    ("fault-tolerance.opensergo.io", &["v1alpha1"], "CircuitBreakerStrategy", "circuitbreakerstrategies"),
    (
        "fault-tolerance.opensergo.io",
        &["v1alpha1"],
        "HttpRequestFallbackAction",
        "httprequestfallbackactions",
    ),
];

/// The kinds this cluster serves, each in its newest served version. Says at start which
/// are watched and which are not (no CRD, or no permission).
pub async fn served(client: &Client) -> Vec<ApiResource> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (group, versions, kind, plural) in KINDS {
        let mut found = None;
        'versions: for version in *versions {
            let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let mut backoff = Duration::from_millis(100);
            loop {
                match api.list(&ListParams::default().limit(1)).await {
                    Ok(_) => {
                        found = Some(ar);
                        break 'versions;
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => continue 'versions,
                    Err(kube::Error::Api(s)) if s.code == 403 => {
                        tracing::warn!(%kind, group, error = %s, "not allowed to list: not watched (see deploy/rbac.yaml)");
                        break 'versions;
                    }
                    // Passing trouble (the API server not up yet, busy): ask again, as the
                    // first sync waits for the answer anyway.
                    Err(e) => {
                        tracing::debug!(%kind, group, error = %e, "could not tell whether served; asking again");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        match found {
            Some(ar) => out.push(ar),
            None => missing.push(format!("{kind}.{group}")),
        }
    }
    let watched: Vec<String> = out.iter().map(|a| format!("{}.{}/{}", a.kind, a.group, a.version)).collect();
    tracing::info!(?watched, not_served = ?missing, "rule languages: watching the kinds whose CRDs exist");
    out
}

/// What the stores hold, parsed: documents to translate, and OpenSergo label rules (which
/// are graylane's own rules). Invalid objects go to `report`.
pub fn parse(
    stores: &[(ApiResource, Store<DynamicObject>)],
    report: &mut dyn FnMut(Invalid),
) -> (Vec<ForeignDoc>, Vec<Named<TrafficLabelRuleSpec>>) {
    let (mut docs, mut rules) = (Vec::new(), Vec::new());
    for (ar, store) in stores {
        for obj in store.state() {
            let ns = obj.namespace().unwrap_or_else(|| "default".into());
            let name = obj.name_any();
            let spec = obj.data.get("spec").cloned().unwrap_or_else(|| json!({}));
            match languages::parse(&ar.api_version, &ar.kind, &ns, &name, spec) {
                Some(Ok(Parsed::Foreign(d))) => docs.push(d),
                Some(Ok(Parsed::Rule(r))) => rules.push(r),
                Some(Err(e)) => report(Invalid {
                    object: format!("{} {ns}/{name}", ar.kind),
                    version: obj.resource_version().unwrap_or_default(),
                    field: e.field,
                    message: e.message,
                }),
                None => {}
            }
        }
    }
    (docs, rules)
}

/// Writes each HTTPRoute's and GRPCRoute's `status.parents[]` entries for its Service
/// parents when they differ from what the object holds (every node computes the same; the
/// first write wins and the others find nothing to do). Other controllers' entries are kept.
pub async fn write_status(
    client: &Client,
    stores: &[(ApiResource, Store<DynamicObject>)],
    reports: &[Report],
) {
    for kind in ["HTTPRoute", "GRPCRoute"] {
        write_kind_status(client, stores, reports, kind).await;
    }
}

async fn write_kind_status(
    client: &Client,
    stores: &[(ApiResource, Store<DynamicObject>)],
    reports: &[Report],
    kind: &str,
) {
    let Some((ar, store)) = stores.iter().find(|(ar, _)| ar.kind == kind) else { return };
    for r in reports.iter().filter(|r| r.kind == kind) {
        let Some(obj) = store
            .state()
            .into_iter()
            .find(|o| o.name_any() == r.name && o.namespace().as_deref().unwrap_or("default") == r.namespace)
        else {
            continue;
        };
        let Some(parents) = desired(&obj, r) else { continue };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &r.namespace, ar);
        let patch = json!({ "status": { "parents": parents } });
        match api.patch_status(&r.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(%kind, route = %format!("{}/{}", r.namespace, r.name), reason = %r.reason, "route status written")
            }
            Err(e) => {
                tracing::warn!(%kind, route = %format!("{}/{}", r.namespace, r.name), error = %e, "route status not written")
            }
        }
    }
}

/// The `status.parents` list the route should carry, or `None` when it already does.
fn desired(obj: &DynamicObject, r: &Report) -> Option<Vec<Value>> {
    let generation = obj.metadata.generation.unwrap_or(0);
    let current: Vec<Value> =
        obj.data.pointer("/status/parents").and_then(Value::as_array).cloned().unwrap_or_default();
    let ours = |p: &Value| p["controllerName"] == CONTROLLER;
    let mut parents: Vec<Value> = current.iter().filter(|p| !ours(p)).cloned().collect();
    let refs = obj.data.pointer("/spec/parentRefs").and_then(Value::as_array).cloned().unwrap_or_default();
    let now = jiff_now();
    for parent in refs.iter().filter(|p| {
        p["kind"].as_str() == Some("Service") && matches!(p["group"].as_str(), None | Some("" | "core"))
    }) {
        let (accepted, accepted_reason) = match (r.accepted, r.reason.as_str()) {
            (true, _) => ("True", "Accepted"),
            (false, "NoMatchingParent") => ("False", "NoMatchingParent"),
            (false, _) => ("False", "UnsupportedValue"),
        };
        let (resolved, resolved_reason) = match r.reason.as_str() {
            "BackendNotFound" => ("False", "BackendNotFound"),
            "RefNotPermitted" => ("False", "RefNotPermitted"),
            _ => ("True", "ResolvedRefs"),
        };
        let old = current.iter().find(|p| ours(p) && p["parentRef"] == *parent);
        let condition = |kind: &str, status: &str, reason: &str, message: &str| {
            let since = old
                .and_then(|p| p["conditions"].as_array())
                .and_then(|cs| cs.iter().find(|c| c["type"] == kind && c["status"] == status))
                .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_owned))
                .unwrap_or_else(|| now.clone());
            json!({
                "type": kind, "status": status, "reason": reason, "message": message,
                "observedGeneration": generation, "lastTransitionTime": since,
            })
        };
        let message = if r.unsupported.is_empty() {
            r.message.clone()
        } else {
            format!("{} not honoured: {}", r.message, r.unsupported.join(", ")).trim().to_owned()
        };
        parents.push(json!({
            "parentRef": parent,
            "controllerName": CONTROLLER,
            "conditions": [
                condition("Accepted", accepted, accepted_reason, &message),
                condition("ResolvedRefs", resolved, resolved_reason, if resolved == "True" { "" } else { &r.message }),
            ],
        }));
    }
    let same = |a: &[Value], b: &[Value]| strip(a) == strip(b);
    (!same(&parents, &current)).then_some(parents)
}

/// The entries without timestamps, for comparing.
fn strip(parents: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = parents.to_vec();
    for p in &mut out {
        if let Some(cs) = p.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("lastTransitionTime");
                }
            }
        }
    }
    let mut keyed: BTreeMap<String, Value> = BTreeMap::new();
    for p in out {
        keyed.insert(p["parentRef"].to_string() + p["controllerName"].as_str().unwrap_or(""), p);
    }
    keyed.into_values().collect()
}

/// Now, RFC 3339 in UTC, as Kubernetes writes times.
fn jiff_now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
