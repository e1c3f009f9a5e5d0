use super::{Reported, Session};
use crate::stores::mysql::lex::{Charset, Lexer, Token, trimmed};

fn tokens(sql: &[u8], s: &Session) -> Vec<Token> {
    let (a, b) = trimmed(sql, s.rules.charset);
    let mut l = Lexer::new(sql, a, b);
    let mut out = Vec::new();
    while let Some(t) = l.next(&s.rules).expect("lex") {
        out.push(t);
    }
    out
}

fn apply(s: &mut Session, sql: &str) -> bool {
    let t = tokens(sql.as_bytes(), s);
    s.apply(sql.as_bytes(), &t, false).is_ok()
}

fn reported() -> Reported {
    Reported {
        sql_mode: "STRICT_TRANS_TABLES".into(),
        charset: "utf8mb4".into(),
        global_sql_mode: "ANSI_QUOTES".into(),
        global_charset: "latin1".into(),
    }
}

#[test]
fn sets_graylane_can_follow_change_the_rules() {
    let mut s = Session::new(101119, true);
    s.learn(reported()).expect("learn");
    assert!(apply(&mut s, "SET @@session.sql_mode = 'ANSI'") && s.rules.ansi_quotes);
    assert!(apply(&mut s, "SET SESSION sql_mode = DEFAULT") && s.rules.ansi_quotes, "the global value");
    assert!(apply(&mut s, "SET LOCAL sql_mode = 'no_backslash_escapes'"));
    assert!(s.rules.no_backslash_escapes && !s.rules.ansi_quotes);
    assert!(apply(&mut s, "SET NAMES DEFAULT") && s.rules.charset == Charset::Latin1);
    // Values are read before anything is set (as MariaDB does: here @b is NULL).
    assert!(apply(&mut s, "SET @a = 'utf8', @b = @a"));
    assert!(!apply(&mut s, "SET character_set_client = @b"));
    assert!(apply(&mut s, "SET @b = @a"));
    assert!(apply(&mut s, "SET character_set_client = @b") && s.rules.charset == Charset::Utf8);
    // A user variable assigned where graylane does not follow it is forgotten.
    assert!(apply(&mut s, "SELECT 'gbk' INTO @b"));
    assert!(!apply(&mut s, "SET character_set_client = @b"));
    assert!(apply(&mut s, "SET @b = 'latin1'"));
    assert!(apply(&mut s, "SELECT @b := 'gbk'"));
    assert!(!apply(&mut s, "SET character_set_client = @b"));
    assert!(!apply(&mut s, "SET GLOBAL sql_mode = ''"));
    assert!(!apply(&mut s, "SET @@global.sql_mode = ''"));
    assert!(!apply(&mut s, "SET STATEMENT sql_mode = '' FOR SELECT 1"));
    assert!(!apply(&mut s, "SET PASSWORD = 'x'"));
    assert!(apply(&mut s, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"));
    assert!(apply(&mut s, "SET autocommit = 1, time_zone = '+00:00'"));
    // Back to the state after login.
    s.reset().expect("reset");
    assert_eq!(
        (s.rules.charset, s.rules.ansi_quotes, s.rules.no_backslash_escapes),
        (Charset::Utf8, false, false)
    );
}

#[test]
fn a_prepared_set_of_the_reading_rules_is_refused() {
    let mut s = Session::new(101119, true);
    s.learn(reported()).expect("learn");
    let sql = b"SET NAMES latin1";
    let t = tokens(sql, &s);
    assert!(s.apply(sql, &t, true).is_err());
    let sql = b"SET @a = 'utf8'";
    let t = tokens(sql, &s);
    assert!(s.apply(sql, &t, true).is_ok());
    assert!(!apply(&mut s, "SET character_set_client = @a"), "a prepared statement may set @a any time");
}

#[test]
fn a_session_graylane_cannot_read_is_refused_at_login() {
    let mut s = Session::new(101119, true);
    assert!(s.learn(Reported { charset: "gbk".into(), ..reported() }).is_err());
    assert!(s.learn(Reported { sql_mode: "ORACLE".into(), ..reported() }).is_err());
}
