//! Lane continuity: the trace memory (lanes learned here or from hints, entries evicted,
//! entries and bytes held), lane hints between agents (sent, lost, accepted, dropped and
//! why) and whether a hint reached the callee's node before the callee's first call out.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{counter_vec, gauge_vec};

pub struct LaneMetrics {
    /// `{event}`: learned (a lane request forwarded into a pod here), hinted (a hint
    /// accepted), evicted (aged or pushed out), recalled (an untagged request got its lane
    /// back).
    pub memory: IntCounterVec,
    /// `{unit}`: entries, bytes (an estimate) held now.
    pub memory_size: IntGaugeVec,
    /// `{result}`: sent, send_failed, accepted, bad_mac, stale, malformed, unknown_tag,
    /// not_local.
    pub hints: IntCounterVec,
    /// `{result}`: won (the callee's first untagged call in the trace found the hint),
    /// lost (it came before the hint; the hint arrived later).
    pub hint_race: IntCounterVec,
}

impl LaneMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            memory: counter_vec(
                r,
                "trace_memory_total",
                "Trace memory events: learned, hinted, evicted, recalled.",
                &["event"],
            ),
            memory_size: gauge_vec(
                r,
                "trace_memory_size",
                "Trace memory held now: entries, bytes (estimate).",
                &["unit"],
            ),
            hints: counter_vec(
                r,
                "lane_hints_total",
                "Lane hints sent to and received from other nodes' agents, by result.",
                &["result"],
            ),
            hint_race: counter_vec(
                r,
                "lane_hint_race_total",
                "Whether a hint arrived before the callee's first untagged call in its trace (won) or after (lost).",
                &["result"],
            ),
        }
    }
}
