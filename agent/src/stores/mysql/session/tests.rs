use super::{Change, Reported, Session};
use crate::stores::mysql::lex::{Charset, Lexer, Rules, Token, trimmed};

fn tokens(sql: &[u8]) -> Vec<Token> {
    let rules = Rules::default();
    let (a, b) = trimmed(sql, rules.charset);
    let mut l = Lexer::new(sql, a, b);
    let mut out = Vec::new();
    while let Some(t) = l.next(&rules).expect("lex") {
        out.push(t);
    }
    out
}

fn change(sql: &str) -> Result<Change, super::Refusal> {
    Session::change(sql.as_bytes(), &tokens(sql.as_bytes()), false)
}

#[test]
fn a_set_of_how_sql_is_read_is_asked_about_afterwards_and_the_rest_goes_as_it_is() {
    for sql in [
        "SET sql_mode = 'ANSI'",
        "SET @@session.sql_mode = @m",
        "SET SESSION sql_mode = DEFAULT",
        "SET LOCAL character_set_client = @saved_cs_client",
        "SET NAMES utf8mb4",
        "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'",
        "SET CHARACTER SET latin1",
        "SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO'",
        "SET `sql_mode` = ''",
        "SET @x = @m := 'NO_BACKSLASH_ESCAPES', sql_mode = @m",
    ] {
        assert_eq!(change(sql).expect(sql), Change::Reading, "{sql}");
    }
    for sql in [
        "SET @a = 'utf8'",
        "SET autocommit = 1, time_zone = '+00:00'",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SELECT @b := 'gbk'",
        "SET @x = (SELECT sql_mode FROM t)",
    ] {
        assert_eq!(change(sql).expect(sql), Change::None, "{sql}");
    }
}

#[test]
fn what_graylane_can_judge_at_once_is_refused_at_once() {
    for sql in [
        "SET NAMES gbk",
        "SET CHARACTER SET sjis",
        "SET CHARSET big5",
        "SET character_set_client = 28",
        "SET character_set_client = 'gbk'",
        "SET sql_mode = 'ORACLE'",
        "SET sql_mode = 'NOT_A_MODE'",
        "SET sql_mode = 4",
        "SET GLOBAL sql_mode = ''",
        "SET @@global.sql_mode = ''",
        "SET STATEMENT sql_mode = '' FOR SELECT 1",
        "SET PASSWORD = 'x'",
        "SET @x = 1, PASSWORD = 'x'",
        "SET ROLE admin",
        "SET DEFAULT ROLE admin FOR x",
    ] {
        assert!(change(sql).is_err(), "{sql} should be refused");
    }
    let sql = b"SET NAMES latin1";
    assert!(Session::change(sql, &tokens(sql), true).is_err(), "a prepared SET of the reading rules");
}

#[test]
fn the_session_reads_sql_as_the_server_reports() {
    let mut s = Session::new(101119, true);
    s.learn(&Reported {
        sql_mode: "REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI".into(),
        charset: "latin1".into(),
    })
    .expect("learn");
    assert!(s.rules.ansi_quotes && !s.rules.no_backslash_escapes && s.rules.charset == Charset::Latin1);
    s.learn(&Reported { sql_mode: "NO_BACKSLASH_ESCAPES".into(), charset: "utf8mb3".into() }).expect("learn");
    assert!(!s.rules.ansi_quotes && s.rules.no_backslash_escapes && s.rules.charset == Charset::Utf8);
    let before = s.rules;
    assert!(s.learn(&Reported { sql_mode: String::new(), charset: "gbk".into() }).is_err());
    assert!(s.learn(&Reported { sql_mode: "ORACLE".into(), charset: "utf8mb4".into() }).is_err());
    assert_eq!(s.rules, before, "a session graylane cannot read leaves the rules as they were");
}
