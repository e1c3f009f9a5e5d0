//! `dataLanes` of a `TrafficPolicy` for a data store (Redis, MySQL/MariaDB, NATS): what
//! each lane's connections get. A data connection's lane is its **source pod's** (the
//! kernel record): a pooled connection carries many requests, so a shared base pod's
//! connections stay untouched.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::FieldError;

/// The protocols graylane speaks to keep a lane's data apart.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum DataProtocol {
    Redis,
    Mysql,
    Nats,
    Amqp,
}

impl DataProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            DataProtocol::Redis => "redis",
            DataProtocol::Mysql => "mysql",
            DataProtocol::Nats => "nats",
            DataProtocol::Amqp => "amqp",
        }
    }

    /// The protocol's well-known port.
    pub fn default_port(self) -> u16 {
        match self {
            DataProtocol::Redis => 6379,
            DataProtocol::Mysql => 3306,
            DataProtocol::Nats => 4222,
            DataProtocol::Amqp => 5672,
        }
    }

    /// From a port's `appProtocol` or name, Kubernetes-style (`redis`, `tcp-redis`,
    /// `mysql`, `mariadb`, `nats`).
    pub fn of_hint(hint: &str) -> Option<Self> {
        let h = hint.rsplit('/').next().unwrap_or(hint).to_ascii_lowercase();
        h.split('-').find_map(|w| match w {
            "redis" => Some(DataProtocol::Redis),
            "mysql" | "mariadb" => Some(DataProtocol::Mysql),
            "nats" => Some(DataProtocol::Nats),
            "amqp" | "rabbitmq" => Some(DataProtocol::Amqp),
            _ => None,
        })
    }
}

/// What a lane's command does when graylane cannot keep it inside the lane.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum OnUnsupported {
    /// Answer with the protocol's error naming the lane and the command; forward nothing.
    Reject,
    /// Forward it unchanged (it may touch production data).
    Passthrough,
}

/// The data store's lanes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataLanes {
    /// `redis`, `mysql` or `nats`; by default from the service port's `appProtocol` or
    /// name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<DataProtocol>,
    pub lanes: Vec<DataLane>,
}

/// One lane's mapping. Set the fields of the store's protocol only.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataLane {
    /// The lane (a pod's `graylane.io/tag`), e.g. `stress`.
    pub lane: String,
    /// Redis: every key, channel and pattern of the lane's commands gets this prefix
    /// (e.g. `shadow:`); replies carry the names without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// MySQL: every schema (database) the lane names or uses gets this suffix
    /// (`orders` → `orders_shadow`), unless `schemaMap` names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_suffix: Option<String>,
    /// MySQL: explicit schema mapping, e.g. `{orders: orders_shadow}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schema_map: BTreeMap<String, String>,
    /// NATS: every subject the lane publishes or subscribes to gets this prefix
    /// (`orders.created` → `shadow.orders.created`). A prefix, not a suffix: a base
    /// subscriber to `orders.>` would see `orders.created.shadow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
    /// NATS: queue groups the lane joins get this suffix (`workers` → `workers-gray`), so
    /// the lane's consumers never share a group with base consumers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_suffix: Option<String>,
    /// AMQP (RabbitMQ): the virtual host the lane's connections open, whatever the client
    /// asks for (e.g. `stress`): the broker's own isolation unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_host: Option<String>,
    /// What a command graylane cannot keep in the lane gets: `reject` (the default for
    /// the service's isolated lanes, `fallback.isolated`) or `passthrough` (the default
    /// for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unsupported: Option<OnUnsupported>,
    /// The store account the lane's connections log in as, whatever the client presents
    /// (the lane's pods are known by the kernel, not by a password): a Secret in the
    /// policy's namespace with `username` and `password`. Give it only the lane's data
    /// (schemas, key and channel patterns, subjects): the store then refuses what graylane
    /// might misread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    /// Serve the lane while its store account is missing or reaches more than the lane's
    /// data (`rewrite-only`: graylane's rewriting alone keeps it apart). Lanes in
    /// `fallback.isolated` are refused until their account is `store-enforced` unless this
    /// is `true`; other lanes are served either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_rewrite_only: Option<bool>,
}

/// A store account: the Secret (in the policy's namespace) that holds its `username` and
/// `password`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountRef {
    pub secret: String,
}

/// Lanes in one `dataLanes` at most.
pub const MAX_DATA_LANES: usize = 64;

