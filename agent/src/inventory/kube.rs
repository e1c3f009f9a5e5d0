//! The Kubernetes source (`graylane agent --kube`): reflectors on Pods, Services,
//! EndpointSlices, TrafficPolicies and TrafficLabelRules (and the other rule languages'
//! kinds the cluster serves), folded into the same immutable
//! [`Snapshot`] the file source makes. Watch expiry (410) relists, dropped connections
//! retry with backoff (kube-runtime), bookmarks are requested; readiness waits for the
//! first full sync of every resource. An invalid object is skipped and reported, never
//! fatal.

mod convert;
mod languages;

use std::{collections::HashSet, path::PathBuf, sync::Arc, time::Duration};

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::{
    core::v1::{Pod as KPod, Secret as KSecret, Service as KService},
    discovery::v1::EndpointSlice,
    networking::v1::ServiceCIDR,
};
use kube::{
    Api, Client, Resource,
    api::ListParams,
    runtime::{
        WatchStreamExt as _,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::sync::{Notify, watch};

use super::{
    InventoryError, Snapshot,
    policy::{TrafficLabelRule, TrafficPolicy},
};

/// Where the agent runs, for deciding which pods are local.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// `spec.nodeName` of this node's pods (`NODE_NAME`).
    pub node_name: Option<String>,
    /// The cgroup v2 root, to find local pods' cgroups.
    pub cgroup_root: PathBuf,
    /// Honor `graylane.io/cgroup` (clusters without kubelet's layout, tests).
    pub cgroup_annotation: bool,
    /// Addresses no pod may claim.
    pub node: super::NodeFacts,
}

struct Stores {
    pods: Store<KPod>,
    services: Store<KService>,
    slices: Store<EndpointSlice>,
    policies: Store<TrafficPolicy>,
    rules: Store<TrafficLabelRule>,
    /// Data lanes' store accounts: Secrets labelled `graylane.io/data-account` (the agent
    /// reads no other Secret).
    secrets: Store<KSecret>,
    /// `None` when the API server does not serve ServiceCIDR (before Kubernetes 1.33).
    service_cidrs: Option<Store<ServiceCIDR>>,
    /// The other rule languages' kinds this cluster serves.
    languages: Vec<(kube::api::ApiResource, Store<kube::api::DynamicObject>)>,
}

/// Starts the reflectors; resolves once every resource has been listed, with the first
/// snapshot in the receiver.
pub async fn start(
    client: Client,
    cfg: KubeConfig,
) -> Result<watch::Receiver<Arc<Snapshot>>, InventoryError> {
    let changed = Arc::new(Notify::new());
    let cidr_api = Api::<ServiceCIDR>::all(client.clone());
    // Not served (before Kubernetes 1.33) or not allowed: without them. Anything else (the
    // API server busy, a dropped connection) is passing: the watcher retries.
    let service_cidrs = match cidr_api.list(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {
            tracing::warn!(
                error = %status,
                "ServiceCIDR objects are not available: capturing --service-cidr ranges, or every \
                 Service cluster IP when none is given"
            );
            None
        }
        Ok(_) | Err(_) => Some(reflect(cidr_api, &changed)),
    };
    let languages = languages::served(&client)
        .await
        .into_iter()
        .map(|ar| {
            let api = Api::<kube::api::DynamicObject>::all_with(client.clone(), &ar);
            let store = reflect_dynamic(api, &ar, &changed);
            (ar, store)
        })
        .collect();
    let status_client = client.clone();
    let stores = Stores {
        service_cidrs,
        languages,
        pods: reflect(Api::<KPod>::all(client.clone()), &changed),
        services: reflect(Api::<KService>::all(client.clone()), &changed),
        slices: reflect(Api::<EndpointSlice>::all(client.clone()), &changed),
        policies: reflect(Api::<TrafficPolicy>::all(client.clone()), &changed),
        secrets: reflect_labelled(Api::<KSecret>::all(client.clone()), DATA_ACCOUNT_LABEL, &changed),
        rules: reflect(Api::<TrafficLabelRule>::all(client), &changed),
    };
    tracing::info!("waiting for the first full sync of pods, services, endpointslices and graylane objects");
    let synced = async {
        stores.pods.wait_until_ready().await?;
        stores.services.wait_until_ready().await?;
        stores.slices.wait_until_ready().await?;
        stores.policies.wait_until_ready().await?;
        stores.rules.wait_until_ready().await?;
        stores.secrets.wait_until_ready().await?;
        for (_, s) in &stores.languages {
            s.wait_until_ready().await?;
        }
        match &stores.service_cidrs {
            Some(s) => s.wait_until_ready().await,
            None => Ok(()),
        }
    };
    synced.await.map_err(|e| InventoryError::Watch { path: "kubernetes".into(), message: e.to_string() })?;
    let mut reported = HashSet::new();
    let first = build(&stores, &cfg, &mut reported);
    tracing::info!(pods = first.pods.len(), services = first.services.len(), "kubernetes inventory synced");
    let (tx, rx) = watch::channel(Arc::new(first));
    tokio::spawn(async move {
        // HTTPRoute status follows the published snapshot: readiness and routing never wait
        // on the API server's answers to status writes.
        let first = tx.borrow().clone();
        languages::write_status(&status_client, &stores.languages, &first.reports).await;
        loop {
            changed.notified().await;
            // Coalesce a burst of events (a rollout touches pods, slices, services).
            tokio::time::sleep(Duration::from_millis(5)).await;
            let next = build(&stores, &cfg, &mut reported);
            if **tx.borrow() != next {
                let reports_changed = next.reports != tx.borrow().reports;
                let next = Arc::new(next);
                tx.send_replace(next.clone());
                if reports_changed {
                    languages::write_status(&status_client, &stores.languages, &next.reports).await;
                }
            }
            if tx.is_closed() {
                break;
            }
        }
    });
    Ok(rx)
}

/// The label a Secret carries to be read as a data lane's store account.
pub const DATA_ACCOUNT_LABEL: &str = "graylane.io/data-account";

/// A reflector for `api` that wakes `changed` on every event.
fn reflect<K>(api: Api<K>, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    reflect_with(api, watcher::Config::default(), changed)
}

/// A reflector for the objects of `api` that carry `label`.
fn reflect_labelled<K>(api: Api<K>, label: &str, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    reflect_with(api, watcher::Config::default().labels(label), changed)
}

fn reflect_with<K>(api: Api<K>, config: watcher::Config, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    tokio::spawn(drive(stream, kind, changed.clone()));
    reader
}

/// A reflector over a kind known at run time.
fn reflect_dynamic(
    api: Api<kube::api::DynamicObject>,
    ar: &kube::api::ApiResource,
    changed: &Arc<Notify>,
) -> Store<kube::api::DynamicObject> {
    let writer = reflector::store::Writer::new(ar.clone());
    let reader = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tokio::spawn(drive(stream, ar.kind.clone(), changed.clone()));
    reader
}

async fn drive<S, K>(stream: S, kind: String, changed: Arc<Notify>)
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(_) => changed.notify_one(),
            Err(e) => tracing::warn!(%kind, error = %e, "watch error; retrying"),
        }
    }
}

