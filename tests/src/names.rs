//! Unique, short names for a sandbox's kernel objects. The test run's pid is in every name,
//! so a later run can tell leftovers of a dead run from a live one.

use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Prefix of every netns, cgroup and pin dir a sandbox creates.
pub const PREFIX: &str = "glt";

#[derive(Clone, Debug)]
pub struct Names {
    /// `glt<pid>x<n>`.
    pub id: String,
}

impl Names {
    pub fn fresh() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self { id: format!("{PREFIX}{}x{n}", std::process::id()) }
    }
    pub fn node_netns(&self) -> String {
        format!("{}-node", self.id)
    }
    pub fn pod_netns(&self, index: usize) -> String {
        format!("{}-p{index}", self.id)
    }
    /// Host-side veth of pod `index` (at most 15 characters).
    pub fn veth(&self, index: usize) -> String {
        let n = self.id.trim_start_matches(PREFIX);
        let mut name = format!("v{n}p{index}");
        name.truncate(15);
        name
    }
}

/// The pid a name was made by, if it is one of ours.
pub fn owner_pid(name: &str) -> Option<i32> {
    name.strip_prefix(PREFIX)?.split('x').next()?.parse().ok()
}