/// Checks what serde cannot: each lane once, its mapping set for the protocol (when the
/// policy names it) and only that protocol's fields, names the protocols can carry.
pub fn validate(d: &DataLanes) -> Result<(), FieldError> {
    if d.lanes.len() > MAX_DATA_LANES {
        return Err(FieldError::new(
            "spec.dataLanes.lanes",
            format!("{} lanes: at most {MAX_DATA_LANES}", d.lanes.len()),
        ));
    }
    for (i, l) in d.lanes.iter().enumerate() {
        let at = |f: &str| format!("spec.dataLanes.lanes[{i}].{f}");
        if l.lane.is_empty() {
            return Err(FieldError::new(at("lane"), "missing"));
        }
        if d.lanes[..i].iter().any(|o| o.lane == l.lane) {
            return Err(FieldError::new(at("lane"), format!("{:?} is listed twice", l.lane)));
        }
        let redis = l.key_prefix.is_some();
        let mysql = l.schema_suffix.is_some() || !l.schema_map.is_empty();
        let nats = l.subject_prefix.is_some() || l.queue_suffix.is_some();
        let amqp = l.virtual_host.is_some();
        if [redis, mysql, nats, amqp].iter().filter(|x| **x).count() > 1 {
            return Err(FieldError::new(
                at("lane"),
                "mixes protocols: keyPrefix (redis), schemaSuffix/schemaMap (mysql), subjectPrefix/queueSuffix (nats), virtualHost (amqp)",
            ));
        }
        let needs = |field: &str, set: bool| {
            if set { Ok(()) } else { Err(FieldError::new(at(field), "required for this protocol")) }
        };
        match d.protocol {
            Some(DataProtocol::Redis) => needs("keyPrefix", redis)?,
            Some(DataProtocol::Mysql) => needs("schemaSuffix", mysql)?,
            Some(DataProtocol::Nats) => needs("subjectPrefix", l.subject_prefix.is_some())?,
            Some(DataProtocol::Amqp) => needs("virtualHost", amqp)?,
            None => {
                if !(redis || mysql || nats || amqp) {
                    return Err(FieldError::new(at("lane"), "maps nothing"));
                }
            }
        }
        if l.key_prefix.as_deref() == Some("") || l.subject_prefix.as_deref() == Some("") {
            return Err(FieldError::new(at("lane"), "an empty prefix keeps nothing apart"));
        }
        if let Some(p) = &l.key_prefix
            && p.chars()
                .any(|c| matches!(c, '*' | '?' | '[' | ']' | '\\') || c.is_whitespace() || c.is_control())
        {
            return Err(FieldError::new(
                at("keyPrefix"),
                format!("{p:?}: no glob characters (*?[]\\), spaces or control characters"),
            ));
        }
        if let Some(p) = &l.subject_prefix
            && !nats_token_prefix(p)
        {
            return Err(FieldError::new(
                at("subjectPrefix"),
                format!("{p:?}: NATS subject tokens, ending with '.', no spaces or wildcards"),
            ));
        }
        for (name, what) in l
            .schema_suffix
            .iter()
            .map(|s| (s, "schemaSuffix"))
            .chain(l.schema_map.values().map(|s| (s, "schemaMap")))
        {
            if name.is_empty() && what == "schemaMap"
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
            {
                return Err(FieldError::new(
                    at(what),
                    format!("{name:?}: letters, digits, '_' and '$' only"),
                ));
            }
        }
        if l.schema_suffix.as_deref() == Some("") {
            return Err(FieldError::new(at("schemaSuffix"), "an empty suffix keeps nothing apart"));
        }
        if let Some(q) = &l.queue_suffix
            && (q.is_empty() || q.chars().any(|c| c.is_whitespace()))
        {
            return Err(FieldError::new(at("queueSuffix"), "non-empty, no spaces"));
        }
        if let Some(v) = &l.virtual_host
            && (v.is_empty() || v == "/" || v.len() > 255 || v.chars().any(char::is_control))
        {
            return Err(FieldError::new(
                at("virtualHost"),
                format!("{v:?}: the lane's own virtual host (not /: production's), at most 255 bytes"),
            ));
        }
        if let Some(a) = &l.account
            && !secret_name(&a.secret)
        {
            return Err(FieldError::new(
                at("account.secret"),
                format!("{:?} is not a Secret name", a.secret),
            ));
        }
    }
    Ok(())
}

/// A Kubernetes object name (DNS subdomain: lowercase letters, digits, '-', '.').
fn secret_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn nats_token_prefix(p: &str) -> bool {
    p.ends_with('.')
        && p.len() > 1
        && p[..p.len() - 1].split('.').all(|t| !t.is_empty() && t != "*" && t != ">")
        && !p.chars().any(|c| c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(yaml: &str) -> DataLanes {
        serde_norway::from_str(yaml).expect("yaml")
    }

    #[test]
    fn each_protocol_needs_its_own_mapping() {
        assert!(validate(&lanes("{protocol: redis, lanes: [{lane: stress, keyPrefix: 'shadow:'}]}")).is_ok());
        let e = validate(&lanes("{protocol: redis, lanes: [{lane: stress, schemaSuffix: _s}]}"))
            .expect_err("mysql");
        assert_eq!(e.field, "spec.dataLanes.lanes[0].keyPrefix");
        let e = validate(&lanes("{lanes: [{lane: s, keyPrefix: 'a:', schemaSuffix: _s}]}")).expect_err("mix");
        assert!(e.message.contains("mixes"), "{e}");
        let e =
            validate(&lanes("{protocol: nats, lanes: [{lane: g, subjectPrefix: gray}]}")).expect_err("dot");
        assert!(e.message.contains("ending with '.'"), "{e}");
        let e = validate(&lanes("{lanes: [{lane: g, keyPrefix: 'a:'}, {lane: g, keyPrefix: 'b:'}]}"))
            .expect_err("twice");
        assert!(e.message.contains("twice"), "{e}");
        assert!(serde_norway::from_str::<DataLanes>("{lanes: [{lane: g, keyprefix: 'a:'}]}").is_err());
        let e =
            validate(&lanes("{protocol: redis, lanes: [{lane: s, keyPrefix: 'a*:'}]}")).expect_err("glob");
        assert_eq!(e.field, "spec.dataLanes.lanes[0].keyPrefix");
    }

    #[test]
    fn protocol_hints_follow_port_names() {
        assert_eq!(DataProtocol::of_hint("tcp-redis"), Some(DataProtocol::Redis));
        assert_eq!(DataProtocol::of_hint("mariadb"), Some(DataProtocol::Mysql));
        assert_eq!(DataProtocol::of_hint("kubernetes.io/nats"), Some(DataProtocol::Nats));
        assert_eq!(DataProtocol::of_hint("http"), None);
    }
}
