//! The standalone source: YAML files (one file or a folder of them), reloaded on change.
//! Each reload is all-or-nothing: a bad file is reported and the last good snapshot stays.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::watch;

use super::{
    InventoryError, Snapshot,
    yaml::{self, DocCache},
};

/// Reads `path` (a file, or every `*.yaml`/`*.yml` in a folder, sorted) into a snapshot.
/// One YAML text (as one file would be) into a snapshot: for fuzzing and tools.
pub fn load_str(text: &str) -> Result<Snapshot, InventoryError> {
    let parsed = yaml::parse_documents_cached(
        Path::new("<input>"),
        text,
        &DocCache::default(),
        &mut DocCache::default(),
    )?;
    Ok(Snapshot::with_policies(parsed.pods, parsed.services, parsed.policies, parsed.rules))
}

pub fn load_path(path: &Path) -> Result<Snapshot, InventoryError> {
    load_cached(path, &mut DocCache::default())
}

/// Like [`load_path`], re-parsing only documents that changed since `cache` was filled;
/// on success `cache` holds exactly the documents read now.
fn load_cached(path: &Path, cache: &mut DocCache) -> Result<Snapshot, InventoryError> {
    let mut next = DocCache::default();
    let files = files_of(path)?;
    let mut pods = Vec::new();
    let mut services = Vec::new();
    let mut policies = Vec::new();
    let mut rules = Vec::new();
    let mut seen: BTreeMap<(&'static str, String), PathBuf> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|source| InventoryError::Read { path: file.clone(), source })?;
        let parsed = yaml::parse_documents_cached(&file, &text, cache, &mut next)?;
        for w in &parsed.warnings {
            tracing::warn!("{w}");
        }
        for p in &parsed.pods {
            check_unique(&mut seen, &file, "pod", p.key().0)?;
        }
        for s in &parsed.services {
            check_unique(&mut seen, &file, "service", format!("{}/{}", s.namespace, s.name))?;
        }
        for p in &parsed.policies {
            check_unique(&mut seen, &file, "TrafficPolicy", format!("{}/{}", p.namespace, p.name))?;
        }
        for r in &parsed.rules {
            check_unique(&mut seen, &file, "TrafficLabelRule", format!("{}/{}", r.namespace, r.name))?;
        }
        pods.extend(parsed.pods);
        services.extend(parsed.services);
        policies.extend(parsed.policies);
        rules.extend(parsed.rules);
    }
    *cache = next;
    Ok(Snapshot::with_policies(pods, services, policies, rules))
}

fn check_unique(
    seen: &mut BTreeMap<(&'static str, String), PathBuf>,
    file: &Path,
    kind: &'static str,
    name: String,
) -> Result<(), InventoryError> {
    if let Some(first) = seen.get(&(kind, name.clone())) {
        return Err(InventoryError::Duplicate { path: file.into(), kind, name, first: first.clone() });
    }
    seen.insert((kind, name), file.into());
    Ok(())
}

fn files_of(path: &Path) -> Result<Vec<PathBuf>, InventoryError> {
    let meta =
        std::fs::metadata(path).map_err(|source| InventoryError::Read { path: path.into(), source })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries =
        std::fs::read_dir(path).map_err(|source| InventoryError::Read { path: path.into(), source })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

/// A watched file source publishing snapshots.
pub struct FileSource {
    path: PathBuf,
    tx: watch::Sender<Arc<Snapshot>>,
    cache: DocCache,
}

impl FileSource {
    /// Loads `path` once; fails if that first load fails.
    pub fn open(path: &Path) -> Result<(Self, watch::Receiver<Arc<Snapshot>>), InventoryError> {
        let mut cache = DocCache::default();
        let first = load_cached(path, &mut cache)?;
        let (tx, rx) = watch::channel(Arc::new(first));
        Ok((Self { path: path.to_path_buf(), tx, cache }, rx))
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
        let target = if self.path.is_dir() {
            self.path.clone()
        } else {
            self.path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
        };
        watcher.watch(&target, RecursiveMode::NonRecursive).map_err(werr)?;
        while let Ok(event) = events_rx.recv() {
            if let Err(e) = event {
                tracing::warn!(error = %e, "inventory watch error");
                continue;
            }
            // Coalesce a burst of events (editors write in several steps).
            while events_rx.recv_timeout(Duration::from_millis(5)).is_ok() {}
            self.reload();
            if self.tx.is_closed() {
                break;
            }
        }
        Ok(())
    }

    fn reload(&mut self) {
        let started = std::time::Instant::now();
        match load_cached(&self.path, &mut self.cache) {
            Ok(next) => {
                tracing::debug!(parse_ms = started.elapsed().as_millis() as u64, "inventory parsed");
                let changed = **self.tx.borrow() != next;
                if changed {
                    tracing::info!(
                        pods = next.pods.len(),
                        services = next.services.len(),
                        "inventory reloaded"
                    );
                    self.tx.send_replace(Arc::new(next));
                }
            }
            Err(e) => {
                crate::telemetry::metrics().inventory.reloads.with_label_values(&["rejected"]).inc();
                tracing::error!(error = %e, "inventory reload rejected; keeping the last good snapshot")
            }
        }
    }
}
