//! How a session reads SQL: its `sql_mode` (`ANSI_QUOTES`, `NO_BACKSLASH_ESCAPES`) and
//! `character_set_client`, always as the server says. graylane asks the server after login,
//! after every `SET` that may change them and after `COM_RESET_CONNECTION`, and holds the
//! client's next commands until it knows; it never predicts what a `SET` does (a `SET` the
//! server rejects, a variable assigned where graylane does not look, a global value changed
//! since: none can leave graylane reading with other rules than the server). A `SET` that
//! may change them must be alone in its packet (a later statement would be read before the
//! answer). Values graylane can refuse at once are refused (`SET NAMES gbk`); a session the
//! server reports in a character set or `sql_mode` graylane cannot read is closed.

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
/// Words that, in a `SET`, name how the session reads SQL.
const READING: &[&str] = &["sql_mode", "character_set_client", "names", "charset", "character"];

/// What the server said of the session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reported {
    pub sql_mode: String,
    pub charset: String,
}

/// What a statement does to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// It may change how the server reads SQL: ask it afterwards.
    Reading,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub rules: Rules,
}

fn word(sql: &[u8], t: &Token) -> String {
    String::from_utf8_lossy(&sql[t.start..t.end]).to_ascii_lowercase()
}

fn unfollowable(kind: &str, why: &'static str) -> Refusal {
    Refusal::Unfollowable(kind.to_owned(), why)
}

fn refused(kind: &str, why: &'static str) -> Refusal {
    Refusal::Unsupported(Some(kind.to_owned()), why)
}

impl Session {
    /// Before the server has said anything: `utf8`, no special quoting.
    pub fn new(version: u32, mariadb: bool) -> Self {
        Self { rules: Rules { version, mariadb, ..Rules::default() } }
    }

    /// The session as the server reported it. `Err`: a session graylane cannot read (the
    /// rules stay as they were).
    pub fn learn(&mut self, r: &Reported) -> Result<(), Refusal> {
        let Some(charset) = Charset::named(&r.charset) else {
            return Err(unfollowable(
                "SET NAMES",
                "graylane reads SQL in utf8, utf8mb4, latin1 and ascii only",
            ));
        };
        let (ansi, nbe) = modes(&r.sql_mode)?;
        self.rules.charset = charset;
        self.rules.ansi_quotes = ansi;
        self.rules.no_backslash_escapes = nbe;
        Ok(())
    }

