//! Data lanes the store itself enforces, against real servers: a lane's connections log in
//! as its store account (a Redis ACL user, a MariaDB account, a NATS user), whatever the
//! client presents; graylane reads what each account can reach and reports the lane
//! `store-enforced` or `rewrite-only` (`/routes`, `graylane check`, the metric); an isolated
//! lane waits for a store-enforced account. And the ways around a lane that the last
//! release left open: a pod holding large unfinished commands (memory), a lane pod dialing
//! the store's pod IP, graylane's own NATS errors ahead of the server's INFO.

use std::{net::Ipv4Addr, process::Command, time::Duration};

use graylane_tests::{
    AgentOptions, MariaDb, PodSpec, RabbitMq, Sandbox, ServiceSpec, binary, fixture, privileged, usage,
};
use serde_json::Value;

const REDIS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 70);
const NATS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 71);
const MYSQL: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 72);
const AMQP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 74);

/// An isolated `stress` lane of `service` whose connections log in as Secret `<service>-stress`.
fn policy(service: &str, mapping: &str, username: &str, password: &str) -> String {
    format!(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: {service}}}\nspec:\n  service: {service}\n  fallback: {{isolated: [stress, gray]}}\n  dataLanes:\n    lanes: [{mapping}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {service}-stress}}\ntype: kubernetes.io/basic-auth\nstringData: {{username: {username}, password: {password}}}\n"
    )
}

fn data_lane(sb: &Sandbox, service: &str) -> Value {
    let routes = sb.admin().json(&format!("/routes?service={service}")).expect("routes");
    routes[0]["data_lanes"][0].clone()
}

fn cli(sb: &Sandbox, pod: &str, host: &str, args: &[&str]) -> String {
    let mut a = vec!["-h", host, "-p", "6379"];
    a.extend_from_slice(args);
    let (ok, out, err) = sb.pod(pod).run("redis-cli", &a).expect("redis-cli");
    assert!(ok, "{err}");
    out.trim().to_owned()
}

/// Every production key and value, as the store's default user sees them (inside its pod).
fn production(sb: &Sandbox) -> Vec<String> {
    let keys = cli(sb, "redis", "127.0.0.1", &["--scan"]);
    let mut out: Vec<String> = keys
        .lines()
        .filter(|k| !k.starts_with("shadow:"))
        .map(|k| format!("{k}={}", cli(sb, "redis", "127.0.0.1", &["DUMP", k])))
        .collect();
    out.sort();
    out
}

