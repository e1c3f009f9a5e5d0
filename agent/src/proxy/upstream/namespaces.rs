//! Finding each local pod's network namespace: a process in the pod's cgroup (or one of
//! its containers' cgroups below it) whose `/proc/<pid>/ns/net` holds the pod's IP and
//! can be entered. Handles are cached per pod and released when the pod leaves the
//! inventory or changes cgroup or IPs. A recreated pod sandbox keeps its cgroup and IP but
//! gets a new namespace: a cached one is used only while the process it was found by is
//! still in it (one `stat` per connection), and is looked for again in full every second
//! and at once after a connection from it failed. A pod whose namespace cannot be found
//! is served from the node's address (looked at again after a while), and why is said.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fs::File,
    io,
    net::IpAddr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::origin::{Origin, PodNetns};
use crate::{
    inventory::{Pod, Snapshot},
    telemetry::metrics,
};

/// Cgroup directories searched for a process, at most (a pod's, then its containers').
const MAX_DIRS: usize = 64;
/// Distinct namespaces tried for one pod, at most.
const MAX_CANDIDATES: usize = 8;
/// A pod served from the node's address is looked at again after this long (not on
/// every connection).
const RETRY: Duration = Duration::from_secs(5);
/// A pod's namespace in use is looked for again after this long: one that is gone (the
/// sandbox recreated) is replaced within it.
const RECHECK: Duration = Duration::from_secs(1);

/// Why a caller's connections leave from the node's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// `--upstream-source node`.
    Configured,
    /// The caller is no pod graylane knows (NAT-captured, or gone).
    UnknownPod,
    /// The pod's cgroup is not on this node.
    NotLocal,
    /// No process in the pod's cgroup (starting, or finished).
    NoProcess,
    /// No namespace of its processes could be opened, entered, or holds the pod's IP.
    Netns,
    /// The pod shares the node's namespace (host network): the node's address is its own.
    HostNetwork,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "configured",
            Self::UnknownPod => "unknown_pod",
            Self::NotLocal => "not_local",
            Self::NoProcess => "no_process",
            Self::Netns => "netns_unavailable",
            Self::HostNetwork => "host_network",
        }
    }
}

/// The network namespaces of this node's pods.
pub struct Namespaces {
    cgroup_root: PathBuf,
    home: Arc<File>,
    home_inode: u64,
    cache: Mutex<HashMap<Arc<str>, Cached>>,
}

/// What was found for a pod, and for which cgroup and IPs (a recreated pod sandbox keeps
/// its cgroup but gets a new namespace and IP).
struct Cached {
    cgroup: String,
    ips: Vec<IpAddr>,
    found: Result<Arc<PodNetns>, Fallback>,
    /// The process the namespace was found by (its sandbox's processes end with it).
    pid: u32,
    at: Instant,
}

impl Cached {
    fn fits(&self, cgroup: &str, ips: &[IpAddr]) -> bool {
        self.cgroup == cgroup && self.ips == ips
    }
}

impl Namespaces {
    /// `cgroup_root`: where pods' `cgroup` paths are relative to. Opens the agent's own
    /// namespace (every upstream socket returns there).
    pub fn new(cgroup_root: PathBuf) -> io::Result<Self> {
        let home = File::open("/proc/thread-self/ns/net")?;
        let home_inode = home.metadata()?.ino();
        Ok(Self { cgroup_root, home: Arc::new(home), home_inode, cache: Mutex::new(HashMap::new()) })
    }

