//! `graylane agent`: wires the datapath, the inventory, the proxy and the admin API.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::{
    admin::{self, AdminContext, routes::SyncReport},
    config::{AgentConfig, InventorySource},
    datapath::{CgroupRoot, Datapath, DatapathConfig, MapSync, PinPaths, uninstall},
    inventory::{self, CaptureConfig, FileSource, KernelView, Snapshot, kube::KubeConfig},
    policy::{GlobalLimits, Registry},
    proxy::{self, Connector, Proxy, ProxyState, ProxyTelemetry, SharedState},
    telemetry::{
        access_log::AccessLog,
        flows::Flows,
        trace::{Exporter, Tracer},
    },
};
use anyhow::Context as _;
use arc_swap::ArcSwap;

/// How many recent flows the table keeps.
const FLOW_CAPACITY: usize = 4096;

/// Removes every pin (links first) and reports what went.
pub fn run_uninstall(pins: &PinPaths) -> anyhow::Result<()> {
    let removed = uninstall(pins)?;
    tracing::info!(pins = removed.len(), dir = %pins.dir.display(), "uninstalled");
    Ok(())
}

pub async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    // A bad inventory file fails the start before the kernel is touched.
    let files = match &cfg.source {
        InventorySource::Files(path) => Some(FileSource::open(path)?),
        InventorySource::Kube => None,
    };
    let root = CgroupRoot::resolve(cfg.cgroup_root.as_deref())?;
    let datapath = Datapath::install(&DatapathConfig {
        pins: cfg.pins.clone(),
        cgroup_root: root.clone(),
        records_max: cfg.max_connections,
    })?;
    let Datapath { sync, records, counters, mut listeners, events, status, .. } = datapath;
    let adopted = status.links.iter().filter(|l| l.adopted).count();
    tracing::info!(
        cgroup_root = %root.path.display(),
        pin_dir = %cfg.pins.dir.display(),
        links_adopted = adopted,
        links_attached = status.links.len() - adopted,
        maps_replaced = ?status.replaced_maps,
        install_us = status.install_us,
        "datapath ready"
    );

    let state: SharedState = Arc::new(ArcSwap::from_pointee(ProxyState::default()));
    let flows = Arc::new(Flows::new(FLOW_CAPACITY));
    let ctx = Arc::new(AdminContext {
        ready: AtomicBool::new(false),
        flows: flows.clone(),
        status,
        counters,
        records: records.clone(),
        pins: cfg.pins.clone(),
        state: state.clone(),
        sync: ArcSwap::from_pointee(SyncReport::default()),
        inventory: cfg.source.to_string(),
        config: serde_json::to_value(&cfg)?,
        started: std::time::SystemTime::now(),
    });
    // Up before the inventory syncs: /readyz says 503 until then.
    admin::spawn(
        &[(cfg.admin_addr, admin::Site::Admin), (cfg.metrics_addr, admin::Site::Metrics)],
        ctx.clone(),
    )?;
    let mut inventory = match files {
        Some((source, rx)) => {
            std::thread::Builder::new().name("inventory-watch".into()).spawn(move || {
                if let Err(e) = source.watch() {
                    tracing::error!(error = %e, "inventory watch stopped");
                }
            })?;
            rx
        }
        None => {
            let client = ::kube::Client::try_default().await?;
            let kube_cfg = KubeConfig { node_name: cfg.node_name.clone(), cgroup_root: root.path.clone() };
            inventory::kube::start(client, kube_cfg).await?
        }
    };

    // Kernel and routing state first, then the listener: an adopted datapath already
    // captures, and the proxy must know the inventory before it accepts.
    let mut reconciler = Reconciler {
        sync,
        policies: Registry::new(global_limits(&cfg)?),
        capture: cfg.capture(),
        root,
        state: state.clone(),
        ctx: ctx.clone(),
    };
    let first = inventory.borrow_and_update().clone();
    let mut unresolved = reconciler.apply(&first);
    ctx.ready.store(true, Ordering::Release);
    // Bypassed connects (kernel events) join the flow table, named by the synced inventory
    // (events written while no agent ran are read now).
    {
        let (flows, state) = (flows.clone(), state.clone());
        events.spawn(move |e| crate::telemetry::kernel_flows::record(&flows, &state.load(), e))?;
    }

    migrate_queued_connections();
    // One listener per family, each in its own sockmap slot: the kernel drops them when
    // this process dies, which is how the connect hooks know to fail open.
    let proxy = Proxy::new(cfg.proxy(), records, state, flows, telemetry(&cfg)?);
    let mut proxy_tasks = tokio::task::JoinSet::new();
    for (slot, addr) in [Some(cfg.proxy_addr), cfg.proxy_addr6].into_iter().flatten().enumerate() {
        let listener = proxy::bind_listener(addr)?;
        listeners.register(slot as u32, &listener)?;
        tracing::info!(%addr, "proxy listening");
        proxy_tasks.spawn(proxy.clone().serve(listener));
    }

    let reconcile = async move {
        loop {
            let retry = tokio::time::sleep(std::time::Duration::from_secs(1));
            tokio::select! {
                changed = inventory.changed() => if changed.is_err() { break },
                () = retry, if unresolved => {},
            }
            let snapshot = inventory.borrow_and_update().clone();
            unresolved = reconciler.apply(&snapshot);
        }
    };
    tokio::select! {
        () = reconcile => tracing::warn!("inventory source closed"),
        r = proxy_tasks.join_next() => tracing::error!(result = ?r, "proxy stopped"),
        () = shutdown_signal() => {
            drain(&proxy, &mut proxy_tasks, cfg.drain_timeout).await;
        }
    }
    Ok(())
}

