//! Errors of the datapath, each naming the thing it failed on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("bpffs at {path}: {cause}")]
    Bpffs { path: PathBuf, cause: std::io::Error },
    #[error("no cgroup v2 mount found in /proc/self/mountinfo; pass --cgroup-root")]
    NoCgroup2,
    #[error("cgroup {path}: {cause}")]
    Cgroup { path: PathBuf, cause: std::io::Error },
    #[error("{path} is not a cgroup v2 directory")]
    NotCgroup2 { path: PathBuf },
    #[error("parse eBPF object: {0}")]
    Object(String),
    #[error("load eBPF object: {0}")]
    Load(aya::EbpfError),
    #[error("program {program}: {cause}")]
    Program { program: &'static str, cause: aya::programs::ProgramError },
    #[error("link {path}: {message}")]
    Link { path: PathBuf, message: String },
    #[error("map {map}: {cause}")]
    Map { map: &'static str, cause: aya::maps::MapError },
    #[error("map {map} is missing from the eBPF object")]
    MissingMap { map: &'static str },
    #[error("pin {path}: {cause}")]
    Pin { path: PathBuf, cause: std::io::Error },
    #[error("pin dir {dir} is owned by another graylane agent ({holder}): {hint}")]
    Owned { dir: PathBuf, holder: String, hint: &'static str },
    #[error("name {name:?} is longer than {max} bytes")]
    NameTooLong { name: String, max: usize },
}

impl DatapathError {
    pub(crate) fn map(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |source| Self::Map { map, cause: source }
    }
}
