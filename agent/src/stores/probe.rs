//! Asking a store what a lane's account can reach: a short client conversation per
//! protocol (sans-IO, like the codecs), ending in a verdict. `store-enforced`: the store
//! itself refuses the account everything outside the lane's data, so a statement graylane
//! misreads still cannot reach production; `rewrite-only`: graylane's rewriting is the only
//! wall, and why.

use bytes::BytesMut;

use super::{DataError, amqp, mysql, nats, redis};
use crate::routing::data::{DataLaneRule, LaneMap};

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    StoreEnforced,
    RewriteOnly(String),
}

/// One probe's conversation with one endpoint.
pub trait Probe: Send {
    /// What to send as soon as the connection is open (before the server speaks).
    fn start(&mut self, out: &mut BytesMut);
    /// Server bytes in; more to send into `out`; the verdict once there is one.
    fn read(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<Option<Verdict>, DataError>;
}

/// The probe of a lane's account, if it names a usable one.
pub fn probe(rule: &DataLaneRule) -> Option<Box<dyn Probe>> {
    let account = rule.credentials()?.clone();
    Some(match &rule.map {
        LaneMap::Redis { key_prefix } => Box::new(redis::probe::RedisProbe::new(account, key_prefix)),
        LaneMap::Mysql { suffix, map } => {
            Box::new(mysql::probe::MysqlProbe::new(account, suffix.clone(), map.values().cloned().collect()))
        }
        LaneMap::Nats { subject_prefix, .. } => {
            Box::new(nats::probe::NatsProbe::new(account, subject_prefix))
        }
        LaneMap::Amqp { .. } => Box::new(amqp::probe::AmqpProbe::new(account)),
    })
}
