use std::collections::BTreeMap;

use super::{Refusal, Schemas, rewrite};

fn lane() -> Schemas {
    Schemas {
        suffix: Some("_shadow".into()),
        map: BTreeMap::from([("billing".into(), "billing_stress".into())]),
    }
}

fn ok(sql: &str) -> Option<String> {
    rewrite(sql, &lane()).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

fn refused(sql: &str) {
    assert!(rewrite(sql, &lane()).is_err(), "should be refused: {sql} → {:?}", rewrite(sql, &lane()));
}

#[test]
fn schema_qualified_names_move_to_the_lane_and_the_rest_stays_as_written() {
    assert_eq!(ok("SELECT * FROM t WHERE id = 1"), None, "unqualified: the connection's schema is mapped");
    assert_eq!(ok("SELECT a.x FROM orders.t AS a").as_deref(), Some("SELECT a.x FROM orders_shadow.t AS a"));
    assert_eq!(
        ok("insert into billing.inv (id) values (?)").as_deref(),
        Some("insert into billing_stress.inv (id) values (?)")
    );
    assert_eq!(
        ok("UPDATE orders.t SET who = 'x\\'y' WHERE orders.t.id = 2").as_deref(),
        Some("UPDATE orders_shadow.t SET who = 'x\\'y' WHERE orders_shadow.t.id = 2")
    );
    assert_eq!(ok("USE orders").as_deref(), Some("USE orders_shadow"));
    assert_eq!(
        ok("CREATE DATABASE IF NOT EXISTS orders").as_deref(),
        Some("CREATE DATABASE IF NOT EXISTS orders_shadow")
    );
    assert_eq!(ok("DROP DATABASE orders").as_deref(), Some("DROP DATABASE orders_shadow"));
    assert_eq!(ok("DROP TABLE orders.t").as_deref(), Some("DROP TABLE orders_shadow.t"));
    assert_eq!(
        ok("SELECT *  FROM `orders`.`t`\n  JOIN billing.inv i ON i.id = t.id").as_deref(),
        Some("SELECT *  FROM `orders_shadow`.`t`\n  JOIN billing_stress.inv i ON i.id = t.id")
    );
    assert_eq!(
        ok("SELECT t.*, x.y FROM orders.t JOIN x ON x.y = t.a").as_deref(),
        Some("SELECT t.*, x.y FROM orders_shadow.t JOIN x ON x.y = t.a")
    );
    assert_eq!(ok("SELECT @@version_comment LIMIT 1"), None);
    assert_eq!(ok("SELECT * FROM information_schema.tables"), None);
    assert_eq!(ok("SET NAMES utf8mb4"), None);
    assert_eq!(ok("SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t"), None);
    assert_eq!(
        ok("INSERT INTO orders.t SELECT * FROM billing.inv WHERE id IN (SELECT id FROM orders.x)").as_deref(),
        Some(
            "INSERT INTO orders_shadow.t SELECT * FROM billing_stress.inv WHERE id IN (SELECT id FROM orders_shadow.x)"
        )
    );
}

#[test]
fn statements_beyond_the_data_are_refused() {
    for sql in [
        "GRANT ALL ON *.* TO 'x'@'%'",
        "CREATE USER 'x'@'%' IDENTIFIED BY 'y'",
        "SET GLOBAL max_connections = 10",
        "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
        "SET NAMES gbk",
        "CALL orders.p()",
        "INSERT INTO mysql.user (Host) VALUES ('x')",
        "DROP TABLE mysql.user",
        "RENAME TABLE mysql.db TO x",
        "USE mysql",
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
        "SELECT LOAD_FILE('/etc/passwd')",
        "KILL 5",
    ] {
        refused(sql);
    }
    assert!(matches!(rewrite("GRANT ALL ON *.* TO x", &lane()), Err(Refusal::Unsupported(..))));
    assert!(matches!(rewrite("SELEC 1", &lane()), Err(Refusal::Parse(_))));
    let only_map = Schemas { suffix: None, map: BTreeMap::from([("orders".into(), "o2".into())]) };
    assert!(rewrite("SELECT * FROM other.t", &only_map).is_err(), "an unmapped schema is refused");
}

/// What a review found: each of these reached production before.
#[test]
fn ways_around_the_rewrite_are_refused() {
    // Executable comments are SQL to MySQL and a comment to the parser.
    refused("/*!DROP DATABASE orders*/");
    refused("SELECT * FROM t /*!, orders.users */");
    refused("SELECT * FROM t /*M!100000 , orders.users */");
    // Text after an END the parser stops at.
    refused("SELECT 1 END; DROP DATABASE orders");
    // A table alias named like a schema does not make the schema placed.
    assert_eq!(
        ok("SET @p=(SELECT password FROM orders.users AS orders)").as_deref(),
        Some("SET @p=(SELECT password FROM orders_shadow.users AS orders)")
    );
    refused("SELECT orders.f() FROM (SELECT 1) AS orders");
    refused("CREATE OR REPLACE VIEW orders.v AS SELECT 1 FROM (SELECT 1) AS orders");
    assert_eq!(
        ok("SELECT 1 FROM (SELECT 1) AS orders; DROP TABLE orders.users").as_deref(),
        Some("SELECT 1 FROM (SELECT 1) AS orders; DROP TABLE orders_shadow.users")
    );
    // Backslashes stay as written: the rewrite never re-prints literals.
    assert_eq!(
        ok("SELECT id FROM orders.t WHERE a='\\\\' AND b=' UNION SELECT password FROM billing.users -- '")
            .as_deref(),
        Some(
            "SELECT id FROM orders_shadow.t WHERE a='\\\\' AND b=' UNION SELECT password FROM billing.users -- '"
        )
    );
    // Deep expressions are refused before they are walked.
    let deep = format!("SELECT {}1", "1+".repeat(50_000));
    refused(&deep);
}
