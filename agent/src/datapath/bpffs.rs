//! The BPF filesystem and graylane's pin layout on it.

use std::path::{Path, PathBuf};

use nix::{
    mount::{MsFlags, mount},
    sys::statfs::{BPF_FS_MAGIC, statfs},
};

use super::DatapathError;

/// Where graylane pins its state: `<dir>/maps/*`, `<dir>/links/*`, `<dir>/progs/*`.
#[derive(Clone, Debug)]
pub struct PinPaths {
    pub dir: PathBuf,
}

impl PinPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }
    pub fn links(&self) -> PathBuf {
        self.dir.join("links")
    }
    pub fn progs(&self) -> PathBuf {
        self.dir.join("progs")
    }

    /// Mounts bpffs on the pin directory's filesystem if needed and creates the layout.
    pub fn prepare(&self) -> Result<(), DatapathError> {
        let bpffs = bpffs_of(&self.dir);
        ensure_bpffs(&bpffs)?;
        for dir in [self.maps(), self.links(), self.progs()] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| DatapathError::Pin { path: dir.clone(), cause: source })?;
        }
        Ok(())
    }
}

/// The bpffs mount point a pin directory lives on: the nearest ancestor that is bpffs, or
/// `/sys/fs/bpf` when none is mounted yet.
fn bpffs_of(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|p| statfs(*p).map(|s| s.filesystem_type() == BPF_FS_MAGIC).unwrap_or(false))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/sys/fs/bpf"))
}

/// Mounts bpffs at `path` unless it is already bpffs (what Cilium does on a bare node).
fn ensure_bpffs(path: &Path) -> Result<(), DatapathError> {
    let is_bpffs = statfs(path).map(|s| s.filesystem_type() == BPF_FS_MAGIC).unwrap_or(false);
    if is_bpffs {
        return Ok(());
    }
    std::fs::create_dir_all(path)
        .map_err(|source| DatapathError::Bpffs { path: path.into(), cause: source })?;
    mount(Some("bpf"), path, Some("bpf"), MsFlags::empty(), None::<&str>)
        .map_err(|errno| DatapathError::Bpffs { path: path.into(), cause: std::io::Error::from(errno) })?;
    tracing::info!(path = %path.display(), "mounted bpffs");
    Ok(())
}
