//! The standalone source: YAML files (one file or a folder of them), reloaded on change.
//! Each reload is all-or-nothing: a bad file is reported (once per change) and the last
//! good snapshot stays. Only writes, renames and removals of inventory files wake the
//! watcher (never its own reads), and unchanged content is not parsed again.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use notify::{
    EventKind, RecursiveMode, Watcher as _,
    event::{AccessKind, AccessMode},
};
use tokio::sync::watch;
use xxhash_rust::xxh3::Xxh3;

use super::{
    InventoryError, NodeFacts, Pod, Snapshot, bounds,
    sanity::conflicts,
    yaml::{self, DocCache},
};

/// One YAML text (as one file would be) into a snapshot: for fuzzing and tools.
pub fn load_str(text: &str) -> Result<Snapshot, InventoryError> {
    load_str_on(text, &NodeFacts::default())
}

/// [`load_str`] as the agent of a node with `node`'s facts reads it.
pub fn load_str_on(text: &str, node: &NodeFacts) -> Result<Snapshot, InventoryError> {
    let mut files = Files::default();
    files.add(Path::new("<input>"), text, &DocCache::default(), &mut DocCache::default())?;
    files.finish(node)
}

/// Reads `path` (a file, or every `*.yaml`/`*.yml` in a folder, sorted) into a snapshot.
pub fn load_path(path: &Path, node: &NodeFacts) -> Result<Snapshot, InventoryError> {
    let texts = read_all(path)?;
    load_cached(&texts, &mut DocCache::default(), node)
}

/// The inventory's files and their text.
type Texts = Vec<(PathBuf, String)>;

/// Like [`load_path`] over texts already read, re-parsing only documents that changed
/// since `cache` was filled; on success `cache` holds exactly the documents read now.
fn load_cached(texts: &Texts, cache: &mut DocCache, node: &NodeFacts) -> Result<Snapshot, InventoryError> {
    let mut next = DocCache::default();
    let mut files = Files::default();
    for (file, text) in texts {
        files.add(file, text, cache, &mut next)?;
    }
    let snapshot = files.finish(node)?;
    *cache = next;
    Ok(snapshot)
}

/// What the files hold so far, and where each object came from.
#[derive(Default)]
struct Files {
    pods: Vec<Pod>,
    /// `file: document N` of each pod.
    origins: Vec<String>,
    services: Vec<super::model::Service>,
    policies: Vec<super::policy::Named<super::policy::TrafficPolicySpec>>,
    rules: Vec<super::policy::Named<super::policy::TrafficLabelRuleSpec>>,
    service_cidrs: Vec<ipnetwork::IpNetwork>,
    secrets: super::accounts::Secrets,
    foreign: Vec<super::languages::ForeignDoc>,
    seen: BTreeMap<(&'static str, String), PathBuf>,
}

impl Files {
    fn add(
        &mut self,
        file: &Path,
        text: &str,
        old: &DocCache,
        next: &mut DocCache,
    ) -> Result<(), InventoryError> {
        let parsed = yaml::parse_documents_cached(file, text, old, next)?;
        for w in &parsed.warnings {
            tracing::warn!("{w}");
        }
        for p in &parsed.pods {
            self.unique(file, "pod", p.key().0)?;
        }
        for s in &parsed.services {
            self.unique(file, "service", format!("{}/{}", s.namespace, s.name))?;
        }
        for p in &parsed.policies {
            self.unique(file, "TrafficPolicy", format!("{}/{}", p.namespace, p.name))?;
        }
        for r in &parsed.rules {
            self.unique(file, "TrafficLabelRule", format!("{}/{}", r.namespace, r.name))?;
        }
        for f in &parsed.foreign {
            self.unique(file, f.kind, format!("{}/{}", f.namespace, f.name))?;
        }
        for (ns, name, _) in &parsed.secrets {
            self.unique(file, "Secret", format!("{ns}/{name}"))?;
        }
        for (ns, name, data) in parsed.secrets {
            self.secrets.insert((ns, name), std::sync::Arc::new(data));
        }
        self.origins.extend(parsed.pod_docs.iter().map(|i| format!("{}: document {i}", file.display())));
        self.pods.extend(parsed.pods);
        self.services.extend(parsed.services);
        self.policies.extend(parsed.policies);
        self.rules.extend(parsed.rules);
        self.service_cidrs.extend(parsed.service_cidrs);
        self.foreign.extend(parsed.foreign);
        Ok(())
    }

    fn unique(&mut self, file: &Path, kind: &'static str, name: String) -> Result<(), InventoryError> {
        if let Some(first) = self.seen.get(&(kind, name.clone())) {
            return Err(InventoryError::Duplicate { path: file.into(), kind, name, first: first.clone() });
        }
        self.seen.insert((kind, name), file.into());
        Ok(())
    }

