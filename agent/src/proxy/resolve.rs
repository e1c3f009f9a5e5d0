//! Where a captured connection goes: a service VIP to one of its endpoints, a pod IP to
//! itself. (Tag-aware routing arrives with the L7 proxy.)

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::inventory::Snapshot;

use super::addrs::{OrigDstAddr, UpstreamAddr};

/// Why a destination has no upstream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("service {service} has no ready endpoints for port {port}")]
    NoEndpoints { service: String, port: u16 },
    #[error("{0} is captured but is neither a service port nor a pod")]
    Unknown(OrigDstAddr),
}

/// The resolved destination.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub upstream: UpstreamAddr,
    /// `namespace/name` of the service, if the destination was one.
    pub service: Option<String>,
    /// `namespace/name` of the endpoint pod, if known.
    pub pod: Option<String>,
}

/// Round-robin over a service's endpoints.
#[derive(Default)]
pub struct Resolver {
    next: AtomicUsize,
}

impl Resolver {
    pub fn resolve(&self, snapshot: &Snapshot, dst: OrigDstAddr) -> Result<Resolved, ResolveError> {
        if let Some((svc, port)) = snapshot.service_by_vip(dst.0) {
            let endpoints: Vec<_> = snapshot.endpoints(svc, port, dst.0.is_ipv6()).collect();
            if endpoints.is_empty() {
                return Err(ResolveError::NoEndpoints {
                    service: format!("{}/{}", svc.namespace, svc.name),
                    port: port.port,
                });
            }
            let (pod, addr) =
                &endpoints[self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len()];
            return Ok(Resolved {
                upstream: UpstreamAddr(*addr),
                service: Some(format!("{}/{}", svc.namespace, svc.name)),
                pod: Some(pod.key().0),
            });
        }
        if let Some(pod) = snapshot.pod_by_ip(dst.0.ip()) {
            return Ok(Resolved {
                upstream: UpstreamAddr(dst.0),
                service: None,
                pod: Some(pod.key().0),
            });
        }
        Err(ResolveError::Unknown(dst))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::{Pod, Service, ServicePort, TargetPort};

    fn pod(name: &str, ip: &str) -> Pod {
        Pod {
            namespace: "default".into(),
            name: name.into(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            ips: vec![ip.parse().expect("ip")],
            node: None,
            tag: None,
            tenant: None,
            redirect: true,
            fail_closed: false,
            cgroup: None,
            role: None,
            named_ports: BTreeMap::new(),
            ready: true,
        }
    }

    #[test]
    fn service_vip_round_robins_endpoints_and_pod_ip_goes_direct() {
        let svc = Service {
            namespace: "default".into(),
            name: "web".into(),
            cluster_ips: vec!["10.96.0.10".parse().expect("ip")],
            ports: vec![ServicePort {
                name: None,
                port: 80,
                target_port: TargetPort::Number(8080),
                app_protocol: None,
            }],
            selector: BTreeMap::from([("app".into(), "web".into())]),
        };
        let snap = Snapshot::new(
            vec![pod("a", "10.244.0.2"), pod("b", "10.244.0.3")],
            vec![svc],
        );
        let r = Resolver::default();
        let vip = OrigDstAddr("10.96.0.10:80".parse().expect("sa"));
        let first = r.resolve(&snap, vip).expect("endpoint");
        let second = r.resolve(&snap, vip).expect("endpoint");
        assert_ne!(first.upstream, second.upstream);
        assert_eq!(first.upstream.0.port(), 8080);
        let direct = OrigDstAddr("10.244.0.3:9000".parse().expect("sa"));
        assert_eq!(r.resolve(&snap, direct).expect("pod").upstream.0, direct.0);
        let unknown = OrigDstAddr("10.96.0.99:80".parse().expect("sa"));
        assert_eq!(
            r.resolve(&snap, unknown),
            Err(ResolveError::Unknown(unknown))
        );
    }
}
