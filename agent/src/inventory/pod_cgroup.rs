//! Where kubelet puts a pod's cgroup, from its UID and QoS class, for the cgroupfs and
//! systemd cgroup drivers (relative to the cgroup v2 root).

use std::path::Path;

/// Candidate cgroup paths of a pod, the detected driver's first.
pub fn candidates(root: &Path, uid: &str, qos: Option<&str>) -> Vec<String> {
    let qos = qos.map(str::to_ascii_lowercase);
    let tier = match qos.as_deref() {
        Some("burstable") => Some("burstable"),
        Some("besteffort") => Some("besteffort"),
        _ => None, // Guaranteed pods sit directly under kubepods
    };
    let under = uid.replace('-', "_");
    let systemd = match tier {
        Some(t) => format!("kubepods.slice/kubepods-{t}.slice/kubepods-{t}-pod{under}.slice"),
        None => format!("kubepods.slice/kubepods-pod{under}.slice"),
    };
    let cgroupfs = match tier {
        Some(t) => format!("kubepods/{t}/pod{uid}"),
        None => format!("kubepods/pod{uid}"),
    };
    if root.join("kubepods.slice").exists() { vec![systemd, cgroupfs] } else { vec![cgroupfs, systemd] }
}

/// The pod's cgroup if one of the candidates exists, else the detected driver's path (the
/// datapath retries until it appears).
pub fn resolve(root: &Path, uid: &str, qos: Option<&str>) -> String {
    let all = candidates(root, uid, qos);
    all.iter().find(|c| root.join(c).is_dir()).cloned().unwrap_or_else(|| all[0].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_layouts_for_both_drivers() {
        let uid = "5f2c1e8a-1b2c-4d3e-9f00-0123456789ab";
        let root = Path::new("/nonexistent");
        assert_eq!(
            candidates(root, uid, Some("Burstable")),
            [
                "kubepods/burstable/pod5f2c1e8a-1b2c-4d3e-9f00-0123456789ab",
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f2c1e8a_1b2c_4d3e_9f00_0123456789ab.slice",
            ]
        );
        assert_eq!(candidates(root, uid, Some("Guaranteed"))[0], format!("kubepods/pod{uid}"));
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("kubepods.slice")).expect("mkdir");
        assert!(
            resolve(dir.path(), uid, Some("BestEffort"))
                .starts_with("kubepods.slice/kubepods-besteffort.slice/")
        );
    }
}
