use std::collections::BTreeMap;

use super::{Refusal, Schemas, rewrite as rewrite_bytes};
use crate::stores::mysql::{
    lex::Rules,
    session::{Change, Reported, Session},
};

/// MariaDB 10.11's default reading rules.
fn rules() -> Rules {
    let mut s = Session::new(101119, true);
    s.learn(&Reported {
        sql_mode: "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"
            .into(),
        charset: "utf8mb4".into(),
    })
    .expect("session");
    s.rules
}

fn rewrite(sql: &str, schemas: &Schemas) -> Result<Option<String>, Refusal> {
    rewrite_bytes(sql.as_bytes(), schemas, &rules(), false)
        .map(|r| r.text.map(|b| String::from_utf8(b).expect("utf8")))
}

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
        "SET sql_mode = 'ORACLE'",
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
    // Executable comments are SQL to MariaDB: their bodies are read and mapped.
    assert_eq!(ok("/*!DROP DATABASE orders*/").as_deref(), Some("/*!DROP DATABASE orders_shadow*/"));
    assert_eq!(
        ok("SELECT * FROM t /*!, orders.users */").as_deref(),
        Some("SELECT * FROM t /*!, orders_shadow.users */")
    );
    assert_eq!(
        ok("SELECT * FROM t /*M!100000 , orders.users */").as_deref(),
        Some("SELECT * FROM t /*M!100000 , orders_shadow.users */")
    );
    // A version newer than the server: a comment, as for MariaDB.
    assert_eq!(ok("SELECT * FROM t /*!999999 , orders.users */"), None);
    // Text after an END the parser stops at (a statement it need not read is not parsed).
    refused("SELECT orders.t.a END FROM orders.t; DROP DATABASE orders");
    assert_eq!(
        ok("SELECT 1 END; DROP DATABASE orders").as_deref(),
        Some("SELECT 1 END; DROP DATABASE orders_shadow")
    );
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

/// The attacks that read or deleted production rows through the parser of the last
/// release: MariaDB lexes these differently from `sqlparser`, and the rewrite now reads
/// them as MariaDB does (or refuses them).
#[test]
fn text_mariadb_reads_as_code_is_read_as_code() {
    // `--` then a tab (or any control byte) starts a comment for MariaDB: what follows
    // the newline is code, and is mapped.
    for sep in ["\t", "\x0b", "\x0c", "\r", "\x01"] {
        let sql = format!("SELECT 1 --{sep}'\n; DELETE FROM orders.t -- '");
        assert_eq!(ok(&sql), Some(sql.replace("orders.t", "orders_shadow.t")), "{sql:?}");
        let sql = format!("SELECT 1 --{sep}x\n, (SELECT COUNT(*) FROM orders.t)");
        assert_eq!(ok(&sql), Some(sql.replace("orders.t", "orders_shadow.t")), "{sql:?}");
    }
    // `--x` is not a comment to MariaDB: `1 - -x`.
    assert_eq!(ok("SELECT 1 --x"), None);
    // Sequence functions name a schema in their argument.
    assert_eq!(ok("SELECT NEXTVAL(orders.s)").as_deref(), Some("SELECT NEXTVAL(orders_shadow.s)"));
    assert_eq!(
        ok("SELECT SETVAL(orders.s, 100), LASTVAL(orders.s)").as_deref(),
        Some("SELECT SETVAL(orders_shadow.s, 100), LASTVAL(orders_shadow.s)")
    );
    assert_eq!(
        ok("SELECT NEXT VALUE FOR orders.s").as_deref(),
        Some("SELECT NEXT VALUE FOR orders_shadow.s")
    );
    assert_eq!(
        ok("INSERT INTO orders.t VALUES (PREVIOUS VALUE FOR `orders`.s)").as_deref(),
        Some("INSERT INTO orders_shadow.t VALUES (PREVIOUS VALUE FOR `orders_shadow`.s)")
    );
    // A trailing NUL (mysqlslap) ends the text; any other NUL is refused.
    assert_eq!(ok("SELECT * FROM orders.t\0").as_deref(), Some("SELECT * FROM orders_shadow.t\0"));
    refused("SELECT 1 \0 ; DELETE FROM orders.t");
}

#[test]
fn the_reading_rules_decide_where_literals_and_names_end() {
    let lane = lane();
    let read = |sql: &str, rules: &Rules| {
        rewrite_bytes(sql.as_bytes(), &lane, rules, false)
            .map(|r| r.text.map(|b| String::from_utf8(b).expect("utf8")))
    };
    // NO_BACKSLASH_ESCAPES: a backslash no longer escapes the quote.
    let nbe = Rules { no_backslash_escapes: true, ..rules() };
    let sql = "SELECT 'a\\' , (SELECT COUNT(*) FROM orders.t) -- '";
    assert_eq!(read(sql, &nbe).expect("read"), Some(sql.replace("orders.t", "orders_shadow.t")));
    assert_eq!(read(sql, &rules()).expect("read"), None, "with escapes, all of it is one string");
    let ansi = Rules { ansi_quotes: true, ..rules() };
    assert_eq!(
        read("SELECT \"who\" FROM \"orders\".t", &ansi).expect("read"),
        Some("SELECT \"who\" FROM \"orders_shadow\".t".into())
    );
    // A SET that may change them must be alone: the rest would be read before the server
    // says what they became.
    let r = rewrite_bytes(b"SET sql_mode = 'ANSI_QUOTES'", &lane, &rules(), false).expect("set");
    assert_eq!(r.change, Change::Reading);
    assert!(rewrite_bytes(b"SET sql_mode = 'ANSI_QUOTES'; SELECT 1", &lane, &rules(), false).is_err());
    assert!(rewrite_bytes(b"SELECT x; SET NAMES latin1", &lane, &rules(), false).is_err());
    assert_eq!(
        rewrite_bytes(b"SET @a = 1; SELECT @a", &lane, &rules(), false).expect("vars").change,
        Change::None
    );
}