#[test]
fn redis_lanes_log_in_as_their_acl_user_and_an_isolated_lane_waits_for_it() {
    let Some(p) = privileged("accounts_redis") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    sb.add_pod(PodSpec::new("base-app")).expect("base");
    let dir = tempfile::Builder::new().prefix("graylane-redis-").tempdir().expect("dir");
    sb.add_pod(PodSpec::new("redis").label("app", "redis"))
        .expect("redis")
        .serve_redis(dir.path())
        .expect("redis-server");
    // Production data, and an account that can reach all of it (a wrong ACL).
    for i in 0..20 {
        cli(&sb, "redis", "127.0.0.1", &["SET", &format!("order:{i}"), "prod"]);
    }
    cli(&sb, "redis", "127.0.0.1", &["ACL", "SETUSER", "stress", "on", ">lane-secret", "~*", "+@all"]);
    sb.add_service(ServiceSpec::new("redis", REDIS).named_port(6379, 6379, "redis").select("app", "redis"));
    sb.add_document(&policy(
        "redis",
        "{lane: stress, keyPrefix: 'shadow:', account: {secret: redis-stress}}",
        "stress",
        "lane-secret",
    ));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let vip = REDIS.to_string();
    let before = production(&sb);

    // Rewrite-only: the store would let the account reach production, so the isolated
    // lane is not served.
    sb.admin().wait_data_lane("default/redis", "stress", "rewrite-only").expect("rewrite-only");
    let lane = data_lane(&sb, "default/redis");
    eprintln!("measured: {lane}");
    assert_eq!(lane["served"], false);
    let detail = lane["enforcement_detail"].as_str().unwrap_or_default();
    assert!(detail.contains("FLUSHALL") && detail.contains("keys outside the lane's prefix"), "{detail}");
    assert_eq!(lane["account"], "Secret default/redis-stress, user stress");
    let refused = cli(&sb, "stress-app", &vip, &["SET", "order:1", "stress"]);
    assert!(
        refused.contains("graylane: lane 'stress' may not connect here: its store account is rewrite-only"),
        "{refused}"
    );
    let m = sb.metrics();
    let enforced = |m: &graylane_tests::Admin| {
        m.metric(
            "graylane_data_lane_store_enforced",
            &[("destination_service", "default/redis"), ("lane", "stress")],
        )
    };
    assert_eq!(enforced(&m).expect("metric"), 0.0);

    // The account limited to the lane's keys and channels: store-enforced within the retry.
    cli(
        &sb,
        "redis",
        "127.0.0.1",
        &[
            "ACL",
            "SETUSER",
            "stress",
            "resetkeys",
            "~shadow:*",
            "resetchannels",
            "&shadow:*",
            "-@all",
            "+@all",
            "-@dangerous",
            "-function",
        ],
    );
    sb.admin()
        .wait_data_lane_for("default/redis", "stress", "store-enforced", Duration::from_secs(15))
        .expect("store-enforced");
    assert_eq!(enforced(&m).expect("metric"), 1.0);
    // The lane's connection is the account's, whatever the client says.
    assert_eq!(
        cli(&sb, "stress-app", &vip, &["--user", "default", "--pass", "wrong", "ACL", "WHOAMI"]),
        "stress"
    );
    assert_eq!(cli(&sb, "stress-app", &vip, &["SET", "order:1", "stress"]), "OK");
    assert_eq!(cli(&sb, "redis", "127.0.0.1", &["GET", "shadow:order:1"]), "stress");
    assert_eq!(
        cli(&sb, "base-app", &vip, &["ACL", "WHOAMI"]),
        "default",
        "a base pod's connection is its own"
    );
    // Real clients: redis-py (RESP2 and RESP3, pipelines, transactions, pub/sub) and
    // redis-benchmark, as the ACL user.
    let client = fixture("redis_lane_client.py");
    for proto in ["2", "3"] {
        let (ok, out, err) = sb
            .pod("stress-app")
            .run("python3", &[client.to_str().expect("path"), &vip, "6379", proto, "stress", "scan"])
            .expect("py");
        assert!(ok, "{out}{err}");
        assert!(out.contains("\"get\": \"stress\""), "{out}");
    }
    let (ok, out, err) = sb
        .pod("stress-app")
        .run(
            "redis-benchmark",
            &[
                "-h",
                &vip,
                "-p",
                "6379",
                "-n",
                "2000",
                "-c",
                "4",
                "-P",
                "8",
                "-t",
                "set,get,incr,lpush,rpop,sadd,hset",
                "-q",
            ],
        )
        .expect("redis-benchmark");
    assert!(ok, "{out}{err}");
    eprintln!("measured: redis-benchmark through the lane (ACL user):\n{out}");
    assert!(!out.to_ascii_lowercase().contains("error"), "{out}");
    let shadow = cli(&sb, "redis", "127.0.0.1", &["--scan", "--pattern", "shadow:*"]);
    assert!(
        shadow.lines().any(|k| k.starts_with("shadow:key:")),
        "redis-benchmark's keys are the lane's: {shadow}"
    );
    // What graylane lets through and the ACL refuses (a passthrough lane would): the store
    // says no. FLUSHALL never reaches it: graylane refuses it first.
    assert!(
        cli(&sb, "stress-app", &vip, &["FLUSHALL"]).contains("graylane: lane 'stress' may not run FLUSHALL")
    );
    assert_eq!(production(&sb), before, "production keys and values are byte-identical");
}