    /// The snapshot, unless two pods claim one IP or cgroup, or a pod claims this node.
    fn finish(mut self, node: &NodeFacts) -> Result<Snapshot, InventoryError> {
        // One file can describe the whole cluster: another node's pods are routed to, but
        // their cgroups are that node's.
        for pod in &mut self.pods {
            if node.elsewhere(pod.node.as_deref()) {
                pod.cgroup = None;
            }
        }
        let refs: Vec<&Pod> = self.pods.iter().collect();
        if let Some(c) = conflicts(&refs, node).into_iter().next() {
            let named = |i: usize| format!("{} (pod {})", self.origins[i], self.pods[i].key());
            return Err(match c.second {
                Some(second) => {
                    InventoryError::Conflict { what: c.what, first: named(c.first), second: named(second) }
                }
                None => InventoryError::NodeConflict { what: c.what, origin: named(c.first) },
            });
        }
        let t = super::languages::translate(
            &mut self.pods,
            &self.services,
            self.policies,
            &self.foreign,
            node.export,
        );
        for r in t.reports.iter().filter(|r| !r.accepted || !r.unsupported.is_empty()) {
            tracing::warn!(
                kind = %r.kind, object = %format!("{}/{}", r.namespace, r.name), accepted = r.accepted,
                reason = %r.reason, message = %r.message, unsupported = ?r.unsupported,
                "rule not fully honoured"
            );
        }
        Ok(Snapshot::with_policies(self.pods, self.services, t.policies, self.rules)
            .with_service_cidrs(self.service_cidrs)
            .with_secrets(self.secrets)
            .with_reports(t.reports))
    }
}

/// Every inventory file under `path` with its text.
fn read_all(path: &Path) -> Result<Texts, InventoryError> {
    files_of(path)?
        .into_iter()
        .map(|file| {
            let read = |source| InventoryError::Read { path: file.clone(), cause: source };
            let bytes = std::fs::metadata(&file).map_err(read)?.len();
            if bytes > bounds::MAX_FILE_BYTES {
                return Err(InventoryError::FileTooLarge { path: file, bytes, max: bounds::MAX_FILE_BYTES });
            }
            let text = std::fs::read_to_string(&file).map_err(read)?;
            Ok((file, text))
        })
        .collect()
}

fn files_of(path: &Path) -> Result<Vec<PathBuf>, InventoryError> {
    let meta = std::fs::metadata(path)
        .map_err(|source| InventoryError::Read { path: path.into(), cause: source })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|source| InventoryError::Read { path: path.into(), cause: source })?;
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| is_inventory(p)).collect();
    files.sort();
    Ok(files)
}

fn is_inventory(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// A fingerprint of the inventory's content (names and bytes).
fn fingerprint(texts: &Texts) -> u64 {
    let mut h = Xxh3::new();
    for (file, text) in texts {
        h.update(file.as_os_str().as_encoded_bytes());
        h.update(&[0]);
        h.update(text.as_bytes());
        h.update(&[0]);
    }
    h.digest()
}

/// A watched file source publishing snapshots.
pub struct FileSource {
    path: PathBuf,
    node: NodeFacts,
    tx: watch::Sender<Arc<Snapshot>>,
    cache: DocCache,
    /// The content last applied, and the content last rejected (reported once).
    applied: u64,
    rejected: Option<u64>,
}

impl FileSource {
    /// Loads `path` once; fails if that first load fails.
    pub fn open(
        path: &Path,
        node: NodeFacts,
    ) -> Result<(Self, watch::Receiver<Arc<Snapshot>>), InventoryError> {
        let mut cache = DocCache::default();
        let texts = read_all(path)?;
        let first = load_cached(&texts, &mut cache, &node)?;
        let (tx, rx) = watch::channel(Arc::new(first));
        let applied = fingerprint(&texts);
        Ok((Self { path: path.to_path_buf(), node, tx, cache, applied, rejected: None }, rx))
    }

    /// Watches for changes until the receivers are gone. Runs on its own thread: inotify
    /// events arrive on a std channel.
    pub fn watch(mut self) -> Result<(), InventoryError> {
        let werr =
            |e: notify::Error| InventoryError::Watch { path: self.path.clone(), message: e.to_string() };
        let (events_tx, events_rx) = std::sync::mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |res| {
            let _ = events_tx.send(res);
        })
        .map_err(werr)?;
        // Watch the folder (a file's parent) so replace-by-rename edits are seen.
        let single = (!self.path.is_dir()).then(|| self.path.clone());
        let target = match &single {
            Some(file) => file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
            None => self.path.clone(),
        };
        watcher.watch(&target, RecursiveMode::NonRecursive).map_err(werr)?;
        let relevant = |event: &notify::Event| {
            changes(&event.kind)
                && event.paths.iter().any(|p| match &single {
                    Some(file) => p.file_name() == file.file_name(),
                    None => is_inventory(p),
                })
        };
        while let Ok(event) = events_rx.recv() {
            match event {
                Err(e) => tracing::warn!(error = %e, "inventory watch error"),
                Ok(event) if relevant(&event) => {
                    // Coalesce a burst of events (editors write in several steps); our own
                    // reads never wake us (reads are not changes).
                    while events_rx.recv_timeout(Duration::from_millis(5)).is_ok() {}
                    self.reload();
                }
                Ok(_) => {}
            }
            if self.tx.is_closed() {
                break;
            }
        }
        Ok(())
    }

    fn reload(&mut self) {
        let started = std::time::Instant::now();
        let texts = match read_all(&self.path) {
            Ok(t) => t,
            Err(e) => return self.reject(None, &e),
        };
        let print = fingerprint(&texts);
        if print == self.applied || Some(print) == self.rejected {
            return; // the same content: nothing to do, nothing new to report
        }
        match load_cached(&texts, &mut self.cache, &self.node) {
            Ok(next) => {
                tracing::debug!(parse_ms = started.elapsed().as_millis() as u64, "inventory parsed");
                self.applied = print;
                self.rejected = None;
                if **self.tx.borrow() != next {
                    tracing::info!(
                        pods = next.pods.len(),
                        services = next.services.len(),
                        "inventory reloaded"
                    );
                    self.tx.send_replace(Arc::new(next));
                }
            }
            Err(e) => self.reject(Some(print), &e),
        }
    }

    /// Reports a bad inventory once per content.
    fn reject(&mut self, print: Option<u64>, e: &InventoryError) {
        if print.is_some() && print == self.rejected {
            return;
        }
        self.rejected = print;
        crate::telemetry::metrics().inventory.reloads.with_label_values(&["rejected"]).inc();
        tracing::error!(error = %e, "inventory reload rejected; keeping the last good snapshot");
    }
}

