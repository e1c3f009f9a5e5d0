//! Metric label values with a bounded set: tags and tenants the inventory names (pods,
//! coloring rules, policies), workloads of known pods. Anything else a request carries is
//! `other`, so a caller cannot grow the metric families.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, LazyLock},
};

use crate::inventory::{Snapshot, workload};

pub const OTHER: &str = "other";
pub const UNKNOWN: &str = "unknown";

#[derive(Default)]
pub struct Labels {
    tags: HashSet<Arc<str>>,
    tenants: HashSet<Arc<str>>,
    /// Pod key → workload.
    workloads: HashMap<String, Arc<str>>,
}

impl Labels {
    pub fn build(snapshot: &Snapshot) -> Self {
        let mut tags: HashSet<Arc<str>> =
            snapshot.pods.iter().filter_map(|p| p.tag.as_deref()).map(Into::into).collect();
        tags.extend(snapshot.rules.iter().filter_map(|r| r.spec.tag.as_deref()).map(Into::into));
        for p in &snapshot.policies {
            tags.extend(p.spec.fallback.chain.iter().map(|t| t.as_str().into()));
            tags.extend(p.spec.fallback.isolated.iter().map(|t| t.as_str().into()));
            tags.extend(p.spec.resilience.mirror.iter().map(|m| m.subset.as_str().into()));
        }
        let mut tenants: HashSet<Arc<str>> =
            snapshot.pods.iter().filter_map(|p| p.tenant.as_deref()).map(Into::into).collect();
        tenants.extend(snapshot.rules.iter().filter_map(|r| r.spec.tenant.as_deref()).map(Into::into));
        let workloads = snapshot.pods.iter().map(|p| (p.key().0, workload(p).into())).collect();
        Self { tags, tenants, workloads }
    }

    /// The tag as a label value: itself when known, `other` otherwise, empty for none.
    pub fn tag(&self, tag: Option<&str>) -> Arc<str> {
        bounded(&self.tags, tag)
    }

    /// The tag, interned, if the inventory names it.
    pub fn known_tag(&self, tag: &str) -> Option<Arc<str>> {
        self.tags.get(tag).cloned()
    }

    pub fn tenant(&self, tenant: Option<&str>) -> Arc<str> {
        bounded(&self.tenants, tenant)
    }

    /// The workload of a pod key (`unknown` for callers outside the inventory).
    pub fn workload(&self, pod: Option<&str>) -> Arc<str> {
        pod.and_then(|p| self.workloads.get(p)).unwrap_or(&UNKNOWN_LABEL).clone()
    }
}

/// Shared label values (no allocation per request).
static OTHER_LABEL: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(OTHER));
static NONE_LABEL: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
static UNKNOWN_LABEL: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(UNKNOWN));

fn bounded(known: &HashSet<Arc<str>>, value: Option<&str>) -> Arc<str> {
    match value {
        Some(v) => known.get(v).unwrap_or(&OTHER_LABEL).clone(),
        None => NONE_LABEL.clone(),
    }
}
