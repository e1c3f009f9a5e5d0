//! Kubernetes-style YAML documents (v1 Pod, v1 Service, graylane.io/v1alpha1 TrafficPolicy
//! and TrafficLabelRule, and the other rule languages of [`languages`]) into model objects.
//! Unknown fields are ignored (those of rule languages are reported); invalid documents are
//! rejected naming the document and the field.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::Path,
};

use serde::Deserialize;

use super::{
    FieldError, InventoryError, annotations, bounds, languages,
    model::{Pod, Service, ServicePort, TargetPort},
    policy::{self, Named, TrafficLabelRuleSpec, TrafficPolicySpec},
};

/// What one file contributes.
#[derive(Debug, Default)]
pub struct Parsed {
    pub pods: Vec<Pod>,
    /// The document index of each pod (for messages naming it).
    pub pod_docs: Vec<usize>,
    pub services: Vec<Service>,
    pub policies: Vec<Named<TrafficPolicySpec>>,
    pub rules: Vec<Named<TrafficLabelRuleSpec>>,
    /// Rules in other languages (Istio, Gateway API, OpenSergo), translated later against
    /// the whole inventory.
    pub foreign: Vec<languages::ForeignDoc>,
    /// Service ranges (`networking.k8s.io/v1` `ServiceCIDR`).
    pub service_cidrs: Vec<ipnetwork::IpNetwork>,
    /// `v1` Secrets (store accounts of data lanes): (namespace, name, data).
    pub secrets: Vec<(String, String, super::accounts::SecretData)>,
    /// Non-fatal findings (unknown annotations, skipped kinds), for the log.
    pub warnings: Vec<String>,
}

/// One document's object.
#[derive(Clone, Debug)]
enum Object {
    Pod(Pod),
    Service(Service),
    Policy(Box<Named<TrafficPolicySpec>>),
    Rule(Box<Named<TrafficLabelRuleSpec>>),
    ServiceCidr(Vec<ipnetwork::IpNetwork>),
    Secret(String, String, super::accounts::SecretData),
    Foreign(Box<languages::ForeignDoc>),
    /// Empty, or a kind this source does not use.
    Nothing,
}

/// A parsed document and its non-fatal findings.
#[derive(Clone, Debug)]
struct Doc {
    object: Object,
    warnings: Vec<String>,
}

/// Parsed documents by the hash of their text: a reload re-parses only documents that
/// changed (one annotation in a 10,000-pod file is one document).
#[derive(Default)]
pub struct DocCache {
    docs: HashMap<u64, Doc>,
}

/// Parses every document of `text` (read from `path`, for messages).
#[cfg(test)]
pub fn parse_documents(path: &Path, text: &str) -> Result<Parsed, InventoryError> {
    parse_documents_cached(path, text, &DocCache::default(), &mut DocCache::default())
}

/// Like [`parse_documents`], reusing `old` and filling `next` with what this text holds.
pub fn parse_documents_cached(
    path: &Path,
    text: &str,
    old: &DocCache,
    next: &mut DocCache,
) -> Result<Parsed, InventoryError> {
    let mut out = Parsed::default();
    for (index, doc_text) in split_documents(text).into_iter().enumerate() {
        let key = xxhash_rust::xxh3::xxh3_64(doc_text.as_bytes());
        let doc = match old.docs.get(&key).or_else(|| next.docs.get(&key)) {
            Some(d) => d.clone(),
            None => bounds::check(doc_text)
                .map_err(|e| FieldError::new("(document)", e.to_string()))
                .and_then(|()| parse_document(doc_text))
                .map_err(|FieldError { field, message }| InventoryError::Document {
                    path: path.into(),
                    index,
                    field,
                    message,
                })?,
        };
        for w in &doc.warnings {
            out.warnings.push(format!("{}: document {index}: {w}", path.display()));
        }
        match &doc.object {
            Object::Pod(p) => {
                out.pods.push(p.clone());
                out.pod_docs.push(index);
            }
            Object::Service(s) => out.services.push(s.clone()),
            Object::Policy(p) => out.policies.push((**p).clone()),
            Object::Rule(r) => out.rules.push((**r).clone()),
            Object::ServiceCidr(c) => out.service_cidrs.extend(c.iter().copied()),
            Object::Secret(ns, name, data) => out.secrets.push((ns.clone(), name.clone(), data.clone())),
            Object::Foreign(f) => out.foreign.push((**f).clone()),
            Object::Nothing => {}
        }
        next.docs.insert(key, doc);
    }
    Ok(out)
}