#[test]
fn nats_lanes_publish_as_their_user_and_graylane_errors_follow_the_servers_info() {
    let Some(p) = privileged("accounts_nats") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    for (name, tag) in
        [("gray-producer", Some("gray")), ("gray-consumer", Some("gray")), ("base-consumer", None)]
    {
        let spec = PodSpec::new(name);
        sb.add_pod(match tag {
            Some(t) => spec.tag(t),
            None => spec,
        })
        .expect("pod");
    }
    let conf = sb.scratch().join("nats.conf");
    std::fs::write(
        &conf,
        "authorization { users = [\n  {user: app, password: app-secret}\n  {user: gray, password: lane-secret, permissions: {publish: {allow: \"gray.>\"}, subscribe: {allow: \"gray.>\"}}}\n] }\n",
    )
    .expect("conf");
    let store = sb.add_pod(PodSpec::new("nats").label("app", "nats")).expect("nats");
    store
        .spawn("nats-server", &["-a", "0.0.0.0", "-p", "4222", "-c", conf.to_str().expect("conf")])
        .expect("nats-server");
    store.wait_listening(4222).expect("listening");
    sb.add_service(ServiceSpec::new("nats", NATS).named_port(4222, 4222, "nats").select("app", "nats"));
    sb.add_document(&policy(
        "nats",
        "{lane: gray, subjectPrefix: 'gray.', account: {secret: nats-stress}}",
        "gray",
        "lane-secret",
    ));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    sb.admin().wait_data_lane("default/nats", "gray", "store-enforced").expect("store-enforced");
    let client = fixture("nats_lane_client.py");
    let client = client.to_str().expect("path");
    // The lane's clients present the production account: graylane logs them in as `gray`.
    let url = format!("nats://app:app-secret@{NATS}:4222");
    let gray =
        sb.pod("gray-consumer").start("python3", &[client, "sub", &url, "orders.>", "3"]).expect("gray sub");
    let base = sb.pod("base-consumer").start("python3", &[client, "sub", &url, ">", "3"]).expect("base sub");
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, out, err) = sb
        .pod("gray-producer")
        .run("python3", &[client, "pub", &url, "orders.created", "gray", "5"])
        .expect("pub");
    assert!(ok, "{out}{err}");
    let gray = String::from_utf8_lossy(&gray.wait_output().expect("gray").stdout).into_owned();
    let base = String::from_utf8_lossy(&base.wait_output().expect("base").stdout).into_owned();
    eprintln!("measured: gray consumer {gray}\nmeasured: base consumer {base}");
    let got = |text: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("json");
        v["got"].as_array().into_iter().flatten().filter_map(|m| m[1].as_str().map(str::to_owned)).collect()
    };
    let gray_got = got(&gray);
    assert!(gray_got.len() == 5 && gray_got.iter().all(|t| t.starts_with("gray-")), "{gray}");
    assert!(got(&base).is_empty(), "a base consumer of > never sees the lane's messages: {base}");
    // Request/reply: the reply inbox is the lane's too (`gray._INBOX.…`), so the account
    // needs no production inbox.
    let (ok, out, err) =
        sb.pod("gray-producer").run("python3", &[client, "req", &url, "orders.price"]).expect("req");
    assert!(ok && out.contains("\"pong:ping\""), "{out}{err}");
    // A client that writes before reading: graylane's own -ERR comes after the server's INFO.
    let (ok, out, err) = sb
        .pod("gray-producer")
        .run("python3", &[&fixture("nats_first_line.py").display().to_string(), &NATS.to_string()])
        .expect("raw");
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("INFO {"), "the server's INFO first: {out}");
    assert!(out.contains("-ERR 'Permissions Violation"), "{out}");
}

