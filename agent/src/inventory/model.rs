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

/// Everything known at one moment. Built once per change, then only read.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub pods: Vec<Arc<Pod>>,
    pub services: Vec<Arc<Service>>,
    pub policies: Vec<Named<TrafficPolicySpec>>,
    pub rules: Vec<Named<TrafficLabelRuleSpec>>,
    by_ip: HashMap<IpAddr, usize>,
    by_name: HashMap<String, usize>,
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
        Self { pods, services, policies, rules, by_ip, by_name }
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
    /// caller used (a dual-stack pod answers a v6 VIP on its v6 address).
    pub fn endpoints<'a>(
        &'a self,
        service: &'a Service,
        port: &'a ServicePort,
        v6: bool,
    ) -> impl Iterator<Item = (&'a Arc<Pod>, SocketAddr)> + 'a {
        self.pods.iter().filter(|p| p.ready && service.selects(p)).filter_map(move |pod| {
            let ip = *pod.ips.iter().find(|ip| ip.is_ipv6() == v6)?;
            let target = match &port.target_port {
                TargetPort::Number(n) => *n,
                TargetPort::Name(name) => *pod.named_ports.get(name)?,
            };
            Some((pod, SocketAddr::new(ip, target)))
        })
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.pods == other.pods
            && self.services == other.services
            && self.policies == other.policies
            && self.rules == other.rules
    }
}
