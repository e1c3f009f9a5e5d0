//! Boundaries as MariaDB 10.11 draws them (each case was checked against a real server:
//! see `tests/tests/data_sql.rs` for the differential test on a running MariaDB).

use super::{Charset, Kind, LexError, Lexer, Rules, trimmed};

fn rules() -> Rules {
    Rules { version: 101119, ..Rules::default() }
}

fn lex_with(sql: &[u8], rules: &Rules) -> Result<Vec<(Kind, String)>, LexError> {
    let (start, end) = trimmed(sql, rules.charset);
    let mut l = Lexer::new(sql, start, end);
    let mut out = Vec::new();
    while let Some(t) = l.next(rules)? {
        if t.kind != Kind::Space {
            out.push((t.kind, String::from_utf8_lossy(&sql[t.start..t.end]).into_owned()));
        }
    }
    Ok(out)
}

fn lex(sql: &str) -> Vec<(Kind, String)> {
    lex_with(sql.as_bytes(), &rules()).unwrap_or_else(|e| panic!("{sql:?}: {e}"))
}

fn kinds(sql: &str) -> Vec<Kind> {
    lex(sql).into_iter().map(|(k, _)| k).collect()
}

#[test]
fn dash_dash_is_a_comment_before_any_whitespace_or_control_byte() {
    for sep in ["--\t", "--\x0b", "--\x0c", "--\r", "--\x01", "--\x7f", "-- "] {
        let sql = format!("SELECT 1 {sep}x\n+1");
        assert_eq!(
            kinds(&sql),
            [Kind::Word, Kind::Number, Kind::Comment, Kind::Punct, Kind::Number],
            "{sql:?}"
        );
    }
    assert_eq!(kinds("SELECT 1 --x"), [Kind::Word, Kind::Number, Kind::Punct, Kind::Punct, Kind::Word]);
    assert_eq!(kinds("SELECT 1 --"), [Kind::Word, Kind::Number, Kind::Comment], "at the end: a comment");
    assert_eq!(kinds("SELECT 1 # x\r+1"), [Kind::Word, Kind::Number, Kind::Comment], "\\r does not end #");
}

#[test]
fn versioned_comments_run_as_the_server_decides() {
    let run = |sql: &str| kinds(sql).contains(&Kind::ExecOpen);
    assert!(run("SELECT 1 /*!+1*/"));
    assert!(run("SELECT 1 /*!50699 +1*/"));
    assert!(!run("SELECT 1 /*!50700 +1*/"), "MySQL 5.7's range is skipped by MariaDB");
    assert!(run("SELECT 1 /*M!50700 +1*/"));
    assert!(!run("SELECT 1 /*!101200 +1*/"), "newer than the server");
    assert!(run("SELECT 1 /*!101119 +1*/"));
    assert!(!run("SELECT 1 /*!401011 +1*/"), "six digits");
    assert!(!run("SELECT 1 /*m!1 +1*/"), "only a capital M");
    // A skipped comment may hold one level of comments; strings are not read in it.
    assert_eq!(kinds("SELECT 1 /*!99999 +1 /* inner */ +1 */ +10").len(), 5);
    assert_eq!(kinds("SELECT 1 /*!99999 '*/ '+1'"), [Kind::Word, Kind::Number, Kind::Comment, Kind::Str]);
    // Inside an executed comment: comments, strings and names keep their `*/`.
    assert_eq!(
        kinds("SELECT 1 /*!40101 +1 /* c */ +'*/' */"),
        [
            Kind::Word,
            Kind::Number,
            Kind::ExecOpen,
            Kind::Punct,
            Kind::Number,
            Kind::Comment,
            Kind::Punct,
            Kind::Str,
            Kind::ExecClose
        ]
    );
    assert!(lex_with(b"SELECT 1 /*!40101 /*!40101 1 */ */", &rules()).is_err(), "nested executable comments");
    assert!(lex_with(b"SELECT 1 /*!40101 +1", &rules()).is_err(), "not closed");
    assert!(lex_with(b"SELECT 1 /* x", &rules()).is_err(), "not closed");
}

