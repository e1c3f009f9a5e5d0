//! What the resilience policies did: rejections by reason, injected faults, retries,
//! circuit-breaker transitions, shadow copies, and the global limiter's Redis calls.

use prometheus::{IntCounterVec, Registry};

use super::counter_vec;

pub struct PolicyMetrics {
    /// `{policy, reason}`: rate_limited, concurrency_limit, circuit_open, deadline_exceeded.
    pub rejected: IntCounterVec,
    /// `{policy, kind}`: abort, delay.
    pub faults: IntCounterVec,
    /// `{policy, result}`: retried, budget_exhausted.
    pub retries: IntCounterVec,
    /// `{policy, level, to}`: level endpoint|subset; to open|half_open|recovering|closed.
    pub breaker_transitions: IntCounterVec,
    /// `{policy, result}`: sent, dropped (bound reached), failed.
    pub mirrored: IntCounterVec,
    /// `{policy, result}`: admitted, rejected, fallback (Redis unreachable: local limiter).
    pub global_limit: IntCounterVec,
}

impl PolicyMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            rejected: counter_vec(
                r,
                "policy_rejected_total",
                "Requests answered locally by a resilience policy, by reason.",
                &["policy", "reason"],
            ),
            faults: counter_vec(r, "faults_injected_total", "Injected faults, by kind.", &["policy", "kind"]),
            retries: counter_vec(
                r,
                "retries_total",
                "Retried tries, and retries refused by the retry budget.",
                &["policy", "result"],
            ),
            breaker_transitions: counter_vec(
                r,
                "circuit_breaker_transitions_total",
                "Circuit-breaker state changes, per endpoint or subset breaker.",
                &["policy", "level", "to"],
            ),
            mirrored: counter_vec(
                r,
                "mirrored_requests_total",
                "Shadow copies, by result.",
                &["policy", "result"],
            ),
            global_limit: counter_vec(
                r,
                "global_rate_limit_total",
                "Global (Redis) rate-limit checks: admitted, rejected, or fallback to the local limiter.",
                &["policy", "result"],
            ),
        }
    }
}
