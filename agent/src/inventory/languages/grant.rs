//! Gateway API `ReferenceGrant` (`gateway.networking.k8s.io` v1beta1, v1): a namespace's
//! explicit allow list of the rules in other namespaces that may act on its objects. A
//! rule that would act on another namespace's Service without one is refused by name.

use serde::Deserialize;

use super::Report;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReferenceGrant {
    #[serde(default)]
    from: Vec<From>,
    #[serde(default)]
    to: Vec<To>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct From {
    #[serde(default)]
    group: String,
    kind: String,
    namespace: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct To {
    #[serde(default)]
    group: String,
    kind: String,
    name: Option<String>,
}

/// The core group, however it is written.
fn core(group: &str) -> &str {
    if group == "core" { "" } else { group }
}

impl ReferenceGrant {
    /// Whether a `from_kind` of `from_group` in namespace `from_ns` may act on the `to_kind`
    /// of `to_group` named `to_name` in the grant's namespace.
    pub fn allows(
        &self,
        from_group: &str,
        from_kind: &str,
        from_ns: &str,
        to_group: &str,
        to_kind: &str,
        to_name: &str,
    ) -> bool {
        self.from
            .iter()
            .any(|f| core(&f.group) == from_group && f.kind == from_kind && f.namespace == from_ns)
            && self.to.iter().any(|t| {
                core(&t.group) == core(to_group)
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n == to_name)
            })
    }
}

/// A grant is taken as written; one that can allow nothing says so.
pub(super) fn check(g: &ReferenceGrant, report: &mut Report) {
    if g.from.is_empty() || g.to.is_empty() {
        report.reject("Invalid", "spec.from and spec.to need an entry each");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_allows_exactly_its_kinds_namespaces_and_names() {
        let g: ReferenceGrant = serde_json::from_value(serde_json::json!({
            "from": [{"group": "traffic.opensergo.io", "kind": "TrafficRouter", "namespace": "shop"}],
            "to": [{"group": "", "kind": "Service", "name": "pay"}],
        }))
        .expect("grant");
        assert!(g.allows("traffic.opensergo.io", "TrafficRouter", "shop", "", "Service", "pay"));
        assert!(g.allows("traffic.opensergo.io", "TrafficRouter", "shop", "core", "Service", "pay"));
        assert!(!g.allows("traffic.opensergo.io", "TrafficRouter", "shop", "", "Service", "cart"));
        assert!(!g.allows("traffic.opensergo.io", "TrafficRouter", "attacker", "", "Service", "pay"));
        assert!(!g.allows("networking.istio.io", "VirtualService", "shop", "", "Service", "pay"));
    }
}
