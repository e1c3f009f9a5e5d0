//! The inventory's objects and the immutable snapshot the rest of the agent reads.

use super::policy::{Named, TrafficLabelRuleSpec, TrafficPolicySpec};
use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

/// `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey(pub String);

impl PodKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self(format!("{namespace}/{name}"))
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ips: Vec<IpAddr>,
    pub node: Option<String>,
    /// The node's address (`status.hostIP`): where that node's agent takes lane hints.
    pub host_ip: Option<IpAddr>,
    pub tag: Option<String>,
    pub tenant: Option<String>,
    /// `graylane.io/redirect` (default true).
    pub redirect: bool,
    /// `graylane.io/fail-mode: closed`.
    pub fail_closed: bool,
    /// Standalone: cgroup path relative to the cgroup root.
    pub cgroup: Option<String>,
    pub role: Option<String>,
    /// Named container ports, for services whose `targetPort` is a name.
    pub named_ports: BTreeMap<String, u16>,
    pub ready: bool,
}

impl Pod {
    pub fn key(&self) -> PodKey {
        PodKey::new(&self.namespace, &self.name)
    }

    /// On this node: its cgroup is known (standalone: annotated; Kubernetes: this node's).
    pub fn local(&self) -> bool {
        self.cgroup.is_some()
    }

    /// A ready pod `default/<name>` at `ip`, nothing else set.
    #[cfg(test)]
    pub fn test(name: &str, ip: &str) -> Self {
        Pod {
            namespace: "default".into(),
            name: name.into(),
            labels: Default::default(),
            ips: ip.parse().into_iter().collect(),
            node: None,
            host_ip: None,
            tag: None,
            tenant: None,
            redirect: true,
            fail_closed: false,
            cgroup: None,
            role: None,
            named_ports: Default::default(),
            ready: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: TargetPort,
    pub app_protocol: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// Empty for headless services.
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub selector: BTreeMap<String, String>,
}

impl Service {
    /// Whether `pod` is one of this service's endpoints.
    pub fn selects(&self, pod: &Pod) -> bool {
        !self.selector.is_empty()
            && pod.namespace == self.namespace
            && self.selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
    }
}

/// One EndpointSlice: a service's endpoints with their readiness (Kubernetes source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub namespace: String,
    pub service: String,
    /// (port name, port).
    pub ports: Vec<(Option<String>, u16)>,
    pub endpoints: Vec<SliceEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    pub ip: IpAddr,
    pub ready: bool,
    /// Still serving while terminating.
    pub serving: bool,
    /// The backing pod's name (same namespace).
    pub pod: Option<String>,
}

/// Everything known at one moment. Built once per change, then only read.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub pods: Vec<Arc<Pod>>,
    pub services: Vec<Arc<Service>>,
    pub policies: Vec<Named<TrafficPolicySpec>>,
    pub rules: Vec<Named<TrafficLabelRuleSpec>>,
    /// EndpointSlices by (namespace, service); services without any use their selector.
    pub slices: HashMap<(String, String), Vec<Slice>>,
    /// The cluster's service ranges (`networking.k8s.io/v1` `ServiceCIDR` objects).
    pub service_cidrs: Vec<ipnetwork::IpNetwork>,
    /// How each rule of another language was taken (accepted, why not, unsupported fields).
    pub reports: Vec<super::report::Report>,
    /// Secrets data lanes may name for their store accounts.
    pub secrets: super::accounts::Secrets,
    by_ip: HashMap<IpAddr, usize>,
    by_name: HashMap<String, usize>,
    /// Pods by (namespace, label key, label value): selectors start from here.
    by_label: HashMap<(String, String, String), Vec<usize>>,
}

impl Snapshot {
    pub fn with_policies(
        pods: Vec<Pod>,
        services: Vec<Service>,
        policies: Vec<Named<TrafficPolicySpec>>,
        rules: Vec<Named<TrafficLabelRuleSpec>>,
    ) -> Self {
        let pods: Vec<Arc<Pod>> = pods.into_iter().map(Arc::new).collect();
        let services: Vec<Arc<Service>> = services.into_iter().map(Arc::new).collect();
        let by_ip = pods.iter().enumerate().flat_map(|(i, p)| p.ips.iter().map(move |ip| (*ip, i))).collect();
        let by_name = pods.iter().enumerate().map(|(i, p)| (p.key().0, i)).collect();
        let mut by_label: HashMap<(String, String, String), Vec<usize>> = HashMap::new();
        for (i, p) in pods.iter().enumerate() {
            for (k, v) in &p.labels {
                by_label.entry((p.namespace.clone(), k.clone(), v.clone())).or_default().push(i);
            }
        }
        Self {
            pods,
            services,
            policies,
            rules,
            slices: HashMap::new(),
            service_cidrs: Vec::new(),
            reports: Vec::new(),
            secrets: Default::default(),
            by_ip,
            by_name,
            by_label,
        }
    }