    /// What statement `tokens` (comments included) does to the session; refused when it
    /// reaches beyond the session (`SET GLOBAL`, passwords, roles), names a reading graylane
    /// cannot follow (`SET NAMES gbk`, an unknown or foreign `sql_mode`, a character set by
    /// number), or (`prepared`) would change the reading when graylane cannot see it.
    pub fn change(sql: &[u8], tokens: &[Token], prepared: bool) -> Result<Change, Refusal> {
        let sig: Vec<&Token> = tokens.iter().filter(|t| t.significant()).collect();
        let words: Vec<String> = sig.iter().map(|t| word(sql, t)).collect();
        if words.first().map(String::as_str) != Some("set") {
            return Ok(Change::None);
        }
        let w = |i: usize| words.get(i).map(String::as_str);
        match w(1) {
            Some("statement") => {
                return Err(refused("SET STATEMENT", "graylane does not read SET STATEMENT … FOR"));
            }
            Some("global" | "persist" | "persist_only") => {
                return Err(refused("SET GLOBAL", "it changes the server for everyone"));
            }
            Some("default") if w(2) == Some("role") => {
                return Err(refused("SET DEFAULT ROLE", "it changes accounts"));
            }
            _ => {}
        }
        // Each assignment's target: what comes first in it (after a scope word).
        let mut reading = false;
        let mut at_target = true;
        let mut depth = 0i32;
        for (i, t) in sig.iter().enumerate().skip(1) {
            let text = &sql[t.start..t.end];
            if t.kind == Kind::Punct {
                match text {
                    b"(" => depth += 1,
                    b")" => depth -= 1,
                    b"," if depth == 0 => at_target = true,
                    _ => {}
                }
                continue;
            }
            let name = match t.kind {
                Kind::SysVar => {
                    let n = words[i].trim_start_matches('@').to_owned();
                    if n.starts_with("global.") {
                        return Err(refused("SET GLOBAL", "it changes the server for everyone"));
                    }
                    n.rsplit('.').next().unwrap_or("").to_owned()
                }
                Kind::Quoted => String::from_utf8_lossy(&text[1..text.len() - 1]).to_ascii_lowercase(),
                _ => words[i].clone(),
            };
            if at_target && depth == 0 {
                if matches!(name.as_str(), "session" | "local") {
                    continue;
                }
                at_target = false;
                match name.as_str() {
                    "password" | "role" => return Err(refused("SET PASSWORD", "it changes accounts")),
                    "global" | "persist" | "persist_only" => {
                        return Err(refused("SET GLOBAL", "it changes the server for everyone"));
                    }
                    n if READING.contains(&n) => {
                        reading = true;
                        // A value graylane can judge now: a name or a literal.
                        if let Some(v) = sig
                            .get(i + if n == "character" { 2 } else { 1 })
                            .filter(|_| matches!(n, "names" | "charset" | "character"))
                        {
                            judge_charset(sql, v)?;
                        }
                        if let Some(eq) = sig.get(i + 1)
                            && &sql[eq.start..eq.end] == b"="
                            && let Some(v) = sig.get(i + 2)
                        {
                            match n {
                                "sql_mode" => judge_mode(sql, v)?,
                                "character_set_client" => judge_charset(sql, v)?,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if !reading {
            return Ok(Change::None);
        }
        if prepared {
            return Err(unfollowable(
                "SET",
                "a prepared SET of sql_mode or the character set runs when graylane cannot see it",
            ));
        }
        Ok(Change::Reading)
    }
}

/// A `sql_mode` value graylane can judge now (a literal): one it reads, or refused.
fn judge_mode(sql: &[u8], v: &Token) -> Result<(), Refusal> {
    match v.kind {
        Kind::Str => modes(&String::from_utf8_lossy(&sql[v.start + 1..v.end - 1])).map(|_| ()),
        Kind::Number => Err(unfollowable("SET sql_mode", "a sql_mode by number")),
        _ => Ok(()),
    }
}

/// A character set graylane can judge now (a name, a literal, a number): one it reads, or
/// refused.
fn judge_charset(sql: &[u8], v: &Token) -> Result<(), Refusal> {
    let text = match v.kind {
        Kind::Str | Kind::Quoted => String::from_utf8_lossy(&sql[v.start + 1..v.end - 1]).into_owned(),
        Kind::Word => String::from_utf8_lossy(&sql[v.start..v.end]).into_owned(),
        Kind::Number => return Err(unfollowable("SET NAMES", "a character set by number")),
        _ => return Ok(()),
    };
    if text.eq_ignore_ascii_case("default") || Charset::named(&text).is_some() {
        return Ok(());
    }
    Err(unfollowable("SET NAMES", "graylane reads SQL in utf8, utf8mb4, latin1 and ascii only"))
}

/// (`ANSI_QUOTES`, `NO_BACKSLASH_ESCAPES`) of a `sql_mode` value; refused for modes that
/// read SQL in another grammar and for modes graylane does not know.
fn modes(text: &str) -> Result<(bool, bool), Refusal> {
    let (mut ansi, mut nbe) = (false, false);
    for mode in text.split(',').filter(|m| !m.is_empty()) {
        let mode = mode.to_ascii_uppercase();
        if FOREIGN_MODES.contains(&mode.as_str()) {
            return Err(unfollowable("SET sql_mode", "that sql_mode reads SQL in another grammar"));
        }
        if !KNOWN_MODES.contains(&mode.as_str()) {
            return Err(unfollowable("SET sql_mode", "graylane does not know that sql_mode"));
        }
        ansi |= mode == "ANSI" || mode == "ANSI_QUOTES";
        nbe |= mode == "NO_BACKSLASH_ESCAPES";
    }
    Ok((ansi, nbe))
}

#[cfg(test)]
mod tests;
