//! The cgroup v2 hierarchy: where it is mounted, and the id of a cgroup.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use super::DatapathError;

/// The cgroup v2 directory the programs attach to: every pod cgroup lies below it.
#[derive(Clone, Debug)]
pub struct CgroupRoot {
    pub path: PathBuf,
}

impl CgroupRoot {
    /// `path` if given (checked to be cgroup v2), else the cgroup v2 mount found in
    /// `/proc/self/mountinfo`: `/sys/fs/cgroup` on unified hosts, `/sys/fs/cgroup/unified`
    /// on hybrid ones.
    pub fn resolve(path: Option<&Path>) -> Result<Self, DatapathError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => detect_mount()?,
        };
        let is_v2 = statfs(&path)
            .map_err(|errno| DatapathError::Cgroup {
                path: path.clone(),
                cause: std::io::Error::from(errno),
            })?
            .filesystem_type()
            == CGROUP2_SUPER_MAGIC;
        if !is_v2 {
            return Err(DatapathError::NotCgroup2 { path });
        }
        Ok(Self { path })
    }

    /// The id of this root cgroup.
    pub fn id(&self) -> Result<u64, DatapathError> {
        cgroup_id(&self.path)
    }

    /// The absolute path of a cgroup given relative to the root.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.path.join(relative.trim_start_matches('/'))
    }
}

/// The kernel's id of a cgroup v2 directory (its kernfs inode number), which is what
/// `bpf_get_current_ancestor_cgroup_id` returns.
pub fn cgroup_id(path: &Path) -> Result<u64, DatapathError> {
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|source| DatapathError::Cgroup { path: path.into(), cause: source })
}

fn detect_mount() -> Result<PathBuf, DatapathError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|source| DatapathError::Cgroup { path: "/proc/self/mountinfo".into(), cause: source })?;
    let mounts = cgroup2_mounts(&mountinfo);
    // Prefer the canonical location when it is v2 (unified hosts).
    mounts
        .iter()
        .find(|p| p.as_path() == Path::new("/sys/fs/cgroup"))
        .or_else(|| mounts.first())
        .cloned()
        .ok_or(DatapathError::NoCgroup2)
}

/// Mount points of every cgroup2 filesystem in a mountinfo text.
fn cgroup2_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_and_unified_mounts() {
        let hybrid = "34 25 0:29 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      35 34 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                      36 34 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_mounts(hybrid), vec![PathBuf::from("/sys/fs/cgroup/unified")]);
        let unified = "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mounts(unified), vec![PathBuf::from("/sys/fs/cgroup")]);
    }
}