#[test]
fn strings_follow_the_session_quoting_rules() {
    assert_eq!(lex("SELECT 'a\\'b'")[1], (Kind::Str, "'a\\'b'".into()));
    assert_eq!(lex("SELECT 'a''b'")[1], (Kind::Str, "'a''b'".into()));
    let nbe = Rules { no_backslash_escapes: true, ..rules() };
    let l = lex_with(b"SELECT 'a\\' , orders.t", &nbe).expect("lex");
    assert_eq!(l[1], (Kind::Str, "'a\\'".into()), "NO_BACKSLASH_ESCAPES: the backslash is a character");
    assert_eq!(l[3].0, Kind::Word);
    let ansi = Rules { ansi_quotes: true, ..rules() };
    assert_eq!(lex_with(b"SELECT \"a\" FROM t", &ansi).expect("lex")[1].0, Kind::Quoted);
    assert_eq!(lex("SELECT \"a\" FROM t")[1].0, Kind::Str);
    assert!(lex_with(b"SELECT 'a\\'", &rules()).is_err());
    assert_eq!(lex("SELECT X'4142', b'01', N'x', _utf8mb4'y'")[1].0, Kind::Bits);
    assert!(lex_with(b"SELECT X'414'", &rules()).is_err(), "odd hex digits");
    // Bytes that are not UTF-8 are fine inside a literal.
    assert_eq!(lex_with(b"SELECT '\xff\x00'", &rules()).expect("lex")[1].0, Kind::Str);
}

#[test]
fn nul_ends_the_text_only_as_its_last_byte() {
    assert_eq!(kinds("SELECT 1\0"), [Kind::Word, Kind::Number, Kind::Nul]);
    assert!(lex_with(b"SELECT 1\0\0 ", &rules()).is_err());
    assert!(lex_with(b"SELECT 1 \0 + 1", &rules()).is_err());
    assert!(lex_with(b"SELECT 1 # c\0 x", &rules()).is_err());
}

#[test]
fn names_numbers_and_variables_split_as_mariadb_splits_them() {
    assert_eq!(kinds("SELECT t.123, t.1e5 FROM t"), kinds("SELECT t.a, t.b FROM t"));
    assert_eq!(lex("SELECT 1e5x")[1..], [(Kind::Number, "1e5".into()), (Kind::Word, "x".into())]);
    assert_eq!(lex("SELECT 15end")[1], (Kind::Word, "15end".into()));
    assert_eq!(lex("SELECT 0x1g")[1], (Kind::Word, "0x1g".into()));
    assert_eq!(lex("SELECT 0x1f")[1], (Kind::Number, "0x1f".into()));
    assert!(lex_with(b"SELECT 1.5end", &rules()).is_err());
    assert_eq!(lex("SELECT @a.b.c, @@session.sql_mode, @'x y'")[1], (Kind::UserVar, "@a.b.c".into()));
    assert_eq!(lex("SELECT @@session.sql_mode")[1], (Kind::SysVar, "@@session.sql_mode".into()));
    assert_eq!(lex("SELECT @'x y'")[1], (Kind::UserVar, "@'x y'".into()));
    assert!(lex_with(b"SELECT @@ x", &rules()).is_err());
    assert_eq!(lex("SET @a := 1")[2], (Kind::Punct, ":=".into()));
    assert_eq!(lex("SELECT `a``b`.c")[1], (Kind::Quoted, "`a``b`".into()));
    assert!(lex_with(b"SELECT \\N", &rules()).is_err());
}

#[test]
fn latin1_reads_0xa0_as_whitespace_and_refuses_other_high_bytes_outside_literals() {
    let latin1 = Rules { charset: Charset::Latin1, ..rules() };
    assert_eq!(lex_with(b"SELECT 1 --\xa0x\n+1", &latin1).expect("lex").len(), 5);
    assert!(lex_with(b"SELECT \xe9", &latin1).is_err());
    assert_eq!(lex_with(b"SELECT '\xe9'", &latin1).expect("lex")[1].0, Kind::Str);
    assert_eq!(lex_with("SELECT caf\u{e9}".as_bytes(), &rules()).expect("lex")[1].0, Kind::Word);
}

#[test]
fn the_text_is_trimmed_as_alloc_query_trims_it() {
    assert_eq!(trimmed(b"  SELECT 1 ;; ; ", Charset::Utf8), (2, 10));
    assert_eq!(trimmed(b"SELECT 1\0", Charset::Utf8), (0, 9));
}
