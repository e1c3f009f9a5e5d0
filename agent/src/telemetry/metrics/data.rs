//! Data-layer lanes: a lane's commands to a data store (Redis, MySQL, NATS), by what
//! graylane did with them.
//!
//! Labels: `destination_service`, `lane` (a lane a `dataLanes` policy names), `protocol`
//! (`redis`, `mysql`, `nats`), `result` (`rewritten`: kept in the lane by a rewrite;
//! `passed`: nothing to keep apart, e.g. `PING`; `rejected`: refused with the protocol's
//! error; `unsupported_passed`: could not be kept apart and forwarded anyway, as the
//! lane's `onUnsupported: passthrough` says).

use prometheus::{IntCounterVec, Registry};

use super::counter_vec;

pub struct DataMetrics {
    pub commands: IntCounterVec,
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
        }
    }
}
