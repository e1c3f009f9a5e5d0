//! A data store's lanes, compiled per service port: the protocol graylane speaks on it and
//! each lane's mapping (`dataLanes` of its `TrafficPolicy`).

use std::{collections::BTreeMap, sync::Arc};

use crate::inventory::{
    ServicePort,
    accounts::{self, Credentials, Secrets},
    data_lanes::{DataLane, DataLanes, DataProtocol, OnUnsupported},
};

/// One lane's mapping on one data store.
#[derive(Debug)]
pub struct DataLaneRule {
    pub lane: Arc<str>,
    pub protocol: DataProtocol,
    pub on_unsupported: OnUnsupported,
    pub map: LaneMap,
    /// How flows and the CLI show it: `keyPrefix shadow:`.
    pub describe: Arc<str>,
    /// The store account its connections log in as (`Err`: the Secret it names is not
    /// usable, and why); `None` when it names none.
    pub account: Option<Result<Arc<Credentials>, String>>,
    /// Served only while its account is store-enforced (an isolated lane without
    /// `allowRewriteOnly`).
    pub require_store: bool,
}

impl DataLaneRule {
    /// The account to log in as, when it is usable.
    pub fn credentials(&self) -> Option<&Arc<Credentials>> {
        self.account.as_ref().and_then(|a| a.as_ref().ok())
    }
}

#[derive(Debug)]
pub enum LaneMap {
    Redis { key_prefix: Vec<u8> },
    Mysql { suffix: Option<String>, map: BTreeMap<String, String> },
    Nats { subject_prefix: String, queue_suffix: Option<String> },
    Amqp { virtual_host: String },
}

/// A data store port's lanes.
#[derive(Debug)]
pub struct DataRules {
    pub protocol: DataProtocol,
    lanes: Vec<Arc<DataLaneRule>>,
    /// Every lane's NATS subject prefix: base subscribers never receive their messages.
    pub lane_subjects: Vec<String>,
}

impl DataRules {
    /// `None` when the policy has no data lanes; an error when the port speaks no
    /// protocol graylane knows and the policy does not name one.
    /// `only_port`: the service has this one port. A port speaks the data protocol when
    /// its `appProtocol` or name says so, or (with `dataLanes.protocol` set) when it says
    /// nothing and is the service's only port or the protocol's own (6379, 3306, 4222);
    /// the service's other ports get no codec, and lanes keep their isolation there.
    pub fn compile(
        d: &DataLanes,
        port: &ServicePort,
        only_port: bool,
        isolated: &[String],
        (namespace, secrets): (&str, &Secrets),
    ) -> Result<Option<Self>, String> {
        if d.lanes.is_empty() {
            return Ok(None);
        }
        let hint = port.app_protocol.as_deref().or(port.name.as_deref());
        let named = hint.and_then(DataProtocol::of_hint);
        let protocol = match (d.protocol, named) {
            (Some(p), Some(n)) if p != n => return Ok(None),
            (_, Some(n)) => n,
            (Some(p), None) if only_port || port.port == p.default_port() => p,
            (Some(_), None) => return Ok(None),
            (None, None) if only_port => {
                return Err(format!(
                    "port {}: dataLanes needs a protocol (name the port redis, mysql or nats, or set dataLanes.protocol)",
                    port.port
                ));
            }
            (None, None) => return Ok(None),
        };
        let lanes = d
            .lanes
            .iter()
            .map(|l| compile_lane(l, protocol, isolated, namespace, secrets).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let lane_subjects = lanes
            .iter()
            .filter_map(|l| match &l.map {
                LaneMap::Nats { subject_prefix, .. } => Some(subject_prefix.clone()),
                _ => None,
            })
            .collect();
        Ok(Some(Self { protocol, lanes, lane_subjects }))
    }

    /// The mapping for connections from a pod in `lane`.
    pub fn lane(&self, lane: Option<&str>) -> Option<&Arc<DataLaneRule>> {
        let lane = lane?;
        self.lanes.iter().find(|l| &*l.lane == lane)
    }

    pub fn lanes(&self) -> impl Iterator<Item = &Arc<DataLaneRule>> {
        self.lanes.iter()
    }

    /// Whether a connection from a pod in `lane` goes through the store's codec: a lane
    /// with a mapping, and on NATS a base connection too (it must not see lanes' subjects).
    pub fn needs_codec(&self, lane: Option<&str>) -> bool {
        self.lane(lane).is_some() || !self.lane_subjects.is_empty()
    }
}

fn compile_lane(
    l: &DataLane,
    protocol: DataProtocol,
    isolated: &[String],
    namespace: &str,
    secrets: &Secrets,
) -> Result<DataLaneRule, String> {
    let missing = |f: &str| format!("lane {}: {f} is required for {}", l.lane, protocol.as_str());
    let (map, describe) = match protocol {
        DataProtocol::Redis => {
            let p = l.key_prefix.clone().ok_or_else(|| missing("keyPrefix"))?;
            (LaneMap::Redis { key_prefix: p.clone().into_bytes() }, format!("keyPrefix {p}"))
        }
        DataProtocol::Mysql => {
            if l.schema_suffix.is_none() && l.schema_map.is_empty() {
                return Err(missing("schemaSuffix or schemaMap"));
            }
            let mut d: Vec<String> = l.schema_map.iter().map(|(a, b)| format!("{a}→{b}")).collect();
            if let Some(s) = &l.schema_suffix {
                d.push(format!("*{s}"));
            }
            (
                LaneMap::Mysql { suffix: l.schema_suffix.clone(), map: l.schema_map.clone() },
                format!("schema {}", d.join(" ")),
            )
        }
        DataProtocol::Amqp => {
            let v = l.virtual_host.clone().ok_or_else(|| missing("virtualHost"))?;
            (LaneMap::Amqp { virtual_host: v.clone() }, format!("virtualHost {v}"))
        }
        DataProtocol::Nats => {
            let p = l.subject_prefix.clone().ok_or_else(|| missing("subjectPrefix"))?;
            let q = l.queue_suffix.as_deref().map(|q| format!(", queue *{q}")).unwrap_or_default();
            (
                LaneMap::Nats { subject_prefix: p.clone(), queue_suffix: l.queue_suffix.clone() },
                format!("subject {p}*{q}"),
            )
        }
    };
    let on_unsupported = l.on_unsupported.unwrap_or(if isolated.contains(&l.lane) {
        OnUnsupported::Reject
    } else {
        OnUnsupported::Passthrough
    });
    let account = l.account.as_ref().map(|a| accounts::credentials(secrets, namespace, &a.secret));
    Ok(DataLaneRule {
        lane: l.lane.as_str().into(),
        protocol,
        on_unsupported,
        map,
        describe: describe.into(),
        account,
        require_store: isolated.contains(&l.lane) && l.allow_rewrite_only != Some(true),
    })
}
