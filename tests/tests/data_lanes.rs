//! Data-layer lanes through real captured connections to real servers: a `stress` pod's
//! writes land under the shadow key prefix (Redis), schema (MariaDB) or subject (NATS)
//! while a base pod's identical commands hit production; reads see only the lane's data;
//! what cannot be kept in the lane is refused and nothing reaches production.

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, MariaDb, PodSpec, Sandbox, ServiceSpec, fixture, privileged};
use serde_json::Value;

const REDIS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 60);
const NATS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 61);
const MYSQL: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 62);

fn policy(service: &str, lanes: &str) -> String {
    format!(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: {service}}}\nspec:\n  service: {service}\n  dataLanes:\n    lanes: {lanes}\n"
    )
}

fn json_line(out: &str) -> Value {
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn redis_stress_writes_land_under_the_shadow_prefix_and_refusals_reach_nothing() {
    let Some(p) = privileged("data_redis") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    let log = std::env::temp_dir().join(format!("graylane-data-redis-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    sb.add_pod(PodSpec::new("base-app")).expect("base");
    let dir = tempfile::Builder::new().prefix("graylane-redis-").tempdir().expect("dir");
    let store = sb.add_pod(PodSpec::new("redis").label("app", "redis")).expect("redis");
    store.serve_redis(dir.path()).expect("redis-server");
    sb.add_service(
        ServiceSpec::new("redis", REDIS).named_port(6379, 6379, "tcp-redis").select("app", "redis"),
    );
    sb.add_document(&policy("redis", "[{lane: stress, keyPrefix: 'shadow:', allowRewriteOnly: true}]"));
    let opts =
        AgentOptions { args: vec!["--access-log".into(), log.display().to_string()], ..Default::default() };
    sb.start_agent(&opts).expect("agent");

    let routes = sb.admin().json("/routes?service=redis").expect("routes");
    assert_eq!(
        routes[0]["data_lanes"],
        serde_json::json!([{
            "lane": "stress", "protocol": "redis", "mapping": "keyPrefix shadow:", "on_unsupported": "reject",
            "account": null, "enforcement": "rewrite-only", "enforcement_detail": "the lane names no store account",
            "served": true
        }]),
        "{routes}"
    );
    let client = fixture("redis_lane_client.py");
    let client = client.to_str().expect("path");
    let vip = REDIS.to_string();
    // Base first (production data), then the stress lane over RESP2 and RESP3.
    let (ok, out, err) =
        sb.pod("base-app").run("python3", &[client, &vip, "6379", "2", "prod"]).expect("base");
    assert!(ok, "{out}{err}");
    let base = json_line(&out);
    for proto in ["2", "3"] {
        let (ok, out, err) =
            sb.pod("stress-app").run("python3", &[client, &vip, "6379", proto, "stress"]).expect("stress");
        assert!(ok, "{out}{err}");
        let lane = json_line(&out);
        eprintln!("measured: stress lane over RESP{proto}: {lane}");
        assert_eq!(lane["get"], "stress", "the lane reads its own data");
        assert_eq!(lane["pipeline_last"], "stress");
        assert_eq!(lane["tx"][2], serde_json::json!(["order:1"]), "KEYS in EXEC lose the prefix: {lane}");
        let keys: Vec<&str> =
            lane["keys"].as_array().expect("keys").iter().filter_map(Value::as_str).collect();
        assert!(keys.iter().all(|k| !k.starts_with("shadow:")), "{keys:?}");
        assert!(keys.contains(&"order:1") && keys.contains(&"bulk:49") && keys.len() >= 54, "{keys:?}");
        assert_eq!(lane["scan"], serde_json::json!(["order:1"]));
        assert_eq!(lane["blpop"][0], "queue", "BLPOP names the key without the prefix: {lane}");
        assert_eq!(lane["message"], serde_json::json!(["news", "stress"]));
        // Scripts can reach keys they do not declare: refused in a rejecting lane.
        for refused in ["flushall", "dbsize", "script", "script_sha"] {
            assert_eq!(lane[refused][0], "error", "{refused}: {lane}");
            assert!(
                lane[refused][1].as_str().is_some_and(|e| e.contains("graylane: lane 'stress'")),
                "{lane}"
            );
        }
        assert_eq!(lane["after_refusals"], "stress");
    }
    assert_eq!(base["get"], "prod");
    assert_eq!(base["flushall"][0], "ok", "a base pod's connection is untouched: {base}");

    // What the store holds, asked inside its own pod (not through graylane): production
    // keys hold production values, the lane's keys are all under the prefix.
    let cli = |args: &[&str]| {
        let mut a = vec!["-h", "127.0.0.1", "-p", "6379"];
        a.extend_from_slice(args);
        let (ok, out, err) = sb.pod("redis").run("redis-cli", &a).expect("redis-cli");
        assert!(ok, "{err}");
        out.trim().to_owned()
    };
    // The base client flushed everything (its FLUSHALL is not refused); the lane wrote after.
    assert_eq!(cli(&["GET", "shadow:order:1"]), "stress");
    assert_eq!(cli(&["GET", "order:1"]), "");
    let all = cli(&["KEYS", "*"]);
    assert!(all.lines().all(|k| k.starts_with("shadow:")), "only the lane's keys are left: {all}");
    cli(&["SET", "order:1", "prod"]);
    // redis-cli itself, from the lane: reads the lane's value, not production's.
    let (_, out, _) =
        sb.pod("stress-app").run("redis-cli", &["-h", &vip, "-p", "6379", "GET", "order:1"]).expect("cli");
    assert_eq!(out.trim(), "stress");
    let (_, out, _) =
        sb.pod("base-app").run("redis-cli", &["-h", &vip, "-p", "6379", "GET", "order:1"]).expect("cli");
    assert_eq!(out.trim(), "prod");
    let (_, out, _) =
        sb.pod("stress-app").run("redis-cli", &["-h", &vip, "-p", "6379", "FLUSHDB"]).expect("cli");
    assert!(out.contains("graylane: lane 'stress' may not run FLUSHDB"), "{out}");
    assert_eq!(cli(&["GET", "order:1"]), "prod", "the refused FLUSHDB reached nothing");

    let m = sb.metrics();
    let count = |result: &str| {
        m.count(
            "graylane_data_commands_total",
            &[
                ("destination_service", "default/redis"),
                ("lane", "stress"),
                ("protocol", "redis"),
                ("result", result),
            ],
        )
        .expect("metrics")
    };
    eprintln!(
        "measured: stress lane commands: rewritten {} passed {} rejected {}",
        count("rewritten"),
        count("passed"),
        count("rejected")
    );
    assert!(count("rewritten") >= 100.0, "rewritten {}", count("rewritten"));
    // Refused, by name from the access log: the four commands per RESP version and
    // redis-cli's FLUSHDB, besides the `CLIENT SETINFO` redis-py sends on its own (its
    // version decides how many); the counter counts exactly the logged refusals.
    let refused = || -> Vec<String> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("\"kind\":\"data\""))
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("a JSON line")["command"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    };
    graylane_tests::wait_for("FLUSHDB's refusal logged", std::time::Duration::from_secs(5), || {
        refused().iter().any(|c| c == "FLUSHDB")
    });
    let refused = refused();
    let sent: Vec<&str> = refused.iter().map(String::as_str).filter(|c| *c != "CLIENT").collect();
    let four = ["FLUSHALL", "DBSIZE", "EVAL", "EVALSHA"];
    assert_eq!(sent, [&four[..], &four[..], &["FLUSHDB"]].concat(), "{refused:?}");
    assert_eq!(count("rejected"), refused.len() as f64, "{refused:?}");
    let flows = sb.admin().json("/flows").expect("flows");
    let flows = flows.as_array().expect("flows");
    assert!(
        flows.iter().any(|f| f["data_lane"] == "keyPrefix shadow:" && f["data_rejected"].as_u64() > Some(0)),
        "{flows:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let refusal =
        text.lines().find(|l| l.contains("\"command\":\"FLUSHDB\"")).expect("FLUSHDB in the access log");
    assert!(refusal.contains("\"lane\":\"stress\"") && !refusal.contains("prod"), "{refusal}");
    let _ = std::fs::remove_file(&log);
}

#[test]
fn nats_gray_consumers_get_only_gray_messages_and_base_consumers_never_do() {
    let Some(p) = privileged("data_nats") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    for (name, tag) in [
        ("gray-producer", Some("gray")),
        ("base-producer", None),
        ("gray-consumer", Some("gray")),
        ("base-consumer", None),
    ] {
        let spec = PodSpec::new(name);
        sb.add_pod(match tag {
            Some(t) => spec.tag(t),
            None => spec,
        })
        .expect("pod");
    }
    let store = sb.add_pod(PodSpec::new("nats").label("app", "nats")).expect("nats");
    store.spawn("nats-server", &["-a", "0.0.0.0", "-p", "4222"]).expect("nats-server");
    store.wait_listening(4222).expect("nats listening");
    sb.add_service(ServiceSpec::new("nats", NATS).named_port(4222, 4222, "nats").select("app", "nats"));
    sb.add_document(&policy(
        "nats",
        "[{lane: gray, subjectPrefix: 'gray.', queueSuffix: '-gray', onUnsupported: reject}]",
    ));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = fixture("nats_lane_client.py");
    let client = client.to_str().expect("path");
    let url = format!("nats://{NATS}:4222");
    // Consumers: each subscribes to `orders.>` (and in queue group `workers`); a base one
    // also to everything (`>`), which must not show it the gray lane's messages.
    let gray =
        sb.pod("gray-consumer").start("python3", &[client, "sub", &url, "orders.>", "4"]).expect("gray sub");
    let base = sb.pod("base-consumer").start("python3", &[client, "sub", &url, ">", "4"]).expect("base sub");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (ok, out, err) = sb
        .pod("gray-producer")
        .run("python3", &[client, "pub", &url, "orders.created", "gray", "5"])
        .expect("pub");
    assert!(ok, "{out}{err}");
    let (ok, out, err) = sb
        .pod("base-producer")
        .run("python3", &[client, "pub", &url, "orders.created", "base", "5"])
        .expect("pub");
    assert!(ok, "{out}{err}");
    let gray = json_line(&String::from_utf8_lossy(&gray.wait_output().expect("gray consumer").stdout));
    let base = json_line(&String::from_utf8_lossy(&base.wait_output().expect("base consumer").stdout));
    eprintln!("measured: gray consumer {gray}\nmeasured: base consumer {base}");
    let texts = |v: &Value, k: &str| -> Vec<String> {
        v[k].as_array().into_iter().flatten().filter_map(|m| m[1].as_str().map(str::to_owned)).collect()
    };
    let gray_got = texts(&gray, "got");
    assert_eq!(gray_got.len(), 5, "{gray}");
    assert!(gray_got.iter().all(|t| t.starts_with("gray-")), "{gray}");
    assert!(
        gray["got"].as_array().into_iter().flatten().all(|m| m[0] == "orders.created"),
        "subjects lose the prefix: {gray}"
    );
    assert_eq!(texts(&gray, "queued").len(), 5, "the lane's queue group gets the lane's messages");
    // (The base producer's own `$JS.API.INFO` publish is not refused: it is not in a lane.)
    let base_got: Vec<String> = texts(&base, "got").into_iter().filter(|t| !t.is_empty()).collect();
    assert_eq!(base_got.len(), 5, "{base}");
    assert!(
        base_got.iter().all(|t| t.starts_with("base-")),
        "base consumers never see gray messages: {base}"
    );
    let m = sb.metrics();
    let rejected = m
        .metric(
            "graylane_data_commands_total",
            &[("lane", "gray"), ("protocol", "nats"), ("result", "rejected")],
        )
        .expect("metrics");
    assert_eq!(rejected, 1.0, "the gray producer's publish to $JS.API was refused");
}

/// An `app` account with a native password; schemas `orders` and `billing` and their lane
/// copies.
const MYSQL_INIT: &str = "CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%';\
    CREATE DATABASE orders; CREATE TABLE orders.t (id INT PRIMARY KEY, who VARCHAR(40));\
    CREATE DATABASE orders_shadow; CREATE TABLE orders_shadow.t LIKE orders.t;\
    CREATE DATABASE billing; CREATE TABLE billing.inv (id INT PRIMARY KEY, who VARCHAR(40));\
    CREATE DATABASE billing_shadow; CREATE TABLE billing_shadow.inv LIKE billing.inv;";

#[test]
fn mysql_stress_writes_land_in_shadow_schemas_and_refusals_reach_nothing() {
    let Some(p) = privileged("data_mysql") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    sb.add_pod(PodSpec::new("base-app")).expect("base");
    let db = MariaDb::start(&mut sb, "mysql", MYSQL_INIT).expect("mariadb");
    let sql = |s: &str| db.sql(s).expect("sql");
    sb.add_service(ServiceSpec::new("mysql", MYSQL).named_port(3306, 3306, "mysql").select("app", "mysql"));
    sb.add_document(&policy("mysql", "[{lane: stress, schemaSuffix: _shadow, allowRewriteOnly: true}]"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = fixture("mysql_lane_client.py");
    let client = client.to_str().expect("path");
    let vip = MYSQL.to_string();
    let (ok, out, err) = sb.pod("base-app").run("python3", &[client, &vip, "prod", "-"]).expect("base");
    assert!(ok, "{out}{err}");
    let base = json_line(&out);
    let (ok, out, err) =
        sb.pod("stress-app").run("python3", &[client, &vip, "stress", "refusals"]).expect("stress");
    assert!(ok, "{out}{err}");
    let lane = json_line(&out);
    eprintln!("measured: base {base}\nmeasured: stress lane {lane}");
    assert_eq!(base["read"], "prod");
    assert_eq!(lane["read"], "stress", "the lane reads its own rows");
    assert_eq!(lane["qualified_count"], 1);
    assert_eq!(lane["database"], "orders_shadow", "replies are not rewritten (README)");
    assert_eq!(lane["join"], serde_json::json!(["stress", "stress"]));
    assert_eq!(lane["prepared"], "stress-prepared", "prepared statements are rewritten too");
    for refused in ["grant", "set_global", "create_user", "system_write", "unparseable"] {
        assert_eq!(lane[refused][0], "error", "{refused}: {lane}");
        assert!(
            lane[refused][2].as_str().is_some_and(|e| e.contains("graylane: lane 'stress'")),
            "{refused}: {lane}"
        );
    }
    assert_eq!(lane["grant"][1], 1227);
    assert_eq!(lane["unparseable"][1], 1064);
    // What the server holds, asked over its socket.
    assert_eq!(sql("SELECT who FROM orders.t"), "prod+tx");
    assert_eq!(sql("SELECT who FROM orders_shadow.t"), "stress+tx");
    assert_eq!(sql("SELECT who FROM billing.inv ORDER BY id"), "prod\nprod-prepared");
    assert_eq!(sql("SELECT who FROM billing_shadow.inv ORDER BY id"), "stress\nstress-prepared");
    // The mysql command-line client from the lane (it sends its own startup queries).
    let (ok, out, err) = sb
        .pod("stress-app")
        .run(
            "mariadb",
            &[
                "--no-defaults",
                "-h",
                &vip,
                "-u",
                "app",
                "-psecret",
                "-N",
                "-B",
                "orders",
                "-e",
                "SELECT who FROM t",
            ],
        )
        .expect("mariadb client");
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "stress+tx");
    let m = sb.metrics();
    let count = |result: &str| {
        m.count(
            "graylane_data_commands_total",
            &[("lane", "stress"), ("protocol", "mysql"), ("result", result)],
        )
        .expect("metrics")
    };
    eprintln!(
        "measured: mysql lane: rewritten {} passed {} rejected {}",
        count("rewritten"),
        count("passed"),
        count("rejected")
    );
    // Refused: the five statements above; the rest is rewritten.
    assert_eq!(count("rejected"), 5.0);
    assert!(count("rewritten") >= 4.0, "rewritten {}", count("rewritten"));
    // The lane's `DROP DATABASE orders` is its own schema's: production stays.
    let (ok, out, err) = sb
        .pod("stress-app")
        .run("mariadb", &["--no-defaults", "-h", &vip, "-u", "app", "-psecret", "-e", "DROP DATABASE orders"])
        .expect("mariadb client");
    assert!(ok, "{out}{err}");
    assert_eq!(sql("SHOW DATABASES LIKE 'orders%'"), "orders");
}

#[test]
fn a_lane_with_its_own_redis_reaches_it_through_its_subset_over_opaque_tcp() {
    let Some(p) = privileged("data_subset") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    sb.add_pod(PodSpec::new("base-app")).expect("base");
    let dirs: Vec<tempfile::TempDir> =
        (0..2).map(|_| tempfile::Builder::new().prefix("graylane-redis-").tempdir().expect("dir")).collect();
    for (name, tag, dir) in [("redis-prod", None, &dirs[0]), ("redis-shadow", Some("stress"), &dirs[1])] {
        let spec = PodSpec::new(name).label("app", "redis");
        let pod = sb
            .add_pod(match tag {
                Some(t) => spec.tag(t),
                None => spec,
            })
            .expect("redis pod");
        pod.serve_redis(dir.path()).expect("redis-server");
    }
    // No dataLanes: the lane's own instance is its subset, as for HTTP.
    sb.add_service(ServiceSpec::new("redis", REDIS).named_port(6379, 6379, "redis").select("app", "redis"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let vip = REDIS.to_string();
    for (pod, value) in [("stress-app", "stress"), ("base-app", "prod")] {
        for _ in 0..5 {
            let (ok, out, err) = sb
                .pod(pod)
                .run("redis-cli", &["-h", &vip, "-p", "6379", "RPUSH", "writes", value])
                .expect("cli");
            assert!(ok, "{out}{err}");
        }
    }
    let local = |pod: &str| {
        let (_, out, _) = sb
            .pod(pod)
            .run("redis-cli", &["-h", "127.0.0.1", "-p", "6379", "LRANGE", "writes", "0", "-1"])
            .expect("cli");
        out.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    };
    let (prod, shadow) = (local("redis-prod"), local("redis-shadow"));
    eprintln!("measured: prod instance {prod:?}, shadow instance {shadow:?}");
    assert_eq!(prod, vec!["prod"; 5]);
    assert_eq!(shadow, vec!["stress"; 5]);
}