/// A snapshot of what the stores hold. Invalid objects are skipped and reported once per
/// version (`reported` remembers them across rebuilds).
fn build(stores: &Stores, cfg: &KubeConfig, reported: &mut HashSet<String>) -> Snapshot {
    let mut report = |e: convert::Invalid| {
        if reported.insert(format!("{}@{}", e.object, e.version)) {
            tracing::warn!(object = %e.object, field = %e.field, "{}; object skipped", e.message);
        }
    };
    let ranked: Vec<convert::Ranked> =
        stores.pods.state().iter().filter_map(|p| convert::pod(p, cfg).map_err(&mut report).ok()).collect();
    let ranks: Vec<(bool, i64)> = ranked.iter().map(|(_, r)| *r).collect();
    let mut pods: Vec<super::Pod> = ranked.into_iter().map(|(p, _)| p).collect();
    let resolved = super::sanity::resolve(&mut pods, |i| ranks[i], &cfg.node);
    let services: Vec<super::model::Service> = stores
        .services
        .state()
        .iter()
        .filter_map(|s| convert::service(s).map_err(&mut report).ok())
        .collect();
    let slices = stores.slices.state().iter().filter_map(|s| convert::slice(s)).collect();
    let policies: Vec<_> =
        stores.policies.state().iter().filter_map(|p| convert::policy(p).map_err(&mut report).ok()).collect();
    let mut rules: Vec<_> =
        stores.rules.state().iter().filter_map(|r| convert::rule(r).map_err(&mut report).ok()).collect();
    let (foreign, foreign_rules) = languages::parse(&stores.languages, &mut report);
    rules.extend(foreign_rules);
    for r in resolved {
        if reported.insert(r.clone()) {
            tracing::warn!("{r}");
        }
    }
    let cidrs = stores
        .service_cidrs
        .iter()
        .flat_map(|s| s.state())
        .flat_map(|c| c.spec.as_ref().and_then(|s| s.cidrs.clone()).unwrap_or_default())
        .filter_map(|text| text.parse().ok())
        .collect();
    let t = super::languages::translate(&mut pods, &services, policies, &foreign, cfg.node.export);
    for r in t.reports.iter().filter(|r| !r.accepted || !r.unsupported.is_empty()) {
        if reported.insert(format!("{r:?}")) {
            tracing::warn!(
                kind = %r.kind, object = %format!("{}/{}", r.namespace, r.name), accepted = r.accepted,
                reason = %r.reason, message = %r.message, unsupported = ?r.unsupported,
                "rule not fully honoured"
            );
        }
    }
    let secrets = stores
        .secrets
        .state()
        .iter()
        .filter(|s| s.metadata.labels.as_ref().is_some_and(|l| l.contains_key(DATA_ACCOUNT_LABEL)))
        .filter_map(|s| convert::secret(s))
        .collect();
    Snapshot::with_policies(pods, services, t.policies, rules)
        .with_secrets(secrets)
        .with_slices(slices)
        .with_service_cidrs(cidrs)
        .with_reports(t.reports)
}