#[test]
fn mysql_isolated_lanes_wait_for_an_account_limited_to_their_schemas() {
    let Some(p) = privileged("accounts_mysql") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    let init = "CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%';\
        CREATE USER 'stress'@'%' IDENTIFIED BY 'lane-secret'; GRANT ALL ON *.* TO 'stress'@'%';\
        CREATE DATABASE orders; CREATE TABLE orders.t (id INT PRIMARY KEY, who VARCHAR(40));\
        INSERT INTO orders.t VALUES (1, 'prod');\
        CREATE DATABASE orders_shadow; CREATE TABLE orders_shadow.t LIKE orders.t;";
    let db = MariaDb::start(&mut sb, "mysql", init).expect("mariadb");
    sb.add_service(ServiceSpec::new("mysql", MYSQL).named_port(3306, 3306, "mysql").select("app", "mysql"));
    sb.add_document(&policy(
        "mysql",
        "{lane: stress, schemaSuffix: _shadow, account: {secret: mysql-stress}}",
        "stress",
        "lane-secret",
    ));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    sb.admin().wait_data_lane("default/mysql", "stress", "rewrite-only").expect("rewrite-only");
    let detail = data_lane(&sb, "default/mysql")["enforcement_detail"].clone();
    assert!(detail.as_str().is_some_and(|d| d.contains("global privileges")), "{detail}");
    let vip = MYSQL.to_string();
    let query = |sql: &str| {
        sb.pod("stress-app")
            .run(
                "mariadb",
                &["--no-defaults", "-h", &vip, "-u", "app", "-psecret", "-N", "-B", "orders", "-e", sql],
            )
            .expect("mariadb client")
    };
    let (ok, _, err) = query("SELECT who FROM t");
    assert!(
        !ok && err
            .contains("graylane: lane 'stress' may not run a login here: its store account is rewrite-only"),
        "{err}"
    );
    db.sql("REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'stress'@'%'; GRANT ALL ON `orders\\_shadow`.* TO 'stress'@'%'")
        .expect("grants");
    sb.admin()
        .wait_data_lane_for("default/mysql", "stress", "store-enforced", Duration::from_secs(15))
        .expect("store-enforced");
    let (ok, out, err) = query("INSERT INTO t VALUES (2, 'stress'); SELECT CURRENT_USER(), who FROM t");
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "stress@%\tstress",
        "the lane's connection is the account's, in the lane's schema"
    );
    assert_eq!(db.sql("SELECT who FROM orders.t").expect("prod"), "prod");
    // graylane check, on the node, says the same.
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", sb.node_netns()))
        .arg("--")
        .arg(binary().expect("binary"))
        .args([
            "check",
            "--inventory",
            &sb.inventory_path().display().to_string(),
            "--proxy-addr",
            "10.200.0.1",
        ])
        .args([
            "--pin-dir",
            &sb.pin_dir().display().to_string(),
            "--cgroup-root",
            &sb.cgroup_root().display().to_string(),
        ])
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("measured: graylane check:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("✓ data lane") && l.contains("default/mysql lane stress: store-enforced")),
        "{text}"
    );
}

#[test]
fn one_pod_holding_unfinished_commands_cannot_grow_the_agent_past_its_budget() {
    let Some(p) = privileged("accounts_memory") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    sb.add_pod(PodSpec::new("other-app").tag("stress")).expect("other");
    let dir = tempfile::Builder::new().prefix("graylane-redis-").tempdir().expect("dir");
    sb.add_pod(PodSpec::new("redis").label("app", "redis"))
        .expect("redis")
        .serve_redis(dir.path())
        .expect("redis-server");
    sb.add_service(ServiceSpec::new("redis", REDIS).named_port(6379, 6379, "redis").select("app", "redis"));
    // Served without an account (the memory bound holds either way).
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: redis}\nspec:\n  service: redis\n  dataLanes:\n    lanes: [{lane: stress, keyPrefix: 'shadow:', allowRewriteOnly: true}]\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let pid = sb.agent().expect("agent").pid().expect("pid");
    let (rss_before, _) = usage(pid);
    // Twelve connections, each holding all but the last MiB of a 60 MiB SET.
    let size = (60 << 20).to_string();
    let held = sb
        .pod("stress-app")
        .start(
            "python3",
            &[
                fixture("unfinished_commands.py").to_str().expect("path"),
                &REDIS.to_string(),
                "6379",
                "12",
                &size,
                "8",
            ],
        )
        .expect("client");
    let mut peak = rss_before;
    let until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < until {
        peak = peak.max(usage(pid).0);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Meanwhile another pod of the lane is served.
    assert_eq!(cli(&sb, "other-app", &REDIS.to_string(), &["SET", "k", "v"]), "OK");
    let out = String::from_utf8_lossy(&held.wait_output().expect("client").stdout).into_owned();
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).expect("json");
    let grown_mib = (peak.saturating_sub(rss_before)) / 1024;
    eprintln!(
        "measured: agent RSS {} MiB → peak {} MiB (+{grown_mib} MiB) with 12 unfinished 60 MiB commands from one pod; {v}",
        rss_before / 1024,
        peak / 1024
    );
    // The per-pod budget (64 MiB by default) holds one of them; the other eleven are refused.
    assert_eq!(v["closed"].as_array().map(Vec::len), Some(11), "{v}");
    assert!(
        v["errors"][0].as_str().is_some_and(|e| e.contains("this pod's data-lane connections hold 64 MiB")),
        "{v}"
    );
    assert!(grown_mib < 64 + 48, "the agent grew by {grown_mib} MiB: more than the pod's budget and slack");
    let refusals = sb
        .metrics()
        .metric("graylane_data_budget_refusals_total", &[("lane", "stress"), ("scope", "pod")])
        .expect("metric");
    assert_eq!(refusals, 11.0);
}

