//! Kubernetes-style YAML documents (v1 Pod, v1 Service, graylane.io/v1alpha1 TrafficPolicy
//! and TrafficLabelRule) into model objects. Unknown fields
//! are ignored; invalid documents are rejected naming the document and the field.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use serde::Deserialize;

use super::{
    InventoryError, annotations,
    model::{Pod, Service, ServicePort, TargetPort},
    policy::{self, Named, TrafficLabelRuleSpec, TrafficPolicySpec},
};

/// What one file contributes.
#[derive(Debug, Default)]
pub struct Parsed {
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub policies: Vec<Named<TrafficPolicySpec>>,
    pub rules: Vec<Named<TrafficLabelRuleSpec>>,
    /// Non-fatal findings (unknown annotations, skipped kinds), for the log.
    pub warnings: Vec<String>,
}

/// Parses every document of `text` (read from `path`, for messages).
pub fn parse_documents(path: &Path, text: &str) -> Result<Parsed, InventoryError> {
    let mut out = Parsed::default();
    for (index, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let err = |field: &str, message: String| InventoryError::Document {
            path: path.into(),
            index,
            field: field.into(),
            message,
        };
        let value = serde_norway::Value::deserialize(doc).map_err(|e| err("(document)", e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let head: Head =
            serde_norway::from_value(value.clone()).map_err(|e| err("(document)", e.to_string()))?;
        match (head.api_version.as_str(), head.kind.as_str()) {
            ("v1", "Pod") => {
                let raw: RawPod = typed(value).map_err(|(f, m)| err(&f, m))?;
                let (pod, unknown) = pod(raw).map_err(|(f, m)| err(&f, m))?;
                for key in unknown {
                    out.warnings.push(format!(
                        "{}: document {index}: pod {}: unknown annotation {key:?} ignored",
                        path.display(),
                        pod.key()
                    ));
                }
                out.pods.push(pod);
            }
            ("v1", "Service") => {
                let raw: RawService = typed(value).map_err(|(f, m)| err(&f, m))?;
                out.services.push(service(raw).map_err(|(f, m)| err(&f, m))?);
            }
            ("graylane.io/v1alpha1", "TrafficPolicy") => {
                let raw: RawObject<TrafficPolicySpec> = typed(value).map_err(|(f, m)| err(&f, m))?;
                policy::validate_policy(&raw.spec).map_err(|(f, m)| err(&f, m))?;
                out.policies.push(named(raw).map_err(|(f, m)| err(&f, m))?);
            }
            ("graylane.io/v1alpha1", "TrafficLabelRule") => {
                let raw: RawObject<TrafficLabelRuleSpec> = typed(value).map_err(|(f, m)| err(&f, m))?;
                policy::validate_rule(&raw.spec).map_err(|(f, m)| err(&f, m))?;
                out.rules.push(named(raw).map_err(|(f, m)| err(&f, m))?);
            }
            ("graylane.io/v1alpha1", kind) => {
                return Err(err(
                    "kind",
                    format!("{kind:?} is not a graylane.io/v1alpha1 kind (TrafficPolicy, TrafficLabelRule)"),
                ));
            }
            ("", _) | (_, "") => return Err(err("apiVersion/kind", "missing".into())),
            (api, kind) => out.warnings.push(format!(
                "{}: document {index}: {api} {kind} is not used by this source; skipped",
                path.display()
            )),
        }
    }
    Ok(out)
}

/// Deserializes with the failing field's path in the error.
fn typed<T: serde::de::DeserializeOwned>(value: serde_norway::Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Meta {
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawObject<T> {
    metadata: Meta,
    spec: T,
}

fn named<T>(raw: RawObject<T>) -> Result<Named<T>, FieldError> {
    let (namespace, name) = name_of(&raw.metadata)?;
    Ok(Named { namespace, name, spec: raw.spec })
}

#[derive(Deserialize)]
struct RawPod {
    metadata: Meta,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodSpec {
    node_name: Option<String>,
    containers: Vec<Container>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Container {
    ports: Vec<ContainerPort>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPort {
    name: Option<String>,
    container_port: u16,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodStatus {
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Vec<PodIp>,
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
struct PodIp {
    ip: String,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

#[derive(Deserialize)]
struct RawService {
    metadata: Meta,
    #[serde(default)]
    spec: ServiceSpec,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ServiceSpec {
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Vec<String>,
    ports: Vec<RawServicePort>,
    selector: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServicePort {
    name: Option<String>,
    port: u16,
    target_port: Option<IntOrString>,
    app_protocol: Option<String>,
    protocol: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(u16),
    Str(String),
}

type FieldError = (String, String);

fn name_of(meta: &Meta) -> Result<(String, String), FieldError> {
    if meta.name.is_empty() {
        return Err(("metadata.name".into(), "missing".into()));
    }
    Ok((meta.namespace.clone().unwrap_or_else(|| "default".into()), meta.name.clone()))
}

fn ip(field: &str, text: &str) -> Result<IpAddr, FieldError> {
    text.parse().map_err(|_| (field.to_owned(), format!("{text:?} is not an IP address")))
}

fn pod(raw: RawPod) -> Result<(Pod, Vec<String>), FieldError> {
    let (namespace, name) = name_of(&raw.metadata)?;
    let ann = annotations::parse(&raw.metadata.annotations)?;
    let mut ips = Vec::new();
    if let Some(text) = &raw.status.pod_ip {
        ips.push(ip("status.podIP", text)?);
    }
    for (i, p) in raw.status.pod_ips.iter().enumerate() {
        let addr = ip(&format!("status.podIPs[{i}].ip"), &p.ip)?;
        if !ips.contains(&addr) {
            ips.push(addr);
        }
    }
    let ready = raw.status.conditions.iter().find(|c| c.kind == "Ready").is_none_or(|c| c.status == "True");
    let named_ports = raw
        .spec
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .filter_map(|p| Some((p.name.clone()?, p.container_port)))
        .collect();
    let pod = Pod {
        namespace,
        name,
        labels: raw.metadata.labels,
        ips,
        node: raw.spec.node_name,
        tag: ann.tag,
        tenant: ann.tenant,
        redirect: ann.redirect,
        fail_closed: ann.fail_closed,
        cgroup: ann.cgroup,
        role: ann.role,
        named_ports,
        ready,
    };
    Ok((pod, ann.unknown))
}

fn service(raw: RawService) -> Result<Service, FieldError> {
    let (namespace, name) = name_of(&raw.metadata)?;
    let mut cluster_ips = Vec::new();
    if let Some(text) = raw.spec.cluster_ip.as_deref().filter(|t| *t != "None" && !t.is_empty()) {
        cluster_ips.push(ip("spec.clusterIP", text)?);
    }
    for (i, text) in raw.spec.cluster_ips.iter().enumerate() {
        if text == "None" {
            continue;
        }
        let addr = ip(&format!("spec.clusterIPs[{i}]"), text)?;
        if !cluster_ips.contains(&addr) {
            cluster_ips.push(addr);
        }
    }
    let mut ports = Vec::new();
    for (i, p) in raw.spec.ports.into_iter().enumerate() {
        if p.port == 0 {
            return Err((format!("spec.ports[{i}].port"), "must be 1-65535".into()));
        }
        if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
            continue; // only TCP is captured
        }
        let target_port = match p.target_port {
            None => TargetPort::Number(p.port),
            Some(IntOrString::Int(0)) => {
                return Err((format!("spec.ports[{i}].targetPort"), "must be 1-65535".into()));
            }
            Some(IntOrString::Int(n)) => TargetPort::Number(n),
            Some(IntOrString::Str(s)) => match s.parse::<u16>() {
                Ok(n) if n > 0 => TargetPort::Number(n),
                _ => TargetPort::Name(s),
            },
        };
        ports.push(ServicePort { name: p.name, port: p.port, target_port, app_protocol: p.app_protocol });
    }
    Ok(Service { namespace, name, cluster_ips, ports, selector: raw.spec.selector })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: app-v2
  namespace: shop
  labels: {app: app}
  annotations:
    graylane.io/tag: gray
    graylane.io/cgroup: pods/app-v2
    graylane.io/colour: blue
  someFutureField: 1
spec:
  containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]
status:
  podIP: 10.244.0.5
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: app}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
"#;

    #[test]
    fn parses_pods_and_services_ignoring_unknown_fields() {
        let parsed = parse_documents(Path::new("x.yaml"), GOOD).expect("valid");
        assert_eq!(parsed.pods.len(), 1);
        let pod = &parsed.pods[0];
        assert_eq!(pod.key().0, "shop/app-v2");
        assert_eq!(pod.tag.as_deref(), Some("gray"));
        assert_eq!(pod.named_ports.get("http"), Some(&8080));
        assert_eq!(parsed.services[0].ports[0].target_port, TargetPort::Name("http".into()));
        assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
        assert!(parsed.warnings[0].contains("graylane.io/colour"));
    }

    #[test]
    fn reads_graylane_kinds_and_rejects_unknown_ones() {
        let text = "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: app}\nspec: {service: app, fallback: {mode: fail}}\n---\n\
                    apiVersion: graylane.io/v1alpha1\nkind: TrafficLabelRule\nmetadata: {name: r}\nspec: {tag: gray}\n";
        let parsed = parse_documents(Path::new("p.yaml"), text).expect("valid");
        assert_eq!(parsed.policies[0].spec.fallback.mode, policy::FallbackMode::Fail);
        assert_eq!(parsed.rules[0].spec.tag.as_deref(), Some("gray"));
        let typo = "apiVersion: graylane.io/v1alpha1\nkind: TraficPolicy\nmetadata: {name: x}\nspec: {}\n";
        let e = parse_documents(Path::new("p.yaml"), typo).expect_err("unknown kind").to_string();
        assert!(e.contains("document 0: kind:"), "{e}");
        let bad = "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: x}\nspec: {service: a, routes: [{match: {path: {regex: '['}}}]}\n";
        let e = parse_documents(Path::new("p.yaml"), bad).expect_err("bad regex").to_string();
        assert!(e.contains("spec.routes[0].match.path.regex"), "{e}");
    }

    #[test]
    fn errors_name_file_document_and_field() {
        let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 99999}]\n";
        let e = parse_documents(Path::new("inv/bad.yaml"), bad).expect_err("invalid").to_string();
        assert!(e.starts_with("inv/bad.yaml: document 1: spec.ports[0].port:"), "{e}");
        let bad_ip = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 10.0.0.300}\n";
        let e = parse_documents(Path::new("p.yaml"), bad_ip).expect_err("invalid").to_string();
        assert!(e.contains("document 0: status.podIP"), "{e}");
        let bad_yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n";
        assert!(parse_documents(Path::new("y.yaml"), bad_yaml).is_err());
    }
}