    /// Where `pod`'s upstream connections leave from.
    pub fn origin(&self, key: &Arc<str>, pod: Option<&Pod>) -> Result<Origin, Fallback> {
        let Some(pod) = pod else { return Err(Fallback::UnknownPod) };
        let Some(cgroup) = pod.cgroup.as_deref() else { return Err(Fallback::NotLocal) };
        // (namespace, the process it was found by, whether this caller takes the full look
        // that is due: it claims it, so the others meanwhile take the `stat` path)
        let held = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get_mut(key).filter(|c| c.fits(cgroup, &pod.ips)) {
                Some(c) if c.found.is_ok() => {
                    let due = c.at.elapsed() >= RECHECK;
                    if due {
                        c.at = Instant::now();
                    }
                    c.found.clone().ok().map(|ns| (ns, c.pid, due))
                }
                Some(c) if c.at.elapsed() < RETRY => return c.found.clone().map(Origin::Pod),
                _ => None,
            }
        };
        // Outside the lock: other callers' connections do not wait on /proc. Between full
        // looks, one `stat`: the process it was found by is still in it.
        let alive = held.as_ref().is_some_and(|(ns, pid, _)| {
            std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ns.inode)
        });
        if let Some((ns, _, false)) = &held
            && alive
        {
            return Ok(Origin::Pod(ns.clone()));
        }
        // The namespace still found is kept as it is (its pooled connections stay); a look
        // that fails keeps one its process is still in.
        let (found, pid) = match (self.find(key, &self.cgroup_root.join(cgroup), &pod.ips), held) {
            (Ok((ns, pid)), held) => {
                (Ok(held.map(|h| h.0).filter(|h| h.inode == ns.inode).unwrap_or(ns)), pid)
            }
            (Err(_), Some((ns, pid, _))) if alive => (Ok(ns), pid),
            (Err(why), _) => (Err(why), 0),
        };
        let cached = Cached {
            cgroup: cgroup.to_owned(),
            ips: pod.ips.clone(),
            found: found.clone(),
            pid,
            at: Instant::now(),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(key.clone(), cached);
        metrics().upstream.namespaces.set(cache.values().filter(|c| c.found.is_ok()).count() as i64);
        found.map(Origin::Pod)
    }

    /// A connection from `origin` failed with `error`: when it left from a pod's namespace
    /// and the error says that namespace has no way out (a recreated sandbox's old one has
    /// lost its interface), look for it again at the pod's next connection.
    pub fn connect_failed(&self, origin: &Origin, error: &io::Error) {
        use io::ErrorKind::{AddrNotAvailable, HostUnreachable, NetworkUnreachable};
        let Origin::Pod(ns) = origin else { return };
        if !matches!(error.kind(), NetworkUnreachable | HostUnreachable | AddrNotAvailable) {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get_mut(&ns.pod)
            && let Some(past) = Instant::now().checked_sub(RETRY.max(RECHECK))
        {
            c.at = past;
        }
    }

    /// Releases the handles of pods no longer in `snapshot` (or changed: another cgroup,
    /// other IPs).
    pub fn retain(&self, snapshot: &Snapshot) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|key, c| {
            snapshot
                .pod_by_name(key)
                .is_some_and(|p| p.cgroup.as_deref().is_some_and(|cg| c.fits(cg, &p.ips)))
        });
        metrics().upstream.namespaces.set(cache.values().filter(|c| c.found.is_ok()).count() as i64);
    }

    /// The namespaces held now, by [`Origin::key`] (pooled connections of others close).
    pub fn live(&self) -> HashSet<u64> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.values().filter_map(|c| c.found.as_ref().ok().map(|ns| ns.inode)).collect()
    }

    /// The pod's namespace: that of a process in `dir` or below it (breadth first) which
    /// holds the pod's IP — not a process that made a namespace of its own. A namespace
    /// that cannot be entered, or a socket not made in it, is not taken.
    fn find(&self, key: &Arc<str>, dir: &Path, ips: &[IpAddr]) -> Result<(Arc<PodNetns>, u32), Fallback> {
        let ip = ips.iter().find(|i| i.is_ipv4()).or_else(|| ips.first()).copied();
        let mut queue = VecDeque::from([dir.to_path_buf()]);
        let (mut dirs, mut any_process, mut host) = (0, false, false);
        let mut tried = HashSet::new();
        while let Some(dir) = queue.pop_front() {
            dirs += 1;
            if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                    any_process = true;
                    // The process may be gone by now: try the next.
                    let Ok(f) = File::open(format!("/proc/{pid}/ns/net")) else { continue };
                    let Ok(inode) = f.metadata().map(|m| m.ino()) else { continue };
                    if inode == self.home_inode {
                        host = true;
                        continue;
                    }
                    if tried.len() >= MAX_CANDIDATES || !tried.insert(inode) {
                        continue;
                    }
                    let ns = PodNetns::new(key.clone(), inode, f, self.home.clone());
                    if ns.holds(ip) {
                        return Ok((Arc::new(ns), pid));
                    }
                }
            }
            if dirs >= MAX_DIRS {
                break;
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                queue.extend(
                    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()),
                );
            }
        }
        Err(match (host, any_process) {
            (true, _) if tried.is_empty() => Fallback::HostNetwork,
            (_, true) => Fallback::Netns,
            _ => Fallback::NoProcess,
        })
    }
}
