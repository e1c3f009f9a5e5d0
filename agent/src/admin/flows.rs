//! `/flows`: the flow table, filtered (`tag`, `tenant`, `pod`, `service`, `limit`), as a
//! JSON array; with `follow=1`, new flows as JSON lines for as long as the client stays.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody, combinators::BoxBody};
use hyper::body::Frame;

use crate::telemetry::flows::{Flow, FlowOutcome, Flows};

/// How often a follower looks for new flows.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Default, Clone)]
pub struct FlowFilter {
    pub tag: Option<String>,
    pub tenant: Option<String>,
    pub pod: Option<String>,
    pub service: Option<String>,
    pub limit: Option<usize>,
    pub follow: bool,
}

impl FlowFilter {
    pub fn parse(query: &str) -> Self {
        let mut f = Self::default();
        for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            let v = decode(v);
            match k {
                "tag" => f.tag = Some(v),
                "tenant" => f.tenant = Some(v),
                "pod" => f.pod = Some(v),
                "service" => f.service = Some(v),
                "limit" => f.limit = v.parse().ok(),
                "follow" => f.follow = v == "1" || v == "true",
                _ => {}
            }
        }
        f
    }

    /// A flow matches when every given field does: the request's lane tag (or the pod's),
    /// the tenant, the source pod (`name` or `namespace/name`), the service (likewise).
    pub fn matches(&self, flow: &Flow) -> bool {
        let tag = flow.state.lane_tag.as_deref().or(flow.start.tag.as_deref());
        let named = |want: &Option<String>, have: Option<&str>| match (want, have) {
            (None, _) => true,
            (Some(w), Some(h)) => h == w || h.rsplit_once('/').is_some_and(|(_, name)| name == w),
            (Some(_), None) => false,
        };
        self.tag.as_deref().is_none_or(|t| tag == Some(t))
            && self.tenant.as_deref().is_none_or(|t| flow.start.tenant.as_deref() == Some(t))
            && named(&self.pod, flow.start.src_pod.as_deref())
            && named(&self.service, flow.state.service.as_deref())
    }

    /// Matching flows, newest last, at most `limit` (the newest).
    pub fn apply(&self, flows: Vec<Flow>) -> Vec<Flow> {
        let mut out: Vec<Flow> = flows.into_iter().filter(|f| self.matches(f)).collect();
        if let Some(n) = self.limit {
            out.drain(..out.len().saturating_sub(n));
        }
        out
    }
}

/// `%2F` → `/`, `+` → space.
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// New matching flows as JSON lines, starting after the newest flow now in the table. A
/// flow is shown once it is decided (its service known) or over: one just accepted has
/// nothing to filter on yet, and waits (bounded) for the next look.
pub fn follow(flows: Arc<Flows>, filter: FlowFilter) -> BoxBody<Bytes, Infallible> {
    const MAX_WAITING: usize = 4096;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut last = flows.list().last().map_or(0, |f| f.id);
        let mut waiting: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            let listed = flows.list();
            let fresh: Vec<&Flow> =
                listed.iter().filter(|f| f.id > last || waiting.contains(&f.id)).collect();
            let oldest = listed.first().map_or(0, |f| f.id);
            waiting.retain(|id| *id >= oldest); // gone from the table: nothing to show
            if let Some(f) = listed.last() {
                last = last.max(f.id);
            }
            for flow in fresh {
                let decided =
                    flow.state.service.is_some() || !matches!(flow.state.outcome, FlowOutcome::Open);
                if !decided {
                    if waiting.len() < MAX_WAITING {
                        waiting.insert(flow.id);
                    }
                    continue;
                }
                waiting.remove(&flow.id);
                if !filter.matches(flow) {
                    continue;
                }
                let Ok(mut line) = serde_json::to_vec(flow) else { continue };
                line.push(b'\n');
                if tx.send(Bytes::from(line)).await.is_err() {
                    return; // the client left
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let f = FlowFilter::parse("tag=gray&service=default%2Fapp&limit=5&follow=1");
        assert_eq!(f.tag.as_deref(), Some("gray"));
        assert_eq!(f.service.as_deref(), Some("default/app"));
        assert_eq!((f.limit, f.follow), (Some(5), true));
        assert_eq!(decode("a%2"), "a%2");
    }
}