    /// Adds the Secrets data lanes' store accounts may name.
    pub fn with_secrets(mut self, secrets: super::accounts::Secrets) -> Self {
        self.secrets = secrets;
        self
    }

    /// Adds the reports of translated rules.
    pub fn with_reports(mut self, reports: Vec<super::report::Report>) -> Self {
        self.reports = reports;
        self
    }

    /// Adds the cluster's service ranges.
    pub fn with_service_cidrs(mut self, cidrs: Vec<ipnetwork::IpNetwork>) -> Self {
        self.service_cidrs = cidrs;
        self
    }

    /// Adds EndpointSlices (the Kubernetes source's authoritative endpoints).
    pub fn with_slices(mut self, slices: Vec<Slice>) -> Self {
        for s in slices {
            self.slices.entry((s.namespace.clone(), s.service.clone())).or_default().push(s);
        }
        self
    }

    /// The pod named `namespace/name`.
    pub fn pod_by_name(&self, key: &str) -> Option<&Arc<Pod>> {
        self.by_name.get(key).map(|i| &self.pods[*i])
    }

    /// The pod that owns `ip`.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Arc<Pod>> {
        self.by_ip.get(&ip).map(|i| &self.pods[*i])
    }

    /// Ready endpoints of a service port, addressed in the family of the cluster IP the
    /// caller used (a dual-stack pod answers a v6 VIP on its v6 address). EndpointSlices
    /// decide when the source has them (serving-but-terminating endpoints only when none
    /// is ready, as kube-proxy does); otherwise the selector and pod readiness do.
    pub fn endpoints(&self, service: &Service, port: &ServicePort, v6: bool) -> Vec<(Arc<Pod>, SocketAddr)> {
        if let Some(slices) = self.slices.get(&(service.namespace.clone(), service.name.clone())) {
            return self.slice_endpoints(service, port, v6, slices);
        }
        self.selected(service)
            .filter(|p| p.ready)
            .filter_map(|pod| {
                let ip = *pod.ips.iter().find(|ip| ip.is_ipv6() == v6)?;
                let target = match &port.target_port {
                    TargetPort::Number(n) => *n,
                    TargetPort::Name(name) => *pod.named_ports.get(name)?,
                };
                Some((pod.clone(), SocketAddr::new(ip, target)))
            })
            .collect()
    }

    /// The pods a service's selector picks, starting from the pods with its first label.
    fn selected<'a>(&'a self, service: &'a Service) -> impl Iterator<Item = &'a Arc<Pod>> + 'a {
        let first = service.selector.iter().next();
        let candidates = first
            .and_then(|(k, v)| self.by_label.get(&(service.namespace.clone(), k.clone(), v.clone())))
            .map(Vec::as_slice)
            .unwrap_or_default();
        candidates.iter().map(|i| &self.pods[*i]).filter(move |p| service.selects(p))
    }

    fn slice_endpoints(
        &self,
        service: &Service,
        port: &ServicePort,
        v6: bool,
        slices: &[Slice],
    ) -> Vec<(Arc<Pod>, SocketAddr)> {
        let mut ready = Vec::new();
        let mut serving = Vec::new();
        for slice in slices {
            let Some((_, target)) = slice.ports.iter().find(|(name, _)| *name == port.name) else { continue };
            for e in slice.endpoints.iter().filter(|e| e.ip.is_ipv6() == v6) {
                let key = e.pod.as_ref().map(|p| format!("{}/{p}", service.namespace));
                // The pod carries the tag and tenant: an endpoint without one is unroutable.
                let Some(pod) = key.and_then(|k| self.pod_by_name(&k).cloned()) else { continue };
                let entry = (pod, SocketAddr::new(e.ip, *target));
                if e.ready {
                    ready.push(entry);
                } else if e.serving {
                    serving.push(entry);
                }
            }
        }
        if ready.is_empty() { serving } else { ready }
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.pods == other.pods
            && self.services == other.services
            && self.policies == other.policies
            && self.rules == other.rules
            && self.reports == other.reports
            && self.slices == other.slices
            && self.service_cidrs == other.service_cidrs
            && self.secrets == other.secrets
    }
}
