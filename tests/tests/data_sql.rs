//! A MySQL lane, tested against the real MariaDB it imitates: a corpus of statements (the
//! ways the last release's parser was misled into production — comments MariaDB lexes
//! differently, character sets switched by number or through variables, backslashes that
//! stop escaping, executable comments, sequence functions — benign statements, and fuzzed
//! mutations of both) is sent from a `stress` pod through graylane, and MariaDB's own
//! counters say what each case touched. Nothing may touch production: neither through
//! graylane's rewriting alone (an account that could reach everything) nor with the lane's
//! store account (which MariaDB itself limits to the shadow schemas).

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, MariaDb, PodSpec, Sandbox, ServiceSpec, fixture, privileged};
use serde_json::Value;

const MYSQL: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 62);

/// Production (`orders`, `billing`) and the lane's copies; `app` may reach everything (a
/// lane without a store account), `stress` only the shadow schemas; userstat counts what
/// each table gives up.
const INIT: &str = "SET GLOBAL userstat = 1;\
    CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%' WITH GRANT OPTION;\
    CREATE USER 'stress'@'%' IDENTIFIED BY 'lane-secret';\
    GRANT ALL ON `%\\_shadow`.* TO 'stress'@'%';\
    CREATE DATABASE orders; CREATE TABLE orders.t (id INT PRIMARY KEY, who VARCHAR(40));\
    INSERT INTO orders.t VALUES (1, 'prod'), (2, 'prod');\
    CREATE TABLE orders.u (id INT); INSERT INTO orders.u VALUES (1);\
    CREATE SEQUENCE orders.s NOCACHE;\
    CREATE DATABASE billing; CREATE TABLE billing.inv (id INT PRIMARY KEY, who VARCHAR(40));\
    INSERT INTO billing.inv VALUES (1, 'prod');\
    CREATE DATABASE orders_shadow; CREATE TABLE orders_shadow.t LIKE orders.t;\
    CREATE TABLE orders_shadow.u LIKE orders.u; CREATE SEQUENCE orders_shadow.s NOCACHE;\
    CREATE DATABASE billing_shadow; CREATE TABLE billing_shadow.inv LIKE billing.inv;";

/// Production as INIT left it (run after a case that touched it, so each case is measured
/// against the same data).
const RESTORE: &str = "DROP DATABASE IF EXISTS orders; DROP DATABASE IF EXISTS billing;\
    CREATE DATABASE orders; CREATE TABLE orders.t (id INT PRIMARY KEY, who VARCHAR(40));\
    INSERT INTO orders.t VALUES (1, 'prod'), (2, 'prod');\
    CREATE TABLE orders.u (id INT); INSERT INTO orders.u VALUES (1);\
    CREATE SEQUENCE orders.s NOCACHE;\
    CREATE DATABASE billing; CREATE TABLE billing.inv (id INT PRIMARY KEY, who VARCHAR(40));\
    INSERT INTO billing.inv VALUES (1, 'prod')";

/// How the lane is configured in each run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// No store account: graylane's rewriting is the only wall.
    RewriteOnly,
    /// The store account, what graylane cannot read refused.
    Account,
    /// The store account, and what graylane cannot keep in the lane forwarded anyway: the
    /// store is the only wall for those.
    AccountPassthrough,
}

fn policy(lane: Lane) -> String {
    let lane = match lane {
        Lane::Account => "{lane: stress, schemaSuffix: _shadow, account: {secret: mysql-stress}}",
        Lane::AccountPassthrough => {
            "{lane: stress, schemaSuffix: _shadow, account: {secret: mysql-stress}, onUnsupported: passthrough}"
        }
        Lane::RewriteOnly => {
            "{lane: stress, schemaSuffix: _shadow, onUnsupported: reject, allowRewriteOnly: true}"
        }
    };
    format!(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: mysql}}\nspec:\n  service: mysql\n  fallback: {{isolated: [stress]}}\n  dataLanes:\n    lanes: [{lane}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: mysql-stress}}\ntype: kubernetes.io/basic-auth\nstringData: {{username: stress, password: lane-secret}}\n"
    )
}

