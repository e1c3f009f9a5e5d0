//! Pods aggregate to workloads for metric labels: `namespace/<app.kubernetes.io/name>`, else
//! `namespace/<app label>`, else the pod name without its ReplicaSet / DaemonSet suffix.

use super::Pod;

pub fn workload(pod: &Pod) -> String {
    let name = pod
        .labels
        .get("app.kubernetes.io/name")
        .or_else(|| pod.labels.get("app"))
        .cloned()
        .unwrap_or_else(|| strip_generated(&pod.name).to_owned());
    format!("{}/{name}", pod.namespace)
}

/// `web-7d9f8b6c5d-x2x9z` → `web` (Deployment), `agent-x2x9z` → `agent` (DaemonSet, Job).
fn strip_generated(name: &str) -> &str {
    let generated = |s: &str, lens: std::ops::RangeInclusive<usize>| {
        lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let Some((rest, last)) = name.rsplit_once('-') else { return name };
    if !generated(last, 5..=5) || rest.is_empty() {
        return name;
    }
    match rest.rsplit_once('-') {
        Some((base, hash)) if !base.is_empty() && generated(hash, 6..=10) => base,
        _ => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_suffixes_go() {
        assert_eq!(strip_generated("web-7d9f8b6c5d-x2x9z"), "web");
        assert_eq!(strip_generated("node-agent-x2x9z"), "node-agent");
        assert_eq!(strip_generated("db-0"), "db-0");
        assert_eq!(strip_generated("client"), "client");
    }
}