/// Whether an event can change what the files say: writes finished, creations, renames,
/// removals. Opens and reads (ours included) cannot.
fn changes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Other => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ns: &str, ip: &str, cgroup: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, annotations: {{graylane.io/cgroup: {cgroup}}}}}\nstatus: {{podIP: {ip}}}\n"
        )
    }

    #[test]
    fn a_pod_taking_another_pods_ip_or_cgroup_is_rejected_naming_both_documents() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("a.yaml"), pod("web", "shop", "10.244.0.5", "pods/web"))
            .expect("write");
        std::fs::write(
            dir.path().join("b.yaml"),
            format!("---\n{}", pod("x", "evil", "10.244.0.9", "pods/web")),
        )
        .expect("write");
        let e = load_path(dir.path(), &NodeFacts::default()).expect_err("duplicate cgroup").to_string();
        assert!(e.contains("cgroup pods/web belongs to both"), "{e}");
        assert!(
            e.contains("b.yaml: document 0 (pod evil/x)") && e.contains("a.yaml: document 0 (pod shop/web)"),
            "{e}"
        );
        std::fs::write(dir.path().join("b.yaml"), pod("x", "evil", "10.244.0.5", "pods/x")).expect("write");
        let e = load_path(dir.path(), &NodeFacts::default()).expect_err("duplicate ip").to_string();
        assert!(e.contains("pod IP 10.244.0.5 belongs to both"), "{e}");
        let node = NodeFacts { addresses: ["10.244.0.9".parse().expect("ip")].into(), ..Default::default() };
        std::fs::write(dir.path().join("b.yaml"), pod("x", "evil", "10.244.0.9", "pods/x")).expect("write");
        let e = load_path(dir.path(), &node).expect_err("node address").to_string();
        assert!(e.contains("pod IP 10.244.0.9 is an address of this node"), "{e}");
        assert!(load_path(dir.path(), &NodeFacts::default()).is_ok());
    }

    #[test]
    fn one_file_for_two_nodes_captures_only_this_nodes_pods() {
        let dir = tempfile::tempdir().expect("tmp");
        let on = |name: &str, ip: &str, node: &str| {
            pod(name, "default", ip, "pod-x")
                .replace("status:", &format!("spec: {{nodeName: {node}}}\nstatus:"))
        };
        let text = format!("{}---\n{}", on("a", "10.244.0.10", "n1"), on("b", "10.244.1.10", "n2"));
        std::fs::write(dir.path().join("cluster.yaml"), text).expect("write");
        let n1 = NodeFacts::default().named(Some("n1".into()));
        let s = load_path(dir.path(), &n1).expect("both nodes' pods, one cgroup each");
        let cgroup = |name: &str| s.pod_by_name(&format!("default/{name}")).and_then(|p| p.cgroup.clone());
        assert_eq!((cgroup("a"), cgroup("b")), (Some("pod-x".into()), None));
        assert!(
            load_path(dir.path(), &NodeFacts::default()).is_err(),
            "without a node name both claim pod-x"
        );
    }

    #[test]
    fn roots_loopback_and_deep_documents_are_rejected_before_routing() {
        for (doc, want) in [
            (pod("a", "default", "10.244.0.5", "/"), "is the cgroup root itself"),
            (pod("a", "default", "127.0.0.1", "pods/a"), "loopback"),
            (
                format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: a, labels: {}}}\n", "[".repeat(5000)),
                "nested deeper",
            ),
        ] {
            let e = load_str(&doc).expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn reads_and_opens_are_not_changes() {
        use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};
        assert!(!changes(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!changes(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(changes(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(changes(&EventKind::Create(CreateKind::File)));
        assert!(changes(&EventKind::Modify(ModifyKind::Name(RenameMode::To))));
        assert!(changes(&EventKind::Remove(RemoveKind::File)));
    }
}