/// The documents of a YAML stream: split at `---` lines (column 0). Comments and blank
/// lines before the first separator are not a document.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    if docs.first().is_some_and(|d| d.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')))
    {
        docs.remove(0);
    }
    docs
}

fn parse_document(text: &str) -> Result<Doc, FieldError> {
    let doc_err = |e: serde_norway::Error| FieldError::new("(document)", e.to_string());
    let value: serde_norway::Value = serde_norway::from_str(text).map_err(doc_err)?;
    let mut warnings = Vec::new();
    if value.is_null() {
        return Ok(Doc { object: Object::Nothing, warnings });
    }
    let head: Head = serde_norway::from_value(value.clone()).map_err(doc_err)?;
    let object = match (head.api_version.as_str(), head.kind.as_str()) {
        ("v1", "Pod") => {
            let raw: RawPod = typed(value)?;
            let (pod, unknown) = pod(raw)?;
            for key in unknown {
                warnings.push(format!("pod {}: unknown annotation {key:?} ignored", pod.key()));
            }
            Object::Pod(pod)
        }
        ("v1", "Service") => Object::Service(service(typed(value)?)?),
        ("networking.k8s.io/v1", "ServiceCIDR") => {
            let raw: RawObject<ServiceCidrSpec> = typed(value)?;
            let mut cidrs = Vec::new();
            for (i, text) in raw.spec.cidrs.iter().enumerate() {
                let net = text.parse().map_err(|_| {
                    FieldError::new(format!("spec.cidrs[{i}]"), format!("{text:?} is not a CIDR"))
                })?;
                cidrs.push(net);
            }
            Object::ServiceCidr(cidrs)
        }
        ("v1", "Secret") => {
            let raw: RawSecret = typed(value)?;
            let (namespace, name) = name_of(&raw.metadata)?;
            Object::Secret(namespace, name, secret_data(raw)?)
        }
        ("graylane.io/v1alpha1", "TrafficPolicy") => {
            let raw: RawObject<TrafficPolicySpec> = typed(value)?;
            policy::validate_policy(&raw.spec)?;
            Object::Policy(Box::new(named(raw)?))
        }
        ("graylane.io/v1alpha1", "TrafficLabelRule") => {
            let raw: RawObject<TrafficLabelRuleSpec> = typed(value)?;
            policy::validate_rule(&raw.spec)?;
            Object::Rule(Box::new(named(raw)?))
        }
        ("graylane.io/v1alpha1", kind) => {
            return Err(FieldError::new(
                "kind",
                format!("{kind:?} is not a graylane.io/v1alpha1 kind (TrafficPolicy, TrafficLabelRule)"),
            ));
        }
        ("", _) | (_, "") => return Err(FieldError::new("apiVersion/kind", "missing")),
        (api, kind) if languages::speaks(api) => {
            let raw: RawObject<serde_norway::Value> = typed(value)?;
            let (namespace, name) = name_of(&raw.metadata)?;
            let spec = serde_json::to_value(&raw.spec).map_err(|e| FieldError::new("spec", e.to_string()))?;
            match languages::parse(api, kind, &namespace, &name, spec) {
                Some(Ok(languages::Parsed::Rule(rule))) => Object::Rule(Box::new(rule)),
                Some(Ok(languages::Parsed::Foreign(doc))) => {
                    for f in &doc.unknown {
                        warnings.push(format!("{kind} {namespace}/{name}: unknown field {f} ignored"));
                    }
                    Object::Foreign(Box::new(doc))
                }
                Some(Err(e)) => return Err(e),
                None => {
                    warnings.push(format!("{api} {kind} is not used by this source; skipped"));
                    Object::Nothing
                }
            }
        }
        (api, kind) => {
            warnings.push(format!("{api} {kind} is not used by this source; skipped"));
            Object::Nothing
        }
    };
    Ok(Doc { object, warnings })
}

