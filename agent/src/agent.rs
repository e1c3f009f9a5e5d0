//! `graylane agent`: takes the pins, wires the datapath, the inventory, the proxy and the
//! admin API, and hands over (or drains) on the way out.

pub mod check;
mod hints;
mod kernel_flows;
mod reconcile;
pub mod store_accounts;
mod takeover;
mod watchdog;

use std::sync::Arc;

use crate::{
    admin::{self, AdminContext, Lifecycle, Phase, routes::SyncReport},
    config::{AgentConfig, InventorySource, UpstreamSource},
    datapath::{CgroupRoot, Datapath, DatapathConfig, Listeners, PinOwner, PinPaths, uninstall},
    inventory::{self, FileSource, kube::KubeConfig},
    policy::{GlobalLimits, Registry},
    proxy::{self, Acceptor, Connector, Namespaces, Proxy, ProxyState, SharedState, TcpDial},
    telemetry::{
        Telemetry,
        access_log::AccessLog,
        flows::Flows,
        trace::{Exporter, Tracer},
    },
};
use anyhow::Context as _;
use arc_swap::ArcSwap;
use reconcile::Reconciler;

/// How many recent flows the table keeps.
const FLOW_CAPACITY: usize = 4096;

/// Removes every pin (links first) and reports what went; refused while an agent runs.
pub fn run_uninstall(pins: &PinPaths) -> anyhow::Result<()> {
    let removed = uninstall(pins)?;
    tracing::info!(pins = removed.len(), dir = %pins.dir.display(), "uninstalled");
    Ok(())
}

pub async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    // A bad inventory file fails the start before the kernel is touched.
    let files = match &cfg.source {
        InventorySource::Files(path) => Some(FileSource::open(path, cfg.node_facts())?),
        InventorySource::Kube => None,
    };
    let root = CgroupRoot::resolve(cfg.cgroup_root.as_deref())?;
    // From the start: a SIGTERM that arrives while handing over is not lost.
    let mut signals = Signals::new()?;
    cfg.pins.prepare()?;
    let mut taken = takeover::take(&cfg).await?;
    let datapath = Datapath::install(&DatapathConfig {
        pins: cfg.pins.clone(),
        cgroup_root: root.clone(),
        records_max: cfg.max_connections,
    })?;
    let Datapath { sync, records, counters, listeners, events, status, .. } = datapath;
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
    let enforcements = Arc::new(crate::stores::enforcement::Enforcements::default());
    let flows = Arc::new(Flows::new(FLOW_CAPACITY));
    let lifecycle = Arc::new(Lifecycle::default());
    let links = status.links.clone();
    let ctx = Arc::new(AdminContext {
        lifecycle: lifecycle.clone(),
        flows: flows.clone(),
        status,
        counters,
        records: records.clone(),
        pins: cfg.pins.clone(),
        state: state.clone(),
        enforcements: enforcements.clone(),
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
            let kube_cfg = KubeConfig {
                node_name: cfg.node_name.clone(),
                cgroup_root: root.path.clone(),
                cgroup_annotation: cfg.cgroup_annotation,
                node: cfg.node_facts(),
            };
            inventory::kube::start(client, kube_cfg).await?
        }
    };

    // Pods' network namespaces: upstream connections leave from the caller's address.
    let namespaces = match cfg.upstream_source {
        UpstreamSource::Pod => Some(Arc::new(
            Namespaces::new(root.path.clone()).context("open the agent's own network namespace")?,
        )),
        UpstreamSource::Node => None,
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
        namespaces: namespaces.clone(),
    };
    let first = inventory.borrow_and_update().clone();
    let mut unresolved = reconciler.apply(&first);
    // Connects the proxy never saw (kernel events) join the flow table, named by the synced inventory
    // (events written while no agent ran are read now).
    {
        let (flows, state) = (flows.clone(), state.clone());
        let mut kernel = kernel_flows::KernelFlows::default();
        events.spawn(move |e| kernel.record(&flows, &state.load(), e))?;
    }

    migrate_queued_connections();
    // One listener per family, each in its own sockmap slot: the kernel drops them when
    // this process dies, which is how the connect hooks know to fail open.
    let proxy_cfg = cfg.proxy();
    let dial = Arc::new(TcpDial { mark: proxy_cfg.bypass_mark, timeout: proxy_cfg.connect_timeout });
    let checker =
        tokio::spawn(store_accounts::run(state.clone(), enforcements.clone(), proxy_cfg.bypass_mark));
    let _checker = AbortOnDrop(checker);
    let proxy = Proxy::new(proxy_cfg, state, flows, telemetry(&cfg)?, dial, namespaces, enforcements);
    let hint_socket = cfg.hint_addr().map(hints::bind).transpose()?;
    if let Some(addr) = cfg.hint_addr() {
        tracing::info!(%addr, "taking lane hints");
    }
    let hint_task = tokio::spawn(hints::run(proxy.clone(), hint_socket));
    let acceptor = Acceptor::new(proxy, records, listeners.clone());
    let mut proxy_tasks = tokio::task::JoinSet::new();
    for (slot, addr) in cfg.proxy_addrs().into_iter().enumerate() {
        let listener = match taken.listeners.get(slot) {
            Some(l) => l.clone(),
            None => Arc::new(proxy::bind_listener(addr).with_context(|| format!("bind proxy {addr}"))?),
        };
        listeners.register(slot as u32, listener.clone())?;
        tracing::info!(%addr, "proxy listening");
        proxy_tasks.spawn(acceptor.clone().serve(listener));
    }
    taken.release_standby();
    let watchdog = tokio::spawn(watchdog::run(cfg.pins.clone(), links, listeners.clone(), lifecycle.clone()));
    lifecycle.set(Phase::Ready);

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
    let owner = taken.owner;
    let draining = Draining {
        acceptor: &acceptor,
        listeners: &listeners,
        lifecycle: &lifecycle,
        timeout: cfg.drain_timeout,
    };
    let _hint_task = AbortOnDrop(hint_task);
    tokio::select! {
        () = reconcile => tracing::warn!("inventory source closed"),
        r = proxy_tasks.join_next() => tracing::error!(result = ?r, "proxy stopped"),
        () = signals.shutdown() => {
            watchdog.abort();
            draining.run(&mut proxy_tasks, owner).await;
        }
        () = lifecycle.handover_requested() => {
            watchdog.abort();
            tracing::info!("a new agent asked to take over: handing over the pins");
            draining.run(&mut proxy_tasks, owner).await;
            lifecycle.set(Phase::HandedOver);
            tracing::info!("handed over; waiting for SIGTERM");
            signals.shutdown().await;
        }
    }
    Ok(())
}

