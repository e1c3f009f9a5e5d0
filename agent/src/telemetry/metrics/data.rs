//! Data-layer lanes: a lane's commands to a data store (Redis, MySQL, NATS), by what
//! graylane did with them.
//!
//! Labels: `destination_service`, `lane` (a lane a `dataLanes` policy names), `protocol`
//! (`redis`, `mysql`, `nats`), `result` (`rewritten`: kept in the lane by a rewrite;
//! `passed`: nothing to keep apart, e.g. `PING`; `rejected`: refused with the protocol's
//! error; `unsupported_passed`: could not be kept apart and forwarded anyway, as the
//! lane's `onUnsupported: passthrough` says).
//!
//! `data_lane_store_enforced{destination_service, lane, protocol}`: whether the store
//! itself holds the lane's account to the lane's data.
//! `data_budget_refusals_total{destination_service, lane, scope}`: connections refused for
//! the memory their unfinished messages would take (`scope`: `pod` or `node`).

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{counter_vec, gauge_vec};

pub struct DataMetrics {
    pub commands: IntCounterVec,
    pub store_enforced: IntGaugeVec,
    pub budget_refusals: IntCounterVec,
}

impl DataMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            commands: counter_vec(
                r,
                "data_commands_total",
                "Commands, queries and messages of data-lane connections, by what graylane did with them.",
                &["destination_service", "lane", "protocol", "result"],
            ),
            budget_refusals: counter_vec(
                r,
                "data_budget_refusals_total",
                "Data-lane connections refused because their unfinished messages would exceed the pod's or the node's buffer budget (scope: pod, node).",
                &["destination_service", "lane", "scope"],
            ),
            store_enforced: gauge_vec(
                r,
                "data_lane_store_enforced",
                "1 when every endpoint of the data store refuses the lane's store account everything outside the lane's data (store-enforced), 0 when graylane's rewriting is the only wall (rewrite-only).",
                &["destination_service", "lane", "protocol"],
            ),
        }
    }
}
