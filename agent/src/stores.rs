//! The data stores' protocols, for data-layer lanes: a connection from a pod in a lane that
//! its store's `dataLanes` maps is relayed through a codec that speaks the store's protocol
//! (Redis, MySQL/MariaDB, NATS) and keeps the lane's data apart — prefixed keys, shadow
//! schemas, lane subjects — and, given the lane's store account, logs the connection in as
//! that account, so the store's own privileges hold the line where graylane's reading
//! would not. Base pods' connections are not touched (except on NATS, where base
//! subscribers never receive a lane's messages).
//!
//! Codecs are sans-IO: bytes in, bytes to the server and local answers out ([`Codec`]);
//! the proxy wires them to sockets.

pub mod amqp;
pub mod enforcement;
pub mod mysql;
pub mod nats;
pub mod probe;
pub mod redis;

use std::sync::Arc;

use bytes::BytesMut;

use crate::{
    inventory::data_lanes::OnUnsupported,
    routing::data::{DataLaneRule, DataRules, LaneMap},
};

pub use crate::telemetry::data::DataTally as Tally;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{protocol}: {detail}")]
    Malformed { protocol: &'static str, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One protocol's view of a connection.
pub trait Codec: Send {
    /// Consumes whole client messages from `input`: what goes to the server into `up`,
    /// graylane's own answers into `down` (in order with the server's replies).
    fn client(
        &mut self,
        input: &mut BytesMut,
        up: &mut BytesMut,
        down: &mut BytesMut,
    ) -> Result<(), DataError>;
    /// Consumes whole server messages from `input` into `down` (and `up`, for protocols
    /// that answer the server themselves).
    fn server(
        &mut self,
        input: &mut BytesMut,
        down: &mut BytesMut,
        up: &mut BytesMut,
    ) -> Result<(), DataError>;
    /// What happened since the last look.
    fn tally(&mut self) -> &mut Tally;
    /// How many bytes of `input` (the client's, or the server's) the message at its front
    /// needs whole, when its size is already known (a RESP bulk's length, a packet's
    /// header): the relay sizes its buffer once instead of doubling it.
    fn need(&self, _client: bool, _input: &[u8]) -> Option<usize> {
        None
    }
    /// Bytes the codec itself holds of messages not yet whole (a statement split over
    /// packets).
    fn buffered(&self) -> usize {
        0
    }
    /// The connection is refused for its memory (`why`): the protocol's error to the
    /// client, if it has one for this.
    fn over_budget(&mut self, _down: &mut BytesMut, _why: &str) {}
}

/// The codec for a connection: the lane's mapping and login, or (NATS) base subscribers'
/// filter. `refuse`: the lane may not be served now (why), and its connections are
/// answered with the protocol's error.
pub fn codec(
    rules: &DataRules,
    lane: Option<&Arc<DataLaneRule>>,
    refuse: Option<String>,
) -> Option<Box<dyn Codec>> {
    match lane {
        Some(l) => {
            let reject = l.on_unsupported == OnUnsupported::Reject;
            let account = l.credentials().cloned();
            Some(match &l.map {
                LaneMap::Redis { key_prefix } => {
                    Box::new(redis::Redis::new(key_prefix, &l.lane, reject).login(account, refuse))
                }
                LaneMap::Mysql { suffix, map } => {
                    Box::new(mysql::Mysql::new(&l.lane, suffix.clone(), map.clone(), reject, account, refuse))
                }
                LaneMap::Amqp { virtual_host } => {
                    Box::new(amqp::Amqp::new(&l.lane, virtual_host, account, refuse))
                }
                LaneMap::Nats { subject_prefix, queue_suffix } => {
                    Box::new(nats::Nats::lane(nats::LaneNats {
                        name: &l.lane,
                        prefix: subject_prefix,
                        queue_suffix: queue_suffix.as_deref(),
                        reject,
                        account,
                        refuse,
                    }))
                }
            })
        }
        None if rules.needs_codec(None) => Some(Box::new(nats::Nats::base(&rules.lane_subjects))),
        None => None,
    }
}
