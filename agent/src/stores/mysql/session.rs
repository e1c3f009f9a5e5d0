//! How a session reads SQL, followed statement by statement: its `sql_mode`
//! (`ANSI_QUOTES`, `NO_BACKSLASH_ESCAPES`) and `character_set_client`, as the server
//! reported them after login and as each `SET` changes them — by literal, by `DEFAULT`,
//! or through a user variable graylane saw assigned (mysqldump saves and restores both
//! that way). A change graylane cannot follow (a number, an expression, a variable it did
//! not see, a character set it does not read) is refused: the next statement would be read
//! one way by graylane and another by the server.

use std::collections::HashMap;

use super::{
    lex::{Charset, Kind, Rules, Token},
    refusal::Refusal,
};

/// `sql_mode` words that change how the server reads text beyond quoting (brackets as
/// quotes, `%` and `:` as tokens, another grammar).
const FOREIGN_MODES: &[&str] = &["ORACLE", "MSSQL", "DB2", "POSTGRESQL", "MAXDB"];
/// Every other `sql_mode` word MariaDB 10.11 knows.
const KNOWN_MODES: &[&str] = &[
    "REAL_AS_FLOAT",
    "PIPES_AS_CONCAT",
    "ANSI_QUOTES",
    "IGNORE_SPACE",
    "IGNORE_BAD_TABLE_OPTIONS",
    "ONLY_FULL_GROUP_BY",
    "NO_UNSIGNED_SUBTRACTION",
    "NO_DIR_IN_CREATE",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "NO_FIELD_OPTIONS",
    "MYSQL323",
    "MYSQL40",
    "ANSI",
    "NO_AUTO_VALUE_ON_ZERO",
    "NO_BACKSLASH_ESCAPES",
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE",
    "ALLOW_INVALID_DATES",
    "ERROR_FOR_DIVISION_BY_ZERO",
    "TRADITIONAL",
    "NO_AUTO_CREATE_USER",
    "HIGH_NOT_PRECEDENCE",
    "NO_ENGINE_SUBSTITUTION",
    "PAD_CHAR_TO_FULL_LENGTH",
    "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT",
    "TIME_ROUND_FRACTIONAL",
];
/// User variables remembered at most (a session that assigns more forgets them all).
const MAX_VARS: usize = 256;

/// What the server said of the session right after login.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reported {
    pub sql_mode: String,
    pub charset: String,
    pub global_sql_mode: String,
    pub global_charset: String,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub rules: Rules,
    sql_mode: String,
    charset: String,
    /// After login (what `COM_RESET_CONNECTION` goes back to).
    reported: std::sync::Arc<Reported>,
    /// User variables whose values graylane saw set; `None`: set to something it could not
    /// follow.
    vars: HashMap<String, Option<String>>,
    /// A prepared statement that assigns user variables may run at any time: none is known.
    vars_untracked: bool,
}

/// A `SET` value, as far as graylane can tell.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Text(String),
    Default,
    /// A number, an expression, a variable graylane did not see set.
    Unknown,
}

/// What one assignment of a `SET` sets.
#[derive(Debug)]
enum Target {
    SqlMode,
    Charset,
    UserVar(String),
    /// Another session variable (no effect on reading).
    Other,
}

fn word(sql: &[u8], t: &Token) -> String {
    String::from_utf8_lossy(&sql[t.start..t.end]).to_ascii_lowercase()
}

/// A quoted text's content (doubled quotes undone); `None` when it has escapes graylane
/// does not undo.
fn unquote(text: &[u8]) -> Option<String> {
    let (&q, rest) = text.split_first()?;
    let body = rest.strip_suffix(&[q])?;
    let s = std::str::from_utf8(body).ok()?;
    if s.contains('\\') {
        return None;
    }
    let quote = char::from(q).to_string();
    Some(s.replace(&format!("{quote}{quote}"), &quote))
}

/// A user variable's name (`@a`, `@'a'`, `` @`a` ``), lowercased as MariaDB compares them.
fn var_name(sql: &[u8], t: &Token) -> Option<String> {
    let text = &sql[t.start + 1..t.end];
    let name = match text.first() {
        Some(b'\'' | b'"' | b'`') => unquote(text)?,
        _ => String::from_utf8_lossy(text).into_owned(),
    };
    Some(name.to_ascii_lowercase())
}

