//! Where each lane's store account stands, per endpoint: what the store answered when
//! graylane last asked ([`super::probe`]). The proxy reads it per connection (a lane that
//! needs a store-enforced account is refused where it is not); `/routes`, `graylane
//! routes` and a metric show it per lane. Written by the agent's checker only.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use xxhash_rust::xxh3::xxh3_64;

use super::probe::Verdict;
use crate::{inventory::accounts::Credentials, routing::data::DataLaneRule};

/// A lane's standing on one endpoint (or over all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enforcement {
    StoreEnforced,
    /// graylane's rewriting is the only wall: why.
    RewriteOnly(String),
    /// Not asked yet (a new account or endpoint).
    Checking,
}

impl Enforcement {
    pub fn as_str(&self) -> &'static str {
        match self {
            Enforcement::StoreEnforced => "store-enforced",
            Enforcement::RewriteOnly(_) => "rewrite-only",
            Enforcement::Checking => "checking",
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            Enforcement::RewriteOnly(why) => Some(why),
            _ => None,
        }
    }
}

/// (service, lane, endpoint).
pub type Key = (Arc<str>, Arc<str>, SocketAddr);

#[derive(Clone, Debug)]
pub struct Checked {
    pub verdict: Verdict,
    /// The account's identity when asked (a rotated Secret is asked again).
    pub account: u64,
    pub at: Instant,
    /// Answers in a row that were not store-enforced (the next ask waits longer).
    pub misses: u32,
}

/// Every lane's standing, swapped whole on each change.
#[derive(Default)]
pub struct Enforcements {
    checked: ArcSwap<HashMap<Key, Checked>>,
    changed: Notify,
}

/// The identity of an account's login (user and password), never the password itself.
pub fn fingerprint(c: &Credentials) -> u64 {
    let mut b = c.username.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(&c.password);
    xxh3_64(&b)
}

impl Enforcements {
    /// The lane's standing on `endpoint` for the account it names now.
    pub fn get(&self, service: &str, rule: &DataLaneRule, endpoint: SocketAddr) -> Enforcement {
        let account = match &rule.account {
            None => return Enforcement::RewriteOnly("the lane names no store account".into()),
            Some(Err(why)) => return Enforcement::RewriteOnly(why.clone()),
            Some(Ok(a)) => fingerprint(a),
        };
        let key: Key = (service.into(), rule.lane.clone(), endpoint);
        match self.checked.load().get(&key) {
            Some(c) if c.account == account => match &c.verdict {
                Verdict::StoreEnforced => Enforcement::StoreEnforced,
                Verdict::RewriteOnly(why) => Enforcement::RewriteOnly(why.clone()),
            },
            _ => Enforcement::Checking,
        }
    }

    /// The lane's standing over `endpoints`: store-enforced only where every one is.
    pub fn lane(&self, service: &str, rule: &DataLaneRule, endpoints: &[SocketAddr]) -> Enforcement {
        if endpoints.is_empty() {
            return self.get(service, rule, SocketAddr::from(([0, 0, 0, 0], 0))).min_checking();
        }
        let mut checking = false;
        for e in endpoints {
            match self.get(service, rule, *e) {
                Enforcement::StoreEnforced => {}
                Enforcement::Checking => checking = true,
                r @ Enforcement::RewriteOnly(_) => {
                    return match r {
                        Enforcement::RewriteOnly(why) if endpoints.len() > 1 => {
                            Enforcement::RewriteOnly(format!("{e}: {why}"))
                        }
                        other => other,
                    };
                }
            }
        }
        if checking { Enforcement::Checking } else { Enforcement::StoreEnforced }
    }

    /// Waits for the lane's standing on `endpoint` to be known, at most `patience`.
    pub async fn settled(
        &self,
        service: &str,
        rule: &DataLaneRule,
        endpoint: SocketAddr,
        patience: Duration,
    ) -> Enforcement {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let changed = self.changed.notified();
            let now = self.get(service, rule, endpoint);
            if now != Enforcement::Checking {
                return now;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.get(service, rule, endpoint);
            }
        }
    }

    pub fn snapshot(&self) -> Arc<HashMap<Key, Checked>> {
        self.checked.load_full()
    }

    /// Replaces every answer (the checker's whole view: keys it no longer checks go).
    pub fn publish(&self, checked: HashMap<Key, Checked>) {
        self.checked.store(Arc::new(checked));
        self.changed.notify_waiters();
    }
}

impl Enforcement {
    /// With no endpoint to ask, an account that could be asked is still being checked.
    fn min_checking(self) -> Self {
        match self {
            Enforcement::StoreEnforced => Enforcement::Checking,
            other => other,
        }
    }
}
