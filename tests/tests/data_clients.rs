//! Standard MySQL clients nobody here wrote, in a store-enforced lane against a real
//! MariaDB: sysbench (`oltp_read_write` prepare, run and cleanup, with server-side
//! prepared statements and as text), mysqlslap's generated load, a mysqldump of production
//! restored into the lane, the `mariadb` client, PyMySQL and MySQL Connector with prepared
//! statements. Each leaves production byte-identical (checksums of every production table)
//! and puts its objects in the lane's schemas only.

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, MariaDb, PodSpec, Sandbox, ServiceSpec, fixture, privileged};

const MYSQL: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 73);

const INIT: &str = "CREATE USER 'app'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'app'@'%';\
    CREATE USER 'stress'@'%' IDENTIFIED BY 'lane-secret'; GRANT ALL ON `%\\_shadow`.* TO 'stress'@'%';\
    CREATE DATABASE sbtest; CREATE TABLE sbtest.sbtest1 (id INT PRIMARY KEY, k INT, c CHAR(120), pad CHAR(60));\
    INSERT INTO sbtest.sbtest1 VALUES (1, 1, 'production', 'production');\
    CREATE DATABASE orders; CREATE TABLE orders.t (id INT PRIMARY KEY AUTO_INCREMENT, who VARCHAR(40), b BLOB);\
    INSERT INTO orders.t (who, b) VALUES ('prod', 'x\\0y\\\\z'), ('prod', 0xff00), ('caf\\xc3\\xa9', NULL);\
    CREATE SEQUENCE orders.s; CREATE TABLE orders.u (id INT);\
    CREATE DATABASE billing; CREATE TABLE billing.inv (id INT PRIMARY KEY, who VARCHAR(40));\
    INSERT INTO billing.inv VALUES (1, 'prod');\
    CREATE DATABASE sbtest_shadow; CREATE DATABASE orders_shadow; CREATE DATABASE billing_shadow;\
    CREATE TABLE orders_shadow.t LIKE orders.t; CREATE TABLE billing_shadow.inv LIKE billing.inv;";

/// Every production table's checksum.
fn production(db: &MariaDb) -> String {
    let tables = db
        .sql(
            "SELECT CONCAT('`', TABLE_SCHEMA, '`.`', TABLE_NAME, '`') FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA IN ('sbtest', 'orders', 'billing') AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
        )
        .expect("tables");
    let list: Vec<&str> = tables.lines().collect();
    db.sql(&format!("CHECKSUM TABLE {}", list.join(", "))).expect("checksum")
}

fn lane_tables(db: &MariaDb, schema: &str) -> String {
    db.sql(&format!(
        "SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}'"
    ))
    .expect("tables")
}

#[test]
fn standard_mysql_clients_run_in_a_store_enforced_lane_and_leave_production_as_it_was() {
    let Some(p) = privileged("data_clients") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stress-app").tag("stress")).expect("stress");
    let db = MariaDb::start(&mut sb, "mysql", INIT).expect("mariadb");
    let before = production(&db);
    sb.add_service(ServiceSpec::new("mysql", MYSQL).named_port(3306, 3306, "mysql").select("app", "mysql"));
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: mysql}\nspec:\n  service: mysql\n  dataLanes:\n    lanes: [{lane: stress, schemaSuffix: _shadow, account: {secret: mysql-stress}}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: mysql-stress}\nstringData: {username: stress, password: lane-secret}\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    sb.admin().wait_data_lane("default/mysql", "stress", "store-enforced").expect("store-enforced");
    let vip = MYSQL.to_string();
    let pod = sb.pod("stress-app");
    let run = |program: &str, args: &[&str]| {
        let (ok, out, err) = pod.run(program, args).expect(program);
        assert!(ok, "{program} {args:?}:\n{out}\n{err}");
        out
    };

    // sysbench oltp_read_write: prepare, run, cleanup; prepared statements, then text.
    for ps in ["auto", "disable"] {
        let host = format!("--mysql-host={vip}");
        let common = [
            "oltp_read_write",
            "--db-driver=mysql",
            &host,
            "--mysql-user=app",
            "--mysql-password=secret",
            "--mysql-db=sbtest",
            "--tables=2",
            "--table-size=200",
            // One thread: two would deadlock each other now and then (sysbench ignores
            // those errors; here every statement must succeed).
            "--threads=1",
            "--events=300",
            "--time=0",
        ];
        let with = |stage: &str| -> Vec<String> {
            let mut a: Vec<String> = common.iter().map(|s| (*s).to_owned()).collect();
            a.push(format!("--db-ps-mode={ps}"));
            a.push(stage.to_owned());
            a
        };
        let args = with("prepare");
        run("sysbench", &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(lane_tables(&db, "sbtest_shadow"), "sbtest1,sbtest2");
        let args = with("run");
        let out = run("sysbench", &args.iter().map(String::as_str).collect::<Vec<_>>());
        let tps = out.lines().find(|l| l.contains("transactions:")).unwrap_or_default().trim().to_owned();
        eprintln!("measured: sysbench oltp_read_write --db-ps-mode={ps} through the lane: {tps}");
        assert!(out.contains("ignored errors:                      0"), "{out}");
        let args = with("cleanup");
        run("sysbench", &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(lane_tables(&db, "sbtest_shadow"), "NULL");
    }

    // PyMySQL and MySQL Connector (server-side prepared statements), as in the rewrite
    // tests, now as the lane's account.
    let client = fixture("mysql_lane_client.py");
    let out = run("python3", &[client.to_str().expect("path"), &vip, "stress", "-"]);
    assert!(out.contains("\"prepared\": \"stress-prepared\""), "{out}");

    // mysqlslap: its own schema, generated tables and statements.
    let out = run(
        "mariadb-slap",
        &[
            "--no-defaults",
            "-h",
            &vip,
            "-u",
            "app",
            "-psecret",
            "--auto-generate-sql",
            "--auto-generate-sql-load-type=mixed",
            "--number-of-queries=200",
            "--concurrency=2",
            "--iterations=1",
            "--no-drop",
        ],
    );
    eprintln!("measured: mysqlslap through the lane:\n{}", out.trim());
    assert_eq!(lane_tables(&db, "mysqlslap_shadow"), "t1");
    assert_eq!(
        db.sql("SHOW DATABASES LIKE 'mysqlslap'").expect("dbs"),
        "",
        "nothing of it in a production schema"
    );

    // A dump of production (taken in the store's own pod), restored through the lane.
    let dump = sb.scratch().join("orders.sql");
    // (Bytes as they are: the dump holds binary values.)
    let dumped = format!(
        "mariadb-dump --no-defaults -u root --socket={} orders > {}",
        db.socket().display(),
        dump.display()
    );
    let (ok, _, err) = sb.pod("mysql").run("sh", &["-c", &dumped]).expect("dump");
    assert!(ok, "{err}");
    run(
        "sh",
        &["-c", &format!("mariadb --no-defaults -h {vip} -u app -psecret orders < {}", dump.display())],
    );
    assert_eq!(
        db.sql("CHECKSUM TABLE orders_shadow.t").expect("lane").split('\t').nth(1),
        db.sql("CHECKSUM TABLE orders.t").expect("prod").split('\t').nth(1),
        "the lane holds what production held"
    );
    assert_eq!(lane_tables(&db, "orders_shadow"), "s,t,u");

    assert_eq!(production(&db), before, "every production table is byte-identical");
}
