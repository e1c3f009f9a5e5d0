//! Removes what an earlier, killed test run left behind (its pid is dead): netns, cgroups,
//! pins. Live runs' resources are never touched.

use std::path::Path;

use crate::{cgroup::remove_tree, names};

fn dead(name: &str) -> bool {
    names::owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

pub fn sweep(cgroup_mount: &Path, bpffs: &Path) {
    if let Ok(out) = std::process::Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if dead(name) {
                let _ = std::process::Command::new("ip").args(["netns", "del", name]).output();
            }
        }
    }
    for (dir, is_cgroup) in [(cgroup_mount, true), (bpffs, false)] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !dead(&name) {
                continue;
            }
            if is_cgroup {
                remove_tree(&e.path());
            } else {
                remove_pins(&e.path());
            }
        }
    }
}

/// Removes a pin directory: links first, so programs detach.
pub fn remove_pins(dir: &Path) {
    for sub in ["links", "progs", "maps"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(dir.join(sub));
    }
    let _ = std::fs::remove_dir(dir);
}
