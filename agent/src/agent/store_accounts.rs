//! The store-account checker: asks each data store, as each lane's account, what that
//! account can reach ([`crate::stores::probe`]) — every endpoint of the store, at start,
//! whenever the inventory changes the lanes, accounts or endpoints, every five minutes
//! (grants change), and after an answer that was not store-enforced again one second
//! later, doubling up to ten seconds. The
//! answers go to [`Enforcements`] (read by the proxy and `/routes`) and to the
//! `graylane_data_lane_store_enforced` gauge.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{
    proxy::{SharedState, connect},
    routing::data::DataLaneRule,
    stores::{
        enforcement::{Checked, Enforcements, Key, fingerprint},
        probe::{self, Verdict},
    },
    telemetry::metrics,
    vocab::UpstreamAddr,
};

/// A store-enforced answer is asked again after this.
const RECHECK: Duration = Duration::from_secs(300);
/// Any other answer is asked again after this, doubled for each such answer in a row…
const RETRY: Duration = Duration::from_secs(1);
/// …up to this.
const RETRY_MAX: Duration = Duration::from_secs(10);
/// One probe's connection, start to verdict.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Probes at once.
const CONCURRENT: usize = 8;

/// What to ask: (key, the lane's rule, the account's fingerprint, protocol).
#[derive(Clone)]
struct Target {
    key: Key,
    rule: Arc<DataLaneRule>,
    account: u64,
}

fn targets(state: &SharedState) -> Vec<Target> {
    let st = state.load();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for svc in st.routing.data_stores() {
        let Some(data) = &svc.data else { continue };
        let endpoints = svc.endpoint_addrs();
        for rule in data.lanes() {
            let Some(account) = rule.credentials() else { continue };
            for e in &endpoints {
                let key: Key = (svc.name.clone(), rule.lane.clone(), *e);
                if seen.insert(key.clone()) {
                    out.push(Target { key, rule: rule.clone(), account: fingerprint(account) });
                }
            }
        }
    }
    out
}

/// One probe against one endpoint, from the node (its connection marked: never captured).
pub async fn ask(rule: &DataLaneRule, endpoint: SocketAddr, mark: u32) -> Verdict {
    let Some(mut probe) = probe::probe(rule) else {
        return Verdict::RewriteOnly("the lane names no usable store account".into());
    };
    let run = async {
        let mut s = connect(UpstreamAddr(endpoint), mark, PROBE_TIMEOUT)
            .await
            .map_err(|e| format!("the store could not be reached at {endpoint}: {e}"))?;
        let (mut input, mut out) = (BytesMut::with_capacity(4096), BytesMut::new());
        probe.start(&mut out);
        loop {
            if !out.is_empty() {
                s.write_all(&out).await.map_err(|e| format!("writing to the store: {e}"))?;
                out.clear();
            }
            let n = s.read_buf(&mut input).await.map_err(|e| format!("reading from the store: {e}"))?;
            if n == 0 {
                return Err("the store closed the connection before answering".to_owned());
            }
            match probe.read(&mut input, &mut out) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => return Err(format!("the store's answer could not be read: {e}")),
            }
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(Ok(v)) => v,
        Ok(Err(why)) => Verdict::RewriteOnly(why),
        Err(_) => {
            Verdict::RewriteOnly(format!("the store at {endpoint} did not answer within {PROBE_TIMEOUT:?}"))
        }
    }
}

pub async fn run(state: SharedState, enforcements: Arc<Enforcements>, mark: u32) {
    let mut checked: HashMap<Key, Checked> = HashMap::new();
    let mut published = false;
    let mut labels = HashSet::new();
    loop {
        let targets = targets(&state);
        let wanted: HashSet<&Key> = targets.iter().map(|t| &t.key).collect();
        let before = checked.len();
        checked.retain(|k, _| wanted.contains(k));
        let mut changed = checked.len() != before;
        let due: Vec<Target> = targets
            .iter()
            .filter(|t| match checked.get(&t.key) {
                None => true,
                Some(c) if c.account != t.account => true,
                Some(c) => {
                    let every = if c.verdict == Verdict::StoreEnforced { RECHECK } else { retry(c.misses) };
                    c.at.elapsed() >= every
                }
            })
            .cloned()
            .collect();
        let answers: Vec<(Key, Verdict, u64)> = futures::stream::iter(due)
            .map(|t: Target| async move {
                let verdict = ask(&t.rule, t.key.2, mark).await;
                if let Verdict::RewriteOnly(why) = &verdict {
                    tracing::warn!(service = %t.key.0, lane = %t.key.1, endpoint = %t.key.2, %why, "data lane is rewrite-only");
                }
                (t.key, verdict, t.account)
            })
            .buffer_unordered(CONCURRENT)
            .collect()
            .await;
        for (k, verdict, account) in answers {
            let misses = match (&verdict, checked.get(&k)) {
                (Verdict::StoreEnforced, _) => 0,
                (_, Some(o)) if o.account == account => o.misses.saturating_add(1),
                _ => 1,
            };
            let c = Checked { verdict, account, at: Instant::now(), misses };
            let was = checked.get(&k).map(|o| o.verdict.clone());
            if was.as_ref() != Some(&c.verdict) {
                changed = true;
                if c.verdict == Verdict::StoreEnforced {
                    tracing::info!(service = %k.0, lane = %k.1, endpoint = %k.2, "data lane is store-enforced");
                }
            }
            checked.insert(k, c);
        }
        if changed || !published {
            enforcements.publish(checked.clone());
            published = true;
        }
        labels = gauges(&state, &enforcements, labels);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The wait before asking again after `misses` answers in a row that were not
/// store-enforced.
fn retry(misses: u32) -> Duration {
    RETRY.saturating_mul(1 << misses.saturating_sub(1).min(4)).min(RETRY_MAX)
}

/// `graylane_data_lane_store_enforced` per (store, lane): 1 where every endpoint is;
/// series of lanes that went are removed. Returns the label sets now present.
fn gauges(
    state: &SharedState,
    enforcements: &Enforcements,
    before: HashSet<[String; 3]>,
) -> HashSet<[String; 3]> {
    let st = state.load();
    let g = &metrics().data.store_enforced;
    let mut now = HashSet::new();
    for svc in st.routing.data_stores() {
        let Some(data) = &svc.data else { continue };
        let endpoints = svc.endpoint_addrs();
        for rule in data.lanes() {
            let v = enforcements.lane(&svc.name, rule, &endpoints)
                == crate::stores::enforcement::Enforcement::StoreEnforced;
            let labels = [svc.name.to_string(), rule.lane.to_string(), rule.protocol.as_str().to_owned()];
            g.with_label_values(&[&labels[0], &labels[1], &labels[2]]).set(i64::from(v));
            now.insert(labels);
        }
    }
    for gone in before.difference(&now) {
        let _ = g.remove_label_values(&[&gone[0], &gone[1], &gone[2]]);
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_keeps_failing_is_asked_less_often() {
        let waits: Vec<u64> = (1..=7).map(|m| retry(m).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10, 10]);
    }
}
