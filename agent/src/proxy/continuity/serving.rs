//! Which pods serve lane traffic right now: when the proxy forwards a request into a pod on
//! this node it notes the request's lane (or base). An untagged request from a pod whose
//! latest inbound traffic was a lane's, within the window, most likely lost its lane on
//! the way through the app: it is counted as a lane escape (`lane_lost`), never rerouted.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How long after its last lane request a pod counts as serving that lane.
const WINDOW: Duration = Duration::from_secs(10);
/// Pods tracked at most (a node's pods; beyond it, the quiet ones go).
const MAX_PODS: usize = 16_384;

#[derive(Clone)]
struct Last {
    lane: Option<(Arc<str>, Instant)>,
    base: Option<Instant>,
}

#[derive(Default)]
pub struct Serving {
    pods: Mutex<HashMap<Arc<str>, Last>>,
}

impl Serving {
    /// `pod` was just sent a request in lane `tag` (`None`: base).
    pub fn served(&self, pod: &Arc<str>, tag: Option<&Arc<str>>) {
        let now = Instant::now();
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        if pods.len() >= MAX_PODS && !pods.contains_key(pod) {
            pods.retain(|_, l| l.lane.as_ref().is_some_and(|(_, t)| t.elapsed() < WINDOW));
        }
        let last = pods.entry(pod.clone()).or_insert(Last { lane: None, base: None });
        match tag {
            Some(t) => last.lane = Some((t.clone(), now)),
            None => last.base = Some(now),
        }
    }

    /// The lane `pod` serves right now: its latest inbound request was that lane's, within
    /// the window.
    pub fn lane_of(&self, pod: &str) -> Option<Arc<str>> {
        let pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        let last = pods.get(pod)?;
        let (tag, at) = last.lane.as_ref()?;
        let latest = last.base.is_none_or(|b| b <= *at);
        (latest && at.elapsed() < WINDOW).then(|| tag.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_serves_a_lane_until_base_traffic_comes_after_it() {
        let s = Serving::default();
        let pod: Arc<str> = Arc::from("default/relay");
        assert!(s.lane_of("default/relay").is_none());
        s.served(&pod, Some(&Arc::from("gray")));
        assert_eq!(s.lane_of("default/relay").as_deref(), Some("gray"));
        s.served(&pod, None);
        assert!(s.lane_of("default/relay").is_none(), "base came after");
    }
}
