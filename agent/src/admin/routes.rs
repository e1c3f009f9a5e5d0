//! The admin endpoints and what they answer.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::{
    admin::{Lifecycle, lifecycle::Phase},
    datapath::{Counters, DatapathStatus, PinPaths, Records, SyncStats},
    proxy::SharedState,
    telemetry::flows::Flows,
};

/// What the inventory loop reports after each sync.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncReport {
    pub syncs: u64,
    pub last: SyncStats,
    pub unresolved_cgroups: Vec<String>,
    /// Services whose cluster IP is outside every captured range (not captured).
    pub uncaptured_services: Vec<String>,
    /// Lane routes the kernel holds ((Service port, tag, tenant) entries).
    pub kernel_lanes: usize,
    pub last_error: Option<String>,
}

/// Everything the admin API reads.
pub struct AdminContext {
    pub lifecycle: Arc<Lifecycle>,
    pub flows: Arc<Flows>,
    pub status: DatapathStatus,
    pub counters: Counters,
    pub records: Arc<Records>,
    pub pins: PinPaths,
    pub state: SharedState,
    /// Where each data lane's store account stands.
    pub enforcements: Arc<crate::stores::enforcement::Enforcements>,
    pub sync: ArcSwap<SyncReport>,
    /// Where the inventory comes from (a path, or `kubernetes`).
    pub inventory: String,
    /// The effective configuration (secrets redacted), for `/config`.
    pub config: serde_json::Value,
    pub started: std::time::SystemTime,
}

type Answer = (StatusCode, &'static str, String);

impl AdminContext {
    pub fn route(&self, method: &Method, path_and_query: &str) -> Answer {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let local_only = query.split('&').any(|kv| kv == "local=1");
        if (method, path) == (&Method::POST, "/takeover") {
            return if self.lifecycle.request_handover() {
                text(StatusCode::ACCEPTED, "handing over: no longer accepting, finishing in-flight work\n")
            } else {
                text(
                    StatusCode::CONFLICT,
                    &format!("not ready to hand over ({:?})\n", self.lifecycle.phase()),
                )
            };
        }
        if method != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET (and POST /takeover)\n");
        }
        match path {
            "/healthz" => self.health(),
            "/readyz" => match self.lifecycle.phase() {
                Phase::Ready => text(StatusCode::OK, "ready\n"),
                Phase::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "not ready: first sync pending\n"),
                Phase::Draining | Phase::HandedOver => {
                    text(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n")
                }
            },
            "/flows" => to_json(&super::flows::FlowFilter::parse(query).apply(self.flows.list())),
            "/routes" => {
                let service = super::flows::FlowFilter::parse(query).service;
                let e = &self.enforcements;
                let standing =
                    |svc: &str, rule: &crate::routing::data::DataLaneRule, eps: &[std::net::SocketAddr]| {
                        let s = e.lane(svc, rule, eps);
                        (s.as_str(), s.detail().map(str::to_owned))
                    };
                to_json(&self.state.load().routing.describe_with(service.as_deref(), &standing))
            }
            "/rules" => to_json(&self.state.load().snapshot.reports),
            "/map" => {
                let state = self.state.load();
                let services = state.routing.describe(None);
                let node = self.config["node_name"].as_str().unwrap_or("this node").to_owned();
                to_json(&super::map::build(&state, &self.flows.list(), &services, format!("node {node}")))
            }
            "/config" => to_json(&self.config),
            "/status" => self.status(),
            "/datapath" => self.datapath(),
            "/tags" => match super::tags::read(&self.pins, &self.state.load().names, local_only) {
                Ok(tags) => to_json(&tags),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
            },
            _ => text(
                StatusCode::NOT_FOUND,
                "endpoints: /healthz /readyz /status /flows[?tag=&tenant=&pod=&service=&limit=&follow=1] \
                     /tags[?local=1] /routes[?service=] /rules /config /datapath /map /ui; metrics on :15090/metrics\n",
            ),
        }
    }

    /// The metrics listener: `/metrics` in the Prometheus text format, nothing else.
    pub fn metrics(&self, method: &Method, path_and_query: &str) -> Answer {
        let path = path_and_query.split_once('?').map_or(path_and_query, |(p, _)| p);
        match (method, path) {
            (&Method::GET, "/metrics") => {
                self.observe_kernel();
                (
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    crate::telemetry::metrics().encode(),
                )
            }
            _ => text(StatusCode::NOT_FOUND, "GET /metrics\n"),
        }
    }

    /// Copies the kernel's counters and table sizes into the metrics (at scrape time).
    fn observe_kernel(&self) {
        let m = &crate::telemetry::metrics().kernel;
        match self.counters.read() {
            Ok(counters) => {
                for (reason, value) in counters {
                    m.observe(reason.name(), value);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading kernel counters for metrics"),
        }
        m.map_entries.with_label_values(&["records"]).set(self.records.len() as i64);
        m.map_entries.with_label_values(&["pending"]).set(self.records.pending_len() as i64);
    }

    /// What `graylane status` shows: version, attach state, table sizes, last sync.
    fn status(&self) -> Answer {
        let sync = self.sync.load_full();
        let uptime = self.started.elapsed().map_or(0, |d| d.as_secs());
        to_json(&json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ready": self.lifecycle.phase() == Phase::Ready,
            "phase": self.lifecycle.phase(),
            "datapath_health": *self.lifecycle.datapath(),
            "uptime_seconds": uptime,
            "inventory": self.inventory,
            "cgroup_root": self.status.cgroup_root,
            "pin_dir": self.status.pin_dir,
            "links": self.status.links,
            "maps": self.status.maps,
            "records": self.records.len(),
            "pending": self.records.pending_len(),
            "flows": self.flows.list().len(),
            "syncs": sync.syncs,
            "last_sync": sync.last,
            "last_error": sync.last_error,
            "unresolved_cgroups": sync.unresolved_cgroups,
            "uncaptured_services": sync.uncaptured_services,
            "kernel_lanes": sync.kernel_lanes,
        }))
    }

    /// Liveness: 503 while the datapath is not what this agent installed (a restart
    /// re-pins it), with what is wrong.
    fn health(&self) -> Answer {
        let health = self.lifecycle.datapath();
        if health.ok() {
            return text(StatusCode::OK, "ok\n");
        }
        text(StatusCode::SERVICE_UNAVAILABLE, &format!("datapath: {}\n", health.problems.join("; ")))
    }

    fn datapath(&self) -> Answer {
        let counters: serde_json::Map<String, serde_json::Value> = match self.counters.read() {
            Ok(c) => c.into_iter().map(|(r, v)| (r.name().to_owned(), json!(v))).collect(),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        };
        to_json(&json!({
            "status": self.status,
            "counters": counters,
            "records": self.records.len(),
            "pending": self.records.pending_len(),
            "record_count": self.records.count(),
            "refused_without_record": self.flows.refused_without_record_total(),
            "sync": *self.sync.load_full(),
            "inventory": self.inventory,
        }))
    }
}

fn text(status: StatusCode, body: &str) -> Answer {
    (status, "text/plain; charset=utf-8", body.to_owned())
}

fn to_json(value: &impl serde::Serialize) -> Answer {
    match serde_json::to_string_pretty(value) {
        Ok(body) => (StatusCode::OK, "application/json", body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}