#[test]
fn a_lane_calling_the_stores_pod_ip_keeps_its_data_lane() {
    let Some(p) = privileged("accounts_pod_ip") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    let dir = tempfile::Builder::new().prefix("graylane-redis-").tempdir().expect("dir");
    let store = sb.add_pod(PodSpec::new("redis").label("app", "redis")).expect("redis");
    store.serve_redis(dir.path()).expect("redis-server");
    let pod_ip = store.ip.to_string();
    sb.add_service(ServiceSpec::new("redis", REDIS).named_port(6379, 6379, "redis").select("app", "redis"));
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: redis}\nspec:\n  service: redis\n  dataLanes:\n    lanes: [{lane: stress, keyPrefix: 'shadow:', allowRewriteOnly: true}]\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    // As a Sentinel or a replica list would hand it out: the pod's own address.
    assert_eq!(cli(&sb, "stress-app", &pod_ip, &["SET", "order:1", "stress"]), "OK");
    assert_eq!(cli(&sb, "redis", "127.0.0.1", &["GET", "shadow:order:1"]), "stress");
    assert_eq!(cli(&sb, "redis", "127.0.0.1", &["EXISTS", "order:1"]), "0", "production was not written");
    assert!(
        cli(&sb, "stress-app", &pod_ip, &["FLUSHALL"])
            .contains("graylane: lane 'stress' may not run FLUSHALL")
    );
}

#[test]
fn the_kubernetes_source_reads_store_accounts_from_labelled_secrets_only() {
    let Some(p) = privileged("accounts_kube") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    let dir = tempfile::Builder::new().prefix("graylane-redis-").tempdir().expect("dir");
    sb.add_pod(PodSpec::new("redis").label("app", "redis"))
        .expect("redis")
        .serve_redis(dir.path())
        .expect("redis-server");
    cli(
        &sb,
        "redis",
        "127.0.0.1",
        &[
            "ACL",
            "SETUSER",
            "stress",
            "on",
            ">lane-secret",
            "~shadow:*",
            "&shadow:*",
            "+@all",
            "-@dangerous",
            "-function",
        ],
    );
    sb.add_service(ServiceSpec::new("redis", REDIS).named_port(6379, 6379, "redis").select("app", "redis"));
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: redis}\nspec:\n  service: redis\n  fallback: {isolated: [stress, gray]}\n  dataLanes:\n    lanes:\n    - {lane: stress, keyPrefix: 'shadow:', account: {secret: redis-stress}}\n    - {lane: gray, keyPrefix: 'gray:', account: {secret: unlabelled}}\n",
    );
    // A Secret the agent may read (labelled), and one it may not.
    sb.add_document(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: redis-stress, labels: {graylane.io/data-account: \"true\"}}\ndata: {username: c3RyZXNz, password: bGFuZS1zZWNyZXQ=}\n",
    );
    sb.add_document("apiVersion: v1\nkind: Secret\nmetadata: {name: unlabelled}\nstringData: {username: gray, password: x}\n");
    let kubeconfig = sb.start_fake_apiserver(0).expect("fake apiserver");
    let opts = AgentOptions { kubeconfig: Some(kubeconfig), ..Default::default() };
    if let Err(e) = sb.start_agent(&opts) {
        panic!("{e}\nfake apiserver:\n{}", sb.node_log(0));
    }
    sb.admin().wait_data_lane("default/redis", "stress", "store-enforced").expect("store-enforced");
    let routes = sb.admin().json("/routes?service=default/redis").expect("routes");
    let gray =
        routes[0]["data_lanes"].as_array().and_then(|l| l.iter().find(|d| d["lane"] == "gray").cloned());
    assert_eq!(
        gray.map(|g| g["account"].clone()),
        Some(Value::from(
            "Secret default/unlabelled not found (it must be in the policy's namespace; in Kubernetes, labelled graylane.io/data-account)"
        )),
        "{routes}"
    );
    assert_eq!(cli(&sb, "stress-app", &REDIS.to_string(), &["SET", "order:1", "stress"]), "OK");
    assert_eq!(cli(&sb, "redis", "127.0.0.1", &["GET", "shadow:order:1"]), "stress");
}