/// Deserializes with the failing field's path in the error.
fn typed<T: serde::de::DeserializeOwned>(value: serde_norway::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| FieldError::new(e.path().to_string(), e.inner().to_string()))
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
    #[serde(rename = "hostIP")]
    host_ip: Option<String>,
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

/// A `v1` Secret: `data` (base64) and `stringData` (text, which wins), as the API server
/// merges them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSecret {
    metadata: Meta,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    string_data: BTreeMap<String, String>,
}

fn secret_data(raw: RawSecret) -> Result<super::accounts::SecretData, FieldError> {
    use base64::Engine as _;
    let _ = raw.kind;
    let mut out = BTreeMap::new();
    for (k, v) in raw.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|e| FieldError::new(format!("data.{k}"), format!("not base64: {e}")))?;
        out.insert(k, bytes);
    }
    for (k, v) in raw.string_data {
        out.insert(k, v.into_bytes());
    }
    Ok(super::accounts::SecretData(out))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ServiceCidrSpec {
    cidrs: Vec<String>,
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

fn name_of(meta: &Meta) -> Result<(String, String), FieldError> {
    if meta.name.is_empty() {
        return Err(FieldError::new("metadata.name", "missing"));
    }
    Ok((meta.namespace.clone().unwrap_or_else(|| "default".into()), meta.name.clone()))
}

fn ip(field: &str, text: &str) -> Result<IpAddr, FieldError> {
    text.parse().map_err(|_| FieldError::new(field.to_owned(), format!("{text:?} is not an IP address")))
}

/// A pod's IP: an address a pod can have.
fn pod_ip(field: &str, text: &str) -> Result<IpAddr, FieldError> {
    let addr = ip(field, text)?;
    match super::sanity::bad_pod_ip(addr) {
        Some(why) => Err(FieldError::new(field.to_owned(), format!("{addr} is {why}"))),
        None => Ok(addr),
    }
}

fn pod(raw: RawPod) -> Result<(Pod, Vec<String>), FieldError> {
    let (namespace, name) = name_of(&raw.metadata)?;
    let ann = annotations::parse(&raw.metadata.annotations)?;
    let mut ips = Vec::new();
    if let Some(text) = &raw.status.pod_ip {
        ips.push(pod_ip("status.podIP", text)?);
    }
    for (i, p) in raw.status.pod_ips.iter().enumerate() {
        let addr = pod_ip(&format!("status.podIPs[{i}].ip"), &p.ip)?;
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
    let host_ip = raw.status.host_ip.as_deref().map(|t| ip("status.hostIP", t)).transpose()?;
    let pod = Pod {
        namespace,
        name,
        labels: raw.metadata.labels,
        ips,
        node: raw.spec.node_name,
        host_ip,
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
            return Err(FieldError::new(format!("spec.ports[{i}].port"), "must be 1-65535"));
        }
        if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
            continue; // only TCP is captured
        }
        let target_port = match p.target_port {
            None => TargetPort::Number(p.port),
            Some(IntOrString::Int(0)) => {
                return Err(FieldError::new(format!("spec.ports[{i}].targetPort"), "must be 1-65535"));
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
    fn documents_split_at_separator_lines_and_unchanged_ones_are_not_reparsed() {
        let text = "# header\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\n";
        assert_eq!(split_documents(text).len(), 3, "{:?}", split_documents(text));
        let (mut first, mut second) = (DocCache::default(), DocCache::default());
        let p = Path::new("c.yaml");
        parse_documents_cached(p, text, &DocCache::default(), &mut first).expect("parse");
        assert_eq!(first.docs.len(), 3);
        // Poison the cached parse of `a`: a reload of the same text must reuse it.
        for doc in first.docs.values_mut() {
            if let Object::Pod(pod) = &mut doc.object
                && pod.name == "a"
            {
                pod.name = "from-cache".into();
            }
        }
        let again = parse_documents_cached(p, text, &first, &mut second).expect("parse");
        assert_eq!(again.pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["from-cache", "b"]);
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