impl Session {
    /// Before the server has said anything: `utf8`, no special quoting.
    pub fn new(version: u32, mariadb: bool) -> Self {
        let rules = Rules { version, mariadb, ..Rules::default() };
        Self {
            rules,
            sql_mode: String::new(),
            charset: "utf8mb4".into(),
            reported: std::sync::Arc::default(),
            vars: HashMap::new(),
            vars_untracked: false,
        }
    }

    /// The session as the server reported it after login. `Err`: a session graylane
    /// cannot read.
    pub fn learn(&mut self, reported: Reported) -> Result<(), Refusal> {
        self.reported = std::sync::Arc::new(reported);
        self.reset()
    }

    /// Back to the state after login (`COM_RESET_CONNECTION`).
    pub fn reset(&mut self) -> Result<(), Refusal> {
        self.vars.clear();
        let r = std::sync::Arc::clone(&self.reported);
        self.set_sql_mode(&r.sql_mode)?;
        self.set_charset(&r.charset)
    }

    fn set_sql_mode(&mut self, text: &str) -> Result<(), Refusal> {
        let upper = text.to_ascii_uppercase();
        let (mut ansi, mut nbe) = (false, false);
        for mode in upper.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            if FOREIGN_MODES.contains(&mode) {
                return Err(unfollowable("SET sql_mode", "that sql_mode reads SQL in another grammar"));
            }
            if !KNOWN_MODES.contains(&mode) {
                return Err(unfollowable("SET sql_mode", "graylane does not know that sql_mode"));
            }
            ansi |= mode == "ANSI" || mode == "ANSI_QUOTES";
            nbe |= mode == "NO_BACKSLASH_ESCAPES";
        }
        self.sql_mode = upper;
        self.rules.ansi_quotes = ansi;
        self.rules.no_backslash_escapes = nbe;
        Ok(())
    }

    fn set_charset(&mut self, name: &str) -> Result<(), Refusal> {
        let Some(cs) = Charset::named(name) else {
            return Err(unfollowable(
                "SET NAMES",
                "graylane reads SQL in utf8, utf8mb4, latin1 and ascii only",
            ));
        };
        self.charset = name.to_ascii_lowercase();
        self.rules.charset = cs;
        Ok(())
    }

    /// Whether a statement may change the session (a `SET`, or an assignment to a user
    /// variable): cheap, before [`Session::apply`].
    pub fn changes(sql: &[u8], tokens: &[Token]) -> bool {
        let mut sig = tokens.iter().filter(|t| t.significant());
        let first_set = sig.next().is_some_and(|t| t.kind == Kind::Word && word(sql, t) == "set");
        first_set
            || tokens.iter().any(|t| {
                (t.kind == Kind::Punct && &sql[t.start..t.end] == b":=")
                    || (t.kind == Kind::Word && sql[t.start..t.end].eq_ignore_ascii_case(b"into"))
            })
    }

    /// One statement's effect on how the next is read (its tokens, comments included).
    /// `prepared`: a `COM_STMT_PREPARE`, which runs later, any number of times.
    pub fn apply(&mut self, sql: &[u8], tokens: &[Token], prepared: bool) -> Result<(), Refusal> {
        let sig: Vec<&Token> = tokens.iter().filter(|t| t.significant()).collect();
        let is_set = sig.first().is_some_and(|t| t.kind == Kind::Word && word(sql, t) == "set");
        if !is_set {
            // `SELECT … INTO @v`, `@v := …`: values graylane does not follow.
            let assigns = sig.iter().enumerate().any(|(i, t)| {
                (t.kind == Kind::Punct && &sql[t.start..t.end] == b":=")
                    || (t.kind == Kind::Word
                        && word(sql, t) == "into"
                        && sig.get(i + 1).is_some_and(|n| n.kind == Kind::UserVar))
            });
            if assigns {
                self.forget_vars(prepared);
            }
            return Ok(());
        }
        let assignments = self.assignments(sql, &sig[1..])?;
        if prepared {
            if assignments.iter().any(|(t, _)| matches!(t, Target::SqlMode | Target::Charset)) {
                return Err(unfollowable(
                    "SET",
                    "a prepared SET of sql_mode or the character set runs when graylane cannot see it",
                ));
            }
            if assignments.iter().any(|(t, _)| matches!(t, Target::UserVar(_))) {
                self.forget_vars(true);
            }
            return Ok(());
        }
        // Values are read before anything is set (`SET @old=@@sql_mode, sql_mode='…'`).
        for (target, value) in assignments {
            match target {
                Target::SqlMode => match value {
                    Value::Text(t) => self.set_sql_mode(&t)?,
                    Value::Default => {
                        let g = self.reported.global_sql_mode.clone();
                        self.set_sql_mode(&g)?;
                    }
                    Value::Unknown => {
                        return Err(unfollowable(
                            "SET sql_mode",
                            "graylane cannot tell what this sets it to",
                        ));
                    }
                },
                Target::Charset => match value {
                    Value::Text(t) => self.set_charset(&t)?,
                    Value::Default => {
                        let g = self.reported.global_charset.clone();
                        self.set_charset(&g)?;
                    }
                    Value::Unknown => {
                        return Err(unfollowable(
                            "SET NAMES",
                            "graylane cannot tell which character set this sets",
                        ));
                    }
                },
                Target::UserVar(name) => {
                    if self.vars.len() >= MAX_VARS {
                        self.vars.clear();
                    }
                    let known = match value {
                        Value::Text(t) if !self.vars_untracked => Some(t),
                        _ => None,
                    };
                    self.vars.insert(name, known);
                }
                Target::Other => {}
            }
        }
        Ok(())
    }

    fn forget_vars(&mut self, forever: bool) {
        self.vars.clear();
        self.vars_untracked |= forever;
    }

    /// A `SET`'s assignments (after `SET`), each value read in the state before it.
    fn assignments(&self, sql: &[u8], sig: &[&Token]) -> Result<Vec<(Target, Value)>, Refusal> {
        let w = |i: usize| sig.get(i).filter(|t| t.kind == Kind::Word).map(|t| word(sql, t));
        match w(0).as_deref() {
            Some("statement") => {
                return Err(refused("SET STATEMENT", "graylane does not read SET STATEMENT … FOR"));
            }
            Some("global" | "persist" | "persist_only") => {
                return Err(refused("SET GLOBAL", "it changes the server for everyone"));
            }
            Some("password" | "role") => return Err(refused("SET PASSWORD", "it changes accounts")),
            Some("default") if w(1).as_deref() == Some("role") => {
                return Err(refused("SET DEFAULT ROLE", "it changes accounts"));
            }
            Some("transaction") => return Ok(Vec::new()),
            Some("session" | "local") if w(1).as_deref() == Some("transaction") => return Ok(Vec::new()),
            _ => {}
        }
        let mut out = Vec::new();
        for part in split_top(sql, sig) {
            out.push(self.assignment(sql, part)?);
        }
        Ok(out)
    }

    fn assignment(&self, sql: &[u8], part: &[&Token]) -> Result<(Target, Value), Refusal> {
        let w = |i: usize| part.get(i).filter(|t| t.kind == Kind::Word).map(|t| word(sql, t));
        let text = |t: &Token| sql[t.start..t.end].to_vec();
        // NAMES x [COLLATE y], CHARACTER SET x, CHARSET x.
        let charset_value = |at: usize| match part.get(at) {
            Some(t) if t.kind == Kind::Word && word(sql, t) == "default" => Value::Default,
            Some(t) => self.value(sql, &[t]),
            None => Value::Unknown,
        };
        match (w(0).as_deref(), w(1).as_deref()) {
            (Some("names"), _) => return Ok((Target::Charset, charset_value(1))),
            (Some("character"), Some("set")) => return Ok((Target::Charset, charset_value(2))),
            (Some("charset"), _) => return Ok((Target::Charset, charset_value(1))),
            _ => {}
        }
        let Some(eq) =
            part.iter().position(|t| t.kind == Kind::Punct && matches!(&sql[t.start..t.end], b"=" | b":="))
        else {
            return Err(unfollowable("SET", "graylane cannot read this SET"));
        };
        let (lhs, rhs) = (&part[..eq], &part[eq + 1..]);
        let name: String = match lhs {
            [t] if t.kind == Kind::UserVar => {
                let name =
                    var_name(sql, t).ok_or_else(|| unfollowable("SET", "a user variable it cannot name"))?;
                return Ok((Target::UserVar(name), self.value(sql, rhs)));
            }
            [t] if t.kind == Kind::SysVar => {
                let name = word(sql, t);
                let name = name.trim_start_matches('@');
                match name.split_once('.') {
                    Some(("global", _)) => {
                        return Err(refused("SET GLOBAL", "it changes the server for everyone"));
                    }
                    Some(("session" | "local", n)) => n.to_owned(),
                    Some(_) => return Err(unfollowable("SET", "a structured system variable")),
                    None => name.to_owned(),
                }
            }
            [scope, t] if matches!(w(0).as_deref(), Some("session" | "local")) && t.is_name() => {
                let _ = scope;
                name_of(&text(t))
            }
            [t] if t.is_name() => name_of(&text(t)),
            _ => return Err(unfollowable("SET", "graylane cannot read this SET")),
        };
        let target = match name.as_str() {
            "sql_mode" => Target::SqlMode,
            "character_set_client" => Target::Charset,
            _ => Target::Other,
        };
        Ok((target, self.value(sql, rhs)))
    }

    /// A `SET` value: a literal, `DEFAULT`, or a variable graylane knows.
    fn value(&self, sql: &[u8], v: &[&Token]) -> Value {
        let [t] = v else { return Value::Unknown };
        let text = &sql[t.start..t.end];
        match t.kind {
            Kind::Str => unquote(text).map_or(Value::Unknown, Value::Text),
            Kind::Quoted => unquote(text).map_or(Value::Unknown, Value::Text),
            Kind::Word if text.eq_ignore_ascii_case(b"default") => Value::Default,
            Kind::Word => Value::Text(String::from_utf8_lossy(text).into_owned()),
            Kind::UserVar => match var_name(sql, t).and_then(|n| self.vars.get(&n).cloned()) {
                Some(Some(v)) if !self.vars_untracked => Value::Text(v),
                _ => Value::Unknown,
            },
            Kind::SysVar => {
                let name = word(sql, t);
                let name = name.trim_start_matches('@');
                let (global, name) = match name.split_once('.') {
                    Some(("global", n)) => (true, n),
                    Some((_, n)) => (false, n),
                    None => (false, name),
                };
                match (global, name) {
                    (false, "sql_mode") => Value::Text(self.sql_mode.clone()),
                    (false, "character_set_client") => Value::Text(self.charset.clone()),
                    (true, "sql_mode") => Value::Text(self.reported.global_sql_mode.clone()),
                    (true, "character_set_client") => Value::Text(self.reported.global_charset.clone()),
                    _ => Value::Unknown,
                }
            }
            _ => Value::Unknown,
        }
    }
}