/// Stops accepting (connections queued on our listener move to a new agent's through
/// `tcp_migrate_req`; with no new agent, connects fail open), lets HTTP connections finish
/// their requests, and waits for connections to end, up to `timeout`.
async fn drain(proxy: &Proxy, listeners: &mut tokio::task::JoinSet<()>, timeout: std::time::Duration) {
    let started = std::time::Instant::now();
    let open = proxy.active_connections();
    tracing::info!(connections = open, timeout_ms = timeout.as_millis() as u64, "signal received: draining");
    listeners.abort_all();
    while listeners.join_next().await.is_some() {}
    proxy.drain();
    while proxy.active_connections() > 0 && started.elapsed() < timeout {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::info!(
        left = proxy.active_connections(),
        took_ms = started.elapsed().as_millis() as u64,
        "drained; exiting (capture stays pinned)"
    );
}

/// Lets a closing listener's queued connections move to another listener of its
/// `SO_REUSEPORT` group (a new agent), instead of being reset. Best effort.
fn migrate_queued_connections() {
    let path = "/proc/sys/net/ipv4/tcp_migrate_req";
    if let Err(e) = std::fs::write(path, "1") {
        tracing::warn!(error = %e, "{path}: queued connections may be reset on restart");
    }
}

/// Span export and the access log, as configured (inside the runtime).
fn telemetry(cfg: &AgentConfig) -> anyhow::Result<ProxyTelemetry> {
    let exporter = cfg.otlp_endpoint.clone().map(|endpoint| {
        tracing::info!(collector = %endpoint, sample_percent = cfg.trace_sample_percent, "exporting spans");
        Exporter::start(endpoint, cfg.node_name.clone(), Connector::new(cfg.bypass_mark, cfg.connect_timeout))
    });
    let access_log = match &cfg.access_log {
        Some(path) => {
            Some(AccessLog::open(path).with_context(|| format!("--access-log {}", path.display()))?)
        }
        None => None,
    };
    Ok(ProxyTelemetry { tracer: Tracer::new(exporter, cfg.trace_sample_percent), access_log })
}

/// The Redis budgets of `global` rate limits, when `--redis` is given (connected lazily:
/// an unreachable Redis is a per-node fallback, not a failed start).
fn global_limits(cfg: &AgentConfig) -> anyhow::Result<Option<Arc<GlobalLimits>>> {
    let Some(url) = &cfg.redis else { return Ok(None) };
    let limits = GlobalLimits::new(url, cfg.redis_timeout)?;
    tracing::info!(timeout_ms = cfg.redis_timeout.as_millis() as u64, "global rate limits through redis");
    Ok(Some(Arc::new(limits)))
}

/// Applies snapshots to the kernel maps and the proxy's routing state.
struct Reconciler {
    sync: MapSync,
    /// Rate-limit budgets and concurrency counters, kept across routing rebuilds.
    policies: Registry,
    capture: CaptureConfig,
    root: CgroupRoot,
    state: SharedState,
    ctx: Arc<AdminContext>,
}

impl Reconciler {
    /// Returns whether some local pod's cgroup is still missing (retry later).
    fn apply(&mut self, snapshot: &Arc<Snapshot>) -> bool {
        let started = std::time::Instant::now();
        let view = KernelView::build(snapshot, &self.capture, &self.root);
        let viewed = started.elapsed();
        let mut report = (*self.ctx.sync.load_full()).clone();
        match self.sync.apply(&view.state) {
            Ok(stats) => {
                report.last = stats;
                report.last_error = None;
                tracing::debug!(written = stats.written, removed = stats.removed, "kernel maps synced");
            }
            Err(e) => {
                tracing::error!(error = %e, "kernel map sync failed");
                report.last_error = Some(e.to_string());
            }
        }
        report.syncs += 1;
        report.unresolved_cgroups.clone_from(&view.unresolved);
        self.ctx.sync.store(Arc::new(report));
        let synced = started.elapsed();
        self.state.store(Arc::new(ProxyState::new(snapshot.clone(), self.sync.names(), &self.policies)));
        self.policies.tidy();
        let m = &crate::telemetry::metrics().inventory;
        m.reloads.with_label_values(&["applied"]).inc();
        m.last_applied.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        );
        for (kind, n) in [
            ("pod", snapshot.pods.len()),
            ("service", snapshot.services.len()),
            ("traffic_policy", snapshot.policies.len()),
            ("traffic_label_rule", snapshot.rules.len()),
        ] {
            m.objects.with_label_values(&[kind]).set(n as i64);
        }
        tracing::debug!(
            view_ms = viewed.as_millis() as u64,
            sync_ms = (synced - viewed).as_millis() as u64,
            routing_ms = (started.elapsed() - synced).as_millis() as u64,
            "snapshot applied"
        );
        !view.unresolved.is_empty()
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
