//! What no inventory may say, whichever source it comes from: two pods on one IP or one
//! cgroup, a pod cgroup inside another's, a pod on one of this node's own addresses. Each
//! would hand one pod's identity, tenant and lane to another (or capture the node's own
//! traffic). The file source rejects such a reload naming both documents; the Kubernetes
//! source keeps the pod that owns the IP by phase and age and reports the other.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
};

use super::Pod;

/// What this node is: addresses no pod may claim (its interfaces', the proxy's); and how
/// its agent reads the cluster's rules.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub addresses: BTreeSet<IpAddr>,
    /// This node's name (`--node-name`): a pod whose `spec.nodeName` names another node
    /// runs there, and its cgroup is not this node's.
    pub name: Option<String>,
    /// Who sees an Istio rule without `exportTo` (`--rules-default-export`).
    pub export: super::languages::Export,
}

impl NodeFacts {
    /// This network namespace's interface addresses, plus `extra` (the proxy's).
    pub fn read(extra: &[IpAddr]) -> Self {
        let mut addresses: BTreeSet<IpAddr> = extra.iter().copied().collect();
        match nix::ifaddrs::getifaddrs() {
            Ok(ifs) => addresses.extend(ifs.filter_map(|i| {
                let a = i.address?;
                a.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })),
            Err(e) => tracing::warn!(error = %e, "cannot list this node's addresses"),
        }
        Self { addresses, name: None, export: Default::default() }
    }

    /// The same facts for the node called `name`.
    pub fn named(mut self, name: Option<String>) -> Self {
        self.name = name;
        self
    }

    pub fn exporting(mut self, export: super::languages::Export) -> Self {
        self.export = export;
        self
    }

    /// Whether a pod scheduled on `node` runs somewhere else.
    pub fn elsewhere(&self, node: Option<&str>) -> bool {
        matches!((self.name.as_deref(), node), (Some(me), Some(there)) if me != there)
    }
}

/// An address no pod can have: loopback, unspecified, multicast, broadcast. `None` if fine.
pub fn bad_pod_ip(ip: IpAddr) -> Option<&'static str> {
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_loopback() {
        Some("a loopback address (every pod's loopback traffic would be captured)")
    } else if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_multicast() || broadcast {
        Some("a multicast or broadcast address")
    } else {
        None
    }
}

/// A cgroup path relative to the root, normalized (`a//b/` → `a/b`); `None` for the root
/// itself (every process under the root would be this pod).
pub fn normalize_cgroup(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Two pods (indices) that may not both stand, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub first: usize,
    /// The other pod; `None` when the pod conflicts with the node itself.
    pub second: Option<usize>,
    /// What is claimed twice.
    pub claim: Claim,
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    Ip(IpAddr),
    Cgroup,
}

/// The Kubernetes source's way out of a conflict: the claim stays with the pod that ranks
/// higher (running before not, then the newer: an IP reused by a new pod is the new pod's),
/// and is taken from the other. Returns what was resolved, for the log.
pub fn resolve(pods: &mut [Pod], rank: impl Fn(usize) -> (bool, i64), node: &NodeFacts) -> Vec<String> {
    let mut reports = Vec::new();
    // Each pass takes at least one claim away; claims are finite.
    for _ in 0..pods.len() * 4 + 1 {
        let found = conflicts(&pods.iter().collect::<Vec<_>>(), node);
        let Some(c) = found.into_iter().next() else { break };
        let loser = match c.second {
            Some(second) if rank(second) < rank(c.first) => second,
            Some(_) | None => c.first,
        };
        let loser_pod = &mut pods[loser];
        match c.claim {
            Claim::Ip(ip) => loser_pod.ips.retain(|x| *x != ip),
            Claim::Cgroup => loser_pod.cgroup = None,
        }
        reports.push(format!("{}: not given to pod {}", c.what, loser_pod.key()));
    }
    reports
}

