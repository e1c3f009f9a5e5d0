//! The demo's cluster — gateway → app → data, base and gray, a search service with no gray
//! version, a base relay that forwards only `traceparent`, and production's Redis and MySQL
//! shared by a stress lane — built in a sandbox, for `cargo xtask demo` and the tests that
//! show it (the lane map).

use std::net::Ipv4Addr;

use anyhow::Context as _;

use crate::{MariaDb, PodSpec, Sandbox, ServiceSpec};

pub const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
pub const DATA: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);
pub const SEARCH: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 40);
pub const ORDERS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 50);
pub const REDIS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 60);
pub const MYSQL: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 62);

/// The seeds' full-link stress test: the stress lane shares production's Redis and MySQL,
/// its data kept apart inside them, logged in as store accounts the stores limit to the
/// lane's data.
const DATA_LANES: &str = "apiVersion: graylane.io/v1alpha1
kind: TrafficPolicy
metadata: {name: redis}
spec:
  service: redis
  dataLanes: {lanes: [{lane: stress, keyPrefix: 'shadow:', account: {secret: redis-stress}}]}
---
apiVersion: graylane.io/v1alpha1
kind: TrafficPolicy
metadata: {name: mysql}
spec:
  service: mysql
  dataLanes: {lanes: [{lane: stress, schemaSuffix: _shadow, account: {secret: mysql-stress}}]}
---
apiVersion: v1
kind: Secret
metadata: {name: redis-stress}
stringData: {username: stress, password: stress-secret}
---
apiVersion: v1
kind: Secret
metadata: {name: mysql-stress}
stringData: {username: stress, password: stress-secret}";

const BETA_RULE: &str = "apiVersion: graylane.io/v1alpha1
kind: TrafficLabelRule
metadata: {name: beta-users}
spec:
  selector: {app: gateway}
  trafficLabel: gray
  match:
  - {type: cookie, key: user, condition: '==', value: alice}";

/// The demo's pods, Services and rules (the agent is not started): its MySQL server.
pub fn build(sb: &mut Sandbox) -> anyhow::Result<MariaDb> {
    sb.add_pod(PodSpec::new("gateway").label("app", "gateway").annotate("graylane.io/role", "ingress"))?;
    sb.add_pod(PodSpec::new("client"))?;
    for (name, app, tag) in [
        ("app-v1", "app", None),
        ("app-v2", "app", Some("gray")),
        ("data-v1", "data", None),
        ("data-v2", "data", Some("gray")),
    ] {
        let mut spec = PodSpec::new(name).label("app", app);
        if let Some(t) = tag {
            spec = spec.tag(t);
        }
        sb.add_pod(spec)?.serve_http(8080)?;
    }
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    sb.add_service(ServiceSpec::new("data", DATA).named_port(80, 8080, "http").select("app", "data"));
    sb.add_pod(PodSpec::new("search-v1").label("app", "search"))?.serve_http(8080)?;
    sb.add_service(ServiceSpec::new("search", SEARCH).named_port(80, 8080, "http").select("app", "search"));
    // A base middle service whose app forwards only `traceparent` (OpenTelemetry without
    // baggage): it calls data for each request it serves.
    let relay = crate::fixture("relay.py");
    let relay = relay.to_str().context("fixture path")?;
    let orders = sb.add_pod(PodSpec::new("orders-v1").label("app", "orders"))?;
    orders.spawn("python3", &[relay, "traceparent", "8080", &format!("http://{DATA}/")])?;
    orders.wait_listening(8080)?;
    sb.add_service(ServiceSpec::new("orders", ORDERS).named_port(80, 8080, "http").select("app", "orders"));
    sb.add_document(BETA_RULE);
    // The data stores: production's Redis and MySQL, shared by the stress lane.
    sb.add_pod(PodSpec::new("stress-app").label("app", "loadgen").tag("stress"))?;
    let redis_dir = sb.scratch().join("redis");
    std::fs::create_dir_all(&redis_dir)?;
    let redis = sb.add_pod(PodSpec::new("redis").label("app", "redis"))?;
    redis.serve_redis(&redis_dir)?;
    redis.run(
        "redis-cli",
        &[
            "ACL",
            "SETUSER",
            "stress",
            "on",
            ">stress-secret",
            "~shadow:*",
            "&shadow:*",
            "+@all",
            "-@dangerous",
            "-function",
        ],
    )?;
    sb.add_service(
        ServiceSpec::new("redis", REDIS).named_port(6379, 6379, "tcp-redis").select("app", "redis"),
    );
    let mysql = MariaDb::start(
        sb,
        "mysql",
        "CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%';\
         CREATE USER 'stress'@'%' IDENTIFIED BY 'stress-secret'; GRANT ALL ON `%\\_shadow`.* TO 'stress'@'%';\
         CREATE DATABASE orders; CREATE TABLE orders.t (id INT PRIMARY KEY, who VARCHAR(40));\
         CREATE DATABASE orders_shadow; CREATE TABLE orders_shadow.t LIKE orders.t;",
    )?;
    sb.add_service(ServiceSpec::new("mysql", MYSQL).named_port(3306, 3306, "mysql").select("app", "mysql"));
    sb.add_document(DATA_LANES);
    Ok(mysql)
}