#[test]
fn a_rabbitmq_lane_opens_its_own_virtual_host_as_its_own_user() {
    let Some(p) = privileged("accounts_amqp") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    sb.add_pod(PodSpec::new("base-app")).expect("base");
    let broker = RabbitMq::start(&mut sb, "rabbitmq").expect("rabbitmq");
    for args in [
        &["add_user", "app", "app-secret"][..],
        &["set_permissions", "-p", "/", "app", ".*", ".*", ".*"],
        &["add_vhost", "stress"],
        &["add_user", "stress", "lane-secret"],
        &["set_permissions", "-p", "stress", "stress", ".*", ".*", ".*"],
        // A wrong grant first: the lane's user may also use production's virtual host.
        &["set_permissions", "-p", "/", "stress", ".*", ".*", ".*"],
    ] {
        broker.ctl(&sb, args).expect("rabbitmqctl");
    }
    sb.add_service(
        ServiceSpec::new("rabbitmq", AMQP).named_port(5672, 5672, "amqp").select("app", "rabbitmq"),
    );
    sb.add_document(&policy(
        "rabbitmq",
        "{lane: stress, virtualHost: stress, account: {secret: rabbitmq-stress}}",
        "stress",
        "lane-secret",
    ));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    sb.admin().wait_data_lane("default/rabbitmq", "stress", "rewrite-only").expect("rewrite-only");
    let detail = data_lane(&sb, "default/rabbitmq")["enforcement_detail"].clone();
    assert_eq!(detail, "the account may open the virtual host /");
    let client = fixture("amqp_client.py");
    let client = client.to_str().expect("path");
    let vip = AMQP.to_string();
    let amqp = |pod: &str, args: &[&str]| -> Value {
        let mut a = vec![client];
        a.extend_from_slice(args);
        let (ok, out, err) = sb.pod(pod).run("python3", &a).expect("pika");
        assert!(ok, "{out}{err}");
        serde_json::from_str(out.lines().last().unwrap_or("{}")).expect("json")
    };
    let prod = ["pub", &vip, "app", "app-secret", "/", "orders"];
    let refused = amqp("stress-app", &[&prod[..], &["stress", "1"]].concat());
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("graylane: lane 'stress' may not connect here")),
        "{refused}"
    );
    broker.ctl(&sb, &["clear_permissions", "-p", "/", "stress"]).expect("revoke");
    sb.admin()
        .wait_data_lane_for("default/rabbitmq", "stress", "store-enforced", Duration::from_secs(15))
        .expect("store-enforced");
    // Both pods run the same code with production's credentials and virtual host.
    assert_eq!(amqp("base-app", &[&prod[..], &["prod", "4"]].concat())["published"], 4);
    assert_eq!(amqp("stress-app", &[&prod[..], &["stress", "6"]].concat())["published"], 6);
    let queues = |vhost: &str| {
        broker.ctl(&sb, &["-q", "list_queues", "-p", vhost, "name", "messages"]).expect("queues")
    };
    eprintln!("measured: queues in / {:?}, in stress {:?}", queues("/"), queues("stress"));
    assert!(queues("/").contains("orders\t4"), "production's queue holds production's messages only");
    assert!(queues("stress").contains("orders\t6"), "the lane's messages are in its own virtual host");
    // Consumers: production's never sees the lane's messages, the lane's only its own.
    let get = ["get", &vip, "app", "app-secret", "/", "orders"];
    let base_got = amqp("base-app", &get)["got"].clone();
    let lane_got = amqp("stress-app", &get)["got"].clone();
    assert!(
        base_got.as_array().is_some_and(
            |g| g.len() == 4 && g.iter().all(|m| m.as_str().is_some_and(|s| s.starts_with("prod-")))
        ),
        "{base_got}"
    );
    assert!(
        lane_got.as_array().is_some_and(
            |g| g.len() == 6 && g.iter().all(|m| m.as_str().is_some_and(|s| s.starts_with("stress-")))
        ),
        "{lane_got}"
    );
}