#[test]
fn a_packet_of_several_statements_never_forwards_one_unmapped() {
    // Alone, CALL is a kind `passthrough` may forward as it is; with others, never.
    assert!(matches!(rewrite("CALL noop()", &lane()), Err(Refusal::Unsupported(Some(_), _))));
    assert!(matches!(
        rewrite("CALL noop(); DELETE FROM orders.t", &lane()),
        Err(Refusal::Unsupported(None, _))
    ));
    // Names the walk cannot place are refused whatever the lane says.
    assert!(matches!(
        rewrite("SELECT orders.f() FROM orders.t", &lane()),
        Err(Refusal::Unsupported(None, _))
    ));
}

#[test]
fn trees_too_deep_to_walk_and_tables_elsewhere_are_refused() {
    for op in [" DIV 1", " UNION SELECT 1", " IS NULL", " COLLATE utf8mb4_bin", " LIKE 'a'"] {
        refused(&format!("SELECT 1{}", op.repeat(3_000)));
    }
    refused("SELECT `load_file`('/etc/passwd')");
    refused("CREATE TABLE t (id INT) ENGINE=FEDERATED CONNECTION='mysql://u:p@127.0.0.1/orders/t'");
    refused("CREATE TABLE t (id INT) ENGINE=MERGE UNION=(t1)");
    refused("ALTER TABLE t ENGINE = spider");
    // Blobs and comments of any length are one token each for the parser.
    let big =
        format!("INSERT INTO orders.t VALUES (1, '{}') /* {} */", "x".repeat(1 << 20), "y".repeat(1 << 20));
    assert!(ok(&big).is_some_and(|s| s.starts_with("INSERT INTO orders_shadow.t")));
}

#[test]
fn what_mysqldump_sysbench_and_mysqlslap_send_is_read() {
    for sql in [
        "/*M!999999\\- enable the sandbox mode */",
        "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */",
        "/*!40101 SET NAMES utf8mb4 */",
        "/*!40103 SET TIME_ZONE='+00:00' */",
        "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */",
        "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */",
        "/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */",
        "DROP SEQUENCE IF EXISTS `s`",
        "CREATE SEQUENCE `s` start with 1 minvalue 1 maxvalue 9223372036854775806 increment by 1 cache 1000 nocycle ENGINE=InnoDB",
        "DO SETVAL(`s`, 1, 0)",
        "DROP TABLE IF EXISTS `t`",
        "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci",
        "LOCK TABLES `t` WRITE",
        "/*!40000 ALTER TABLE `t` DISABLE KEYS */",
        "INSERT INTO `t` VALUES (1,'a','x\\0y\\\\z'),\n(2,'b','\u{ff}\\0')",
        "/*!40000 ALTER TABLE `t` ENABLE KEYS */",
        "UNLOCK TABLES",
        "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */",
        "CREATE TABLE sbtest1(\n  id INTEGER NOT NULL AUTO_INCREMENT,\n  k INTEGER DEFAULT '0' NOT NULL,\n  PRIMARY KEY (id)\n) /*! ENGINE = innodb */ ",
        "SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 100 ORDER BY c",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "CREATE SCHEMA `mysqlslap`",
        "DROP SCHEMA IF EXISTS `mysqlslap`",
    ] {
        if let Err(e) = rewrite_bytes(sql.as_bytes(), &lane(), &rules(), false) {
            panic!("{sql:?}: {e:?}");
        }
    }
    assert_eq!(
        ok("/*!40000 ALTER TABLE orders.t DISABLE KEYS */").as_deref(),
        Some("/*!40000 ALTER TABLE orders_shadow.t DISABLE KEYS */")
    );
    assert_eq!(
        ok("CREATE SEQUENCE orders.s START WITH 5").as_deref(),
        Some("CREATE SEQUENCE orders_shadow.s START WITH 5")
    );
    assert_eq!(ok("DO SETVAL(orders.s, 1, 0)").as_deref(), Some("DO SETVAL(orders_shadow.s, 1, 0)"));
    assert_eq!(
        ok("SELECT * FROM orders.t LOCK IN SHARE MODE").as_deref(),
        Some("SELECT * FROM orders_shadow.t LOCK IN SHARE MODE")
    );
}

/// Schemas named without a dot (where no qualifier check can see them) are mapped where
/// the parser places them, and SHOW forms it does not know are refused.
#[test]
fn bare_schema_names_are_mapped_or_refused() {
    assert_eq!(ok("SHOW TABLE STATUS FROM orders").as_deref(), Some("SHOW TABLE STATUS FROM orders_shadow"));
    assert_eq!(ok("SHOW INDEX FROM t FROM orders").as_deref(), Some("SHOW INDEX FROM t FROM orders_shadow"));
    assert_eq!(
        ok("SHOW COLUMNS FROM t FROM orders").as_deref(),
        Some("SHOW COLUMNS FROM t FROM orders_shadow")
    );
    assert_eq!(ok("SHOW CREATE TABLE orders.t").as_deref(), Some("SHOW CREATE TABLE orders_shadow.t"));
    assert_eq!(ok("DESCRIBE orders.t").as_deref(), Some("DESCRIBE orders_shadow.t"));
    assert_eq!(ok("SHOW WARNINGS"), None);
    refused("SHOW PROCESSLIST");
    refused("SHOW GRANTS FOR root");
    refused("SHOW MASTER STATUS");
}
