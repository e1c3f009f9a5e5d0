//! Who is calling: the pod whose cgroup contains the current task.

use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;
use graylane_common::{MAX_CGROUP_DEPTH, PodEntry};

use crate::maps::PODS;

/// The pod cgroup that is the current task's cgroup or one of its ancestors, and its entry.
///
/// The identity comes from the kernel's cgroup of the calling task, never from anything
/// the pod controls (source address, headers). Containers live in child cgroups of the
/// pod cgroup, so the walk goes from the root down and stops at the first known pod.
#[inline(always)]
pub fn current_pod() -> Option<(u64, PodEntry)> {
    let mut level = 1;
    while level <= MAX_CGROUP_DEPTH {
        // SAFETY: helper without pointer arguments.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if id == 0 {
            return None;
        }
        // SAFETY: the value is copied out before the map can change it.
        if let Some(entry) = unsafe { PODS.get(&id) } {
            return Some((id, *entry));
        }
        level += 1;
    }
    None
}
