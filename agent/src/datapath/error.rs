//! Errors of the datapath, each naming the thing it failed on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("bpffs at {path}: {source}")]
    Bpffs { path: PathBuf, source: std::io::Error },
    #[error("no cgroup v2 mount found in /proc/self/mountinfo; pass --cgroup-root")]
    NoCgroup2,
    #[error("cgroup {path}: {source}")]
    Cgroup { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a cgroup v2 directory")]
    NotCgroup2 { path: PathBuf },
    #[error("parse eBPF object: {0}")]
    Object(String),
    #[error("load eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("program {program}: {source}")]
    Program { program: &'static str, source: aya::programs::ProgramError },
    #[error("link {path}: {message}")]
    Link { path: PathBuf, message: String },
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: aya::maps::MapError },
    #[error("map {map} is missing from the eBPF object")]
    MissingMap { map: &'static str },
    #[error("pin {path}: {source}")]
    Pin { path: PathBuf, source: std::io::Error },
    #[error("name {name:?} is longer than {max} bytes")]
    NameTooLong { name: String, max: usize },
}

impl DatapathError {
    pub(crate) fn map(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |source| Self::Map { map, source }
    }
}