/// Every conflict among `pods` (`first` is always the earlier index).
pub fn conflicts(pods: &[&Pod], node: &NodeFacts) -> Vec<Conflict> {
    let mut out = Vec::new();
    let mut by_ip: HashMap<IpAddr, usize> = HashMap::new();
    for (i, p) in pods.iter().enumerate() {
        for ip in &p.ips {
            if node.addresses.contains(ip) {
                let what = format!("pod IP {ip} is an address of this node");
                out.push(Conflict { first: i, second: None, claim: Claim::Ip(*ip), what });
            } else if let Some(j) = by_ip.insert(*ip, i).filter(|j| *j != i) {
                let what = format!("pod IP {ip} belongs to both");
                out.push(Conflict { first: j, second: Some(i), claim: Claim::Ip(*ip), what });
            }
        }
    }
    let mut by_cgroup: HashMap<String, usize> = HashMap::new();
    let cgroups: Vec<(usize, String)> = pods
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, normalize_cgroup(p.cgroup.as_deref()?)?)))
        .collect();
    for (i, path) in &cgroups {
        if let Some(j) = by_cgroup.insert(path.clone(), *i) {
            let what = format!("cgroup {path} belongs to both");
            out.push(Conflict { first: j, second: Some(*i), claim: Claim::Cgroup, what });
        }
    }
    for (i, path) in &cgroups {
        let ancestors = path.match_indices('/').map(|(at, _)| &path[..at]);
        for outer in ancestors {
            if let Some(j) = by_cgroup.get(outer) {
                // The inner pod keeps its cgroup; the outer one is the suspect.
                out.push(Conflict {
                    first: *i,
                    second: Some(*j),
                    claim: Claim::Cgroup,
                    what: format!(
                        "cgroup {path} is inside cgroup {outer} (the outer pod would take the inner one's processes)"
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, cgroup: Option<&str>) -> Pod {
        Pod { cgroup: cgroup.map(Into::into), ..Pod::test(name, ip) }
    }

    #[test]
    fn duplicates_nesting_and_node_addresses_conflict() {
        let node = NodeFacts { addresses: ["10.200.0.1".parse().expect("ip")].into(), ..Default::default() };
        let (a, b) = (pod("a", "10.244.0.1", Some("pods/a")), pod("b", "10.244.0.1", Some("pods/a/")));
        let c = pod("c", "10.244.0.3", Some("pods/a/inner"));
        let d = pod("d", "10.200.0.1", Some("pods/d"));
        let e = pod("e", "10.244.0.5", Some("pods/a-x"));
        let found = conflicts(&[&a, &b, &c, &d, &e], &node);
        let whats: Vec<&str> = found.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "pod IP 10.244.0.1 belongs to both",
                "pod IP 10.200.0.1 is an address of this node",
                "cgroup pods/a belongs to both",
                "cgroup pods/a/inner is inside cgroup pods/a (the outer pod would take the inner one's processes)",
            ]
        );
        assert_eq!((found[0].first, found[0].second), (0, Some(1)));
        // Kubernetes: the running, newer pod keeps the IP; the node's address goes to nobody.
        let mut pods = vec![a.clone(), b.clone(), d.clone()];
        let reports = resolve(&mut pods, |i| [(true, 1), (true, 2), (true, 3)][i], &node);
        assert_eq!(reports.len(), 3, "{reports:?}");
        assert!(pods[0].ips.is_empty() && pods[1].ips.len() == 1 && pods[2].ips.is_empty(), "{pods:?}");
        assert!(pods[0].cgroup.is_none() && pods[1].cgroup.is_some());
        assert!(conflicts(&[&a, &e], &node).is_empty(), "pods/a-x is not inside pods/a");
        assert_eq!(conflicts(&[&e, &c, &a], &node).len(), 1, "pods/a/inner in pods/a, whatever the order");
    }

    #[test]
    fn roots_and_impossible_addresses_are_named() {
        for root in ["", "/", ".", "./", "//"] {
            assert_eq!(normalize_cgroup(root), None, "{root:?}");
        }
        assert_eq!(normalize_cgroup("/kubepods//pod1/").as_deref(), Some("kubepods/pod1"));
        for bad in ["127.0.0.1", "::1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "ff02::1"] {
            assert!(bad_pod_ip(bad.parse().expect("ip")).is_some(), "{bad}");
        }
        assert!(bad_pod_ip("10.244.0.1".parse().expect("ip")).is_none());
    }
}
