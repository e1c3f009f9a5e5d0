//! A serializable picture of the datapath for the admin API and tests.

use std::path::PathBuf;

use super::Hook;

#[derive(Clone, Debug, serde::Serialize)]
pub struct MapStatus {
    pub name: String,
    pub id: u32,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkStatus {
    pub hook: Hook,
    pub link_id: u32,
    pub program_id: u32,
    /// Taken over from a previous agent rather than attached by this one.
    pub adopted: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct DatapathStatus {
    pub pin_dir: PathBuf,
    pub cgroup_root: PathBuf,
    pub cgroup_id: u64,
    pub maps: Vec<MapStatus>,
    pub links: Vec<LinkStatus>,
    /// Maps whose pinned layout did not match and were recreated.
    pub replaced_maps: Vec<String>,
    /// Time from start of install to programs attached or adopted, in microseconds.
    pub install_us: u64,
}
