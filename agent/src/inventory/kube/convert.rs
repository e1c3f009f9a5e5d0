//! Kubernetes objects into inventory objects. Every failure names the object and field.

use std::net::IpAddr;

use k8s_openapi::{
    api::{
        core::v1::{Pod as KPod, Service as KService},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use kube::ResourceExt as _;

use super::KubeConfig;
use crate::inventory::{
    Pod, annotations,
    model::{Service, ServicePort, Slice, SliceEndpoint, TargetPort},
    pod_cgroup,
    policy::{self, Named, TrafficLabelRule, TrafficLabelRuleSpec, TrafficPolicy, TrafficPolicySpec},
};

/// Why an object was skipped.
pub struct Invalid {
    pub object: String,
    /// The object's resourceVersion (to report each version once).
    pub version: String,
    pub field: String,
    pub message: String,
}

fn id(kind: &str, ns: &str, name: &str) -> String {
    format!("{kind} {ns}/{name}")
}

fn version(meta: &ObjectMeta) -> String {
    meta.resource_version.clone().unwrap_or_default()
}

/// A pod and its rank when two pods claim one IP or cgroup: (running, creation time).
pub type Ranked = (Pod, (bool, i64));

pub fn pod(p: &KPod, cfg: &KubeConfig) -> Result<Ranked, Invalid> {
    let (ns, name) = (p.namespace().unwrap_or_else(|| "default".into()), p.name_any());
    let invalid = |field: String, message: String| Invalid {
        object: id("Pod", &ns, &name),
        version: version(&p.metadata),
        field,
        message,
    };
    let ann = annotations::parse(p.annotations()).map_err(|e| invalid(e.field, e.message))?;
    for key in &ann.unknown {
        tracing::warn!(pod = %format!("{ns}/{name}"), annotation = %key, "unknown graylane annotation ignored");
    }
    let status = p.status.as_ref();
    let mut ips = Vec::new();
    for (i, text) in status
        .map(|s| {
            s.pod_ips.iter().flatten().map(|ip| ip.ip.clone()).chain(s.pod_ip.clone()).collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let ip: IpAddr = text
            .parse()
            .map_err(|_| invalid(format!("status.podIPs[{i}]"), format!("{text:?} is not an IP")))?;
        if let Some(why) = crate::inventory::sanity::bad_pod_ip(ip) {
            return Err(invalid(format!("status.podIPs[{i}]"), format!("{ip} is {why}")));
        }
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let spec = p.spec.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    // A host-network pod's IP is the node's (every pod on it would be this one), and a
    // finished pod's IP is free for the next: neither enters the IP maps.
    if spec.and_then(|s| s.host_network) == Some(true) || matches!(phase, Some("Succeeded" | "Failed")) {
        ips.clear();
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let node = spec.and_then(|s| s.node_name.clone());
    let named_ports = spec
        .map(|s| s.containers.iter().flat_map(|c| c.ports.iter().flatten()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|port| Some((port.name.clone()?, u16::try_from(port.container_port).ok()?)))
        .collect();
    // Local pods: kubelet's layout by UID and QoS; the annotation only when the operator
    // trusts it (a pod could otherwise name another pod's cgroup and take its identity).
    let local = node.is_some() && node == cfg.node_name;
    // Another node's pod has its cgroup there, never here.
    let annotated =
        ann.cgroup.clone().filter(|_| cfg.cgroup_annotation && (local || cfg.node_name.is_none()));
    let cgroup = annotated.or_else(|| {
        let uid = p.metadata.uid.as_deref()?;
        local.then(|| pod_cgroup::resolve(&cfg.cgroup_root, uid, status.and_then(|s| s.qos_class.as_deref())))
    });
    let created = p.metadata.creation_timestamp.as_ref().map_or(0, |t| t.0.as_second());
    let pod = Pod {
        namespace: ns.clone(),
        name: name.clone(),
        labels: p.labels().clone(),
        ips,
        node,
        host_ip: status.and_then(|s| s.host_ip.as_deref()).and_then(|t| t.parse().ok()),
        tag: ann.tag,
        tenant: ann.tenant,
        redirect: ann.redirect,
        fail_closed: ann.fail_closed,
        cgroup,
        role: ann.role,
        named_ports,
        ready,
    };
    Ok((pod, (phase == Some("Running"), created)))
}

pub fn service(s: &KService) -> Result<Service, Invalid> {
    let (ns, name) = (s.namespace().unwrap_or_else(|| "default".into()), s.name_any());
    let invalid = |field: String, message: String| Invalid {
        object: id("Service", &ns, &name),
        version: version(&s.metadata),
        field,
        message,
    };
    let spec = s.spec.clone().unwrap_or_default();
    let mut cluster_ips = Vec::new();
    for (i, text) in spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter()).enumerate() {
        if text == "None" || text.is_empty() {
            continue;
        }
        let ip: IpAddr = text
            .parse()
            .map_err(|_| invalid(format!("spec.clusterIPs[{i}]"), format!("{text:?} is not an IP")))?;
        if !cluster_ips.contains(&ip) {
            cluster_ips.push(ip);
        }
    }
    let mut ports = Vec::new();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
            continue;
        }
        let port = u16::try_from(p.port)
            .map_err(|_| invalid(format!("spec.ports[{i}].port"), "out of range".into()))?;
        let target_port = match &p.target_port {
            None => TargetPort::Number(port),
            Some(IntOrString::Int(n)) => TargetPort::Number(
                u16::try_from(*n)
                    .map_err(|_| invalid(format!("spec.ports[{i}].targetPort"), "out of range".into()))?,
            ),
            Some(IntOrString::String(s)) => TargetPort::Name(s.clone()),
        };
        ports.push(ServicePort {
            name: p.name.clone(),
            port,
            target_port,
            app_protocol: p.app_protocol.clone(),
        });
    }
    Ok(Service { namespace: ns, name, cluster_ips, ports, selector: spec.selector.unwrap_or_default() })
}

/// An EndpointSlice of a service (slices without the service label are not ours).
pub fn slice(s: &EndpointSlice) -> Option<Slice> {
    let service = s.labels().get("kubernetes.io/service-name")?.clone();
    let ports = s
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        .filter_map(|p| Some((p.name.clone().filter(|n| !n.is_empty()), u16::try_from(p.port?).ok()?)))
        .collect();
    let endpoints = s
        .endpoints
        .iter()
        .flatten()
        .flat_map(|e| {
            // Ready, or serving while terminating (graceful shutdown): as kube-proxy does,
            // serving-terminating endpoints are used only when none is ready.
            let c = e.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let pod = e
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.clone());
            e.addresses.iter().filter_map(move |a| {
                Some(SliceEndpoint { ip: a.parse().ok()?, ready, serving, pod: pod.clone() })
            })
        })
        .collect();
    Some(Slice { namespace: s.namespace().unwrap_or_else(|| "default".into()), service, ports, endpoints })
}

pub fn policy(p: &TrafficPolicy) -> Result<Named<TrafficPolicySpec>, Invalid> {
    checked("TrafficPolicy", &p.metadata, &p.spec, policy::validate_policy)
}

pub fn rule(r: &TrafficLabelRule) -> Result<Named<TrafficLabelRuleSpec>, Invalid> {
    checked("TrafficLabelRule", &r.metadata, &r.spec, policy::validate_rule)
}

/// A graylane object whose spec passed `validate`.
fn checked<S: Clone>(
    kind: &str,
    meta: &ObjectMeta,
    spec: &S,
    validate: fn(&S) -> Result<(), crate::inventory::FieldError>,
) -> Result<Named<S>, Invalid> {
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let name = meta.name.clone().unwrap_or_default();
    validate(spec).map_err(|crate::inventory::FieldError { field, message }| Invalid {
        object: id(kind, &ns, &name),
        version: version(meta),
        field,
        message,
    })?;
    Ok(Named { namespace: ns, name, spec: spec.clone() })
}

/// A Secret's data (`stringData` is folded into `data` by the API server), keyed by
/// (namespace, name).
pub fn secret(
    s: &k8s_openapi::api::core::v1::Secret,
) -> Option<((String, String), std::sync::Arc<super::super::accounts::SecretData>)> {
    let name = s.metadata.name.clone()?;
    let namespace = s.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut data: std::collections::BTreeMap<String, Vec<u8>> =
        s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    for (k, v) in s.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    Some(((namespace, name), std::sync::Arc::new(super::super::accounts::SecretData(data))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> KubeConfig {
        KubeConfig {
            node_name: Some("n1".into()),
            cgroup_root: "/nonexistent".into(),
            cgroup_annotation: false,
            node: Default::default(),
        }
    }

    fn kpod(json: serde_json::Value) -> KPod {
        serde_json::from_value(json).expect("pod")
    }

    #[test]
    fn host_network_and_finished_pods_keep_no_ip_and_annotated_cgroups_need_trust() {
        let host = kpod(serde_json::json!({
            "metadata": {"name": "ingress", "namespace": "kube-system", "uid": "u1",
                         "annotations": {"graylane.io/cgroup": "pods/web"}},
            "spec": {"hostNetwork": true, "nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}
        }));
        let (converted, rank) = pod(&host, &cfg()).ok().expect("valid");
        assert!(converted.ips.is_empty(), "a host-network pod's IP is the node's");
        assert_eq!(converted.cgroup.as_deref(), Some("kubepods/podu1"), "the annotation is not trusted");
        assert!(rank.0);
        let trusted = KubeConfig { cgroup_annotation: true, ..cfg() };
        assert_eq!(pod_of(&host, &trusted).cgroup.as_deref(), Some("pods/web"));
        let done = kpod(serde_json::json!({
            "metadata": {"name": "job", "namespace": "default"},
            "spec": {"containers": []},
            "status": {"phase": "Succeeded", "podIP": "10.244.0.9"}
        }));
        assert!(pod_of(&done, &cfg()).ips.is_empty(), "a finished pod's IP is free");
        let lo = kpod(serde_json::json!({
            "metadata": {"name": "lo", "namespace": "default"},
            "spec": {"containers": []},
            "status": {"phase": "Running", "podIP": "127.0.0.1"}
        }));
        assert!(pod(&lo, &cfg()).is_err());
    }

    fn pod_of(p: &KPod, cfg: &KubeConfig) -> Pod {
        pod(p, cfg).ok().expect("valid").0
    }
}