/// Runs the corpus and the fuzzed cases from the lane; returns the cases' lines and the
/// summary.
fn differential(lane: Lane, fuzz: &str) -> (Vec<Value>, Value) {
    let account = lane != Lane::RewriteOnly;
    let name = match lane {
        Lane::RewriteOnly => "sql_rewrite",
        Lane::Account => "sql_store",
        Lane::AccountPassthrough => "sql_store_passthrough",
    };
    let Some(p) = privileged(name) else { return (Vec::new(), Value::Null) };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    let db = MariaDb::start(&mut sb, "mysql", INIT).expect("mariadb");
    let production = "CHECKSUM TABLE orders.t, orders.u, billing.inv";
    let before = db.sql(production).expect("checksum");
    sb.add_service(ServiceSpec::new("mysql", MYSQL).named_port(3306, 3306, "mysql").select("app", "mysql"));
    sb.add_document(&policy(lane));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    if account {
        sb.admin().wait_data_lane("default/mysql", "stress", "store-enforced").expect("store-enforced");
    }
    let client = fixture("mysql_differential.py");
    let corpus = fixture("mysql_corpus.json");
    let socket = db.socket().display().to_string();
    let args = [
        client.to_str().expect("path"),
        &MYSQL.to_string(),
        "app",
        "secret",
        &socket,
        corpus.to_str().expect("path"),
        "23",
        fuzz,
        RESTORE,
    ];
    let (ok, out, err) = sb.pod("stress-app").run("python3", &args).expect("differential client");
    assert!(ok, "{out}\n{err}");
    let lines: Vec<Value> =
        out.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect("json")).collect();
    let (summary, cases) = lines.split_last().expect("summary");
    check(cases, summary, fuzz);
    // What production holds is what it held; the sequence was never moved.
    assert_eq!(db.sql(production).expect("checksum"), before, "production rows are byte-identical");
    assert_eq!(
        db.sql("SELECT NEXTVAL(orders.s)").expect("nextval"),
        "1",
        "the production sequence never moved"
    );
    (cases.to_vec(), summary.clone())
}

fn check(cases: &[Value], summary: &Value, fuzz: &str) {
    if summary.is_null() {
        return;
    }
    eprintln!("measured: {summary}");
    let touched: Vec<&Value> =
        cases.iter().filter(|c| c["touched"].as_array().is_some_and(|t| !t.is_empty())).collect();
    assert!(touched.is_empty(), "cases that touched production: {touched:#?}");
    assert_eq!(summary["touched"], serde_json::json!([]), "{summary}");
    let corpus = fixture("mysql_corpus.json");
    let corpus: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus).expect("corpus")).expect("json");
    let (benign, attacks) = (
        corpus["benign"].as_array().expect("benign").len(),
        corpus["attacks"].as_array().expect("attacks").len(),
    );
    assert!(
        summary["cases"].as_u64() >= Some((benign + attacks) as u64 + fuzz.parse::<u64>().expect("count")),
        "{summary}"
    );
    for c in cases.iter().filter(|c| c["kind"] == "benign") {
        assert!(
            c["results"].as_array().is_some_and(|r| r.iter().all(|x| x == "ok")),
            "a benign case must run: {c}"
        );
    }
    for c in cases.iter().filter(|c| c["kind"] == "attack") {
        eprintln!("measured: attack {} → {}", c["text"], c["results"]);
    }
    assert_eq!(cases.iter().filter(|c| c["kind"] == "benign").count(), benign);
    assert_eq!(cases.iter().filter(|c| c["kind"] == "attack").count(), attacks);
}

// Fuzzed cases per run come on top of the corpus, from a fixed seed: the same cases every
// run.

#[test]
fn graylane_alone_keeps_a_lane_out_of_production_whatever_the_statement() {
    differential(Lane::RewriteOnly, "1500");
}

#[test]
fn the_store_account_keeps_a_lane_out_of_production_whatever_the_statement() {
    differential(Lane::Account, "500");
}

#[test]
fn the_store_refuses_what_graylane_lets_through() {
    let (cases, summary) = differential(Lane::AccountPassthrough, "300");
    if summary.is_null() {
        return;
    }
    // With the account, what graylane lets through and MariaDB refuses is denied by the
    // store, never served from production.
    let denied = cases
        .iter()
        .flat_map(|c| c["results"].as_array().into_iter().flatten())
        .filter(|r| r[0] == "server" && matches!(r[1].as_u64(), Some(1044 | 1142 | 1143 | 1227 | 1370)))
        .count();
    eprintln!("measured: store denials among the corpus's results: {denied}");
    assert!(
        denied >= 3,
        "statements graylane could not keep in the lane reached the store and were denied there"
    );
}