/// Ends a background task with the scope that owns it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a drain needs.
struct Draining<'a> {
    acceptor: &'a Acceptor,
    listeners: &'a Listeners,
    lifecycle: &'a Lifecycle,
    timeout: std::time::Duration,
}

impl Draining<'_> {
    /// Stops accepting (connections queued on our listener move to a new agent's through
    /// `tcp_migrate_req`; with no new agent, connects fail open), lets go of the pins, lets
    /// HTTP connections finish their requests, and waits for connections to end, up to the
    /// timeout.
    async fn run(&self, listeners: &mut tokio::task::JoinSet<()>, owner: PinOwner) {
        let started = std::time::Instant::now();
        self.lifecycle.set(Phase::Draining);
        let open = self.acceptor.active_connections();
        tracing::info!(connections = open, timeout_ms = self.timeout.as_millis() as u64, "draining");
        self.listeners.close();
        listeners.abort_all();
        while listeners.join_next().await.is_some() {}
        drop(owner);
        self.acceptor.proxy().drain();
        while self.acceptor.active_connections() > 0 && started.elapsed() < self.timeout {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::info!(
            left = self.acceptor.active_connections(),
            took_ms = started.elapsed().as_millis() as u64,
            "drained (capture stays pinned)"
        );
    }
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
fn telemetry(cfg: &AgentConfig) -> anyhow::Result<Telemetry> {
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
    Ok(Telemetry { tracer: Tracer::new(exporter, cfg.trace_sample_percent), access_log, record: cfg.record })
}

/// The Redis budgets of `global` rate limits, when `--redis` is given (connected lazily:
/// an unreachable Redis is a per-node fallback, not a failed start).
fn global_limits(cfg: &AgentConfig) -> anyhow::Result<Option<Arc<GlobalLimits>>> {
    let Some(url) = &cfg.redis else { return Ok(None) };
    let limits = GlobalLimits::new(url, cfg.redis_timeout)?;
    tracing::info!(timeout_ms = cfg.redis_timeout.as_millis() as u64, "global rate limits through redis");
    Ok(Some(Arc::new(limits)))
}

/// SIGTERM and SIGINT, listened for from the start.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn shutdown(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}