/// A name as written (`` `a` `` → `a`), lowercased.
fn name_of(text: &[u8]) -> String {
    match text.first() {
        Some(b'`' | b'"') => unquote(text).unwrap_or_default().to_ascii_lowercase(),
        _ => String::from_utf8_lossy(text).to_ascii_lowercase(),
    }
}

/// Tokens split at commas outside parentheses.
fn split_top<'t>(sql: &[u8], sig: &'t [&'t Token]) -> Vec<&'t [&'t Token]> {
    let mut out = Vec::new();
    let (mut depth, mut from) = (0i32, 0);
    for (i, t) in sig.iter().enumerate() {
        if t.kind != Kind::Punct {
            continue;
        }
        match &sql[t.start..t.end] {
            b"(" => depth += 1,
            b")" => depth -= 1,
            b"," if depth == 0 => {
                out.push(&sig[from..i]);
                from = i + 1;
            }
            b";" => {
                out.push(&sig[from..i]);
                from = sig.len();
                break;
            }
            _ => {}
        }
    }
    if from < sig.len() {
        out.push(&sig[from..]);
    }
    out.retain(|p| !p.is_empty());
    out
}

fn refused(kind: &str, why: &'static str) -> Refusal {
    Refusal::Unsupported(Some(kind.to_owned()), why)
}

/// Refused whatever `onUnsupported` says: the next statements would be read wrong.
fn unfollowable(kind: &str, why: &'static str) -> Refusal {
    Refusal::Unfollowable(kind.to_owned(), why)
}

#[cfg(test)]
mod tests;
