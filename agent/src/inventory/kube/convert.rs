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

pub fn pod(p: &KPod, cfg: &KubeConfig) -> Result<Pod, Invalid> {
    let (ns, name) = (p.namespace().unwrap_or_else(|| "default".into()), p.name_any());
    let invalid = |field: String, message: String| Invalid {
        object: id("Pod", &ns, &name),
        version: version(&p.metadata),
        field,
        message,
    };
    let ann = annotations::parse(p.annotations()).map_err(|(f, m)| invalid(f, m))?;
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
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let spec = p.spec.as_ref();
    let node = spec.and_then(|s| s.node_name.clone());
    let named_ports = spec
        .map(|s| s.containers.iter().flat_map(|c| c.ports.iter().flatten()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|port| Some((port.name.clone()?, u16::try_from(port.container_port).ok()?)))
        .collect();
    // Local pods: the annotation (standalone, tests) or kubelet's layout by UID and QoS.
    let local = node.is_some() && node == cfg.node_name;
    let cgroup = ann.cgroup.clone().or_else(|| {
        let uid = p.metadata.uid.as_deref()?;
        local.then(|| pod_cgroup::resolve(&cfg.cgroup_root, uid, status.and_then(|s| s.qos_class.as_deref())))
    });
    Ok(Pod {
        namespace: ns.clone(),
        name: name.clone(),
        labels: p.labels().clone(),
        ips,
        node,
        tag: ann.tag,
        tenant: ann.tenant,
        redirect: ann.redirect,
        fail_closed: ann.fail_closed,
        cgroup,
        role: ann.role,
        named_ports,
        ready,
    })
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
    validate: fn(&S) -> Result<(), (String, String)>,
) -> Result<Named<S>, Invalid> {
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let name = meta.name.clone().unwrap_or_default();
    validate(spec).map_err(|(field, message)| Invalid {
        object: id(kind, &ns, &name),
        version: version(meta),
        field,
        message,
    })?;
    Ok(Named { namespace: ns, name, spec: spec.clone() })
}
