//! A lane's SQL, rewritten with a real parser (`sqlparser`, MySQL dialect): every schema a
//! statement names (`orders.t`, `orders.t.col`, `USE orders`, `CREATE DATABASE orders`,
//! `SHOW TABLES FROM orders`, `DROP TABLE orders.t`) becomes the lane's schema.
//!
//! The text sent is the client's own, with only those identifiers replaced (spliced at the
//! parser's spans): nothing is re-printed, so string literals and escapes reach MySQL
//! exactly as written. Statements that reach beyond the data (accounts, grants, server
//! settings, files, procedures), that the parser cannot read whole, or that hide text from
//! it (executable comments `/*! … */`) are refused. A count guards the walk: every
//! qualifier in the text (`x.` before a name) must be one the walk placed — a schema it
//! renamed or a table qualifying a column — or the statement is refused.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::{
    ast::{
        Expr, Ident, ObjectName, ObjectNamePart, ObjectType, SchemaName, ShowStatementIn, Statement, Use,
        visit_expressions_mut, visit_relations_mut,
    },
    dialect::MySqlDialect,
    parser::Parser,
    tokenizer::{Location, Token, Tokenizer},
};

/// Schemas every lane shares, read-only: never renamed, never written, never a lane's
/// default schema.
const SYSTEM: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];
/// Operators in one statement at most: each nests the expression tree one level deeper
/// (walking, printing and dropping it recurse), so a `1+1+…` of 100,000 terms would
/// overflow the stack.
const MAX_OPERATORS: usize = 2_000;
/// Character sets whose multi-byte characters can end in `\` (0x5c): with them, MySQL
/// and the parser would split a string literal differently.
const UNSAFE_CHARSETS: &[&str] = &["BIG5", "SJIS", "GBK", "CP932", "GB18030"];

/// A lane's schema mapping.
#[derive(Clone, Debug)]
pub struct Schemas {
    pub suffix: Option<String>,
    pub map: BTreeMap<String, String>,
}

/// Why a statement was not forwarded.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The parser could not read it (the detail is the parser's).
    Parse(String),
    /// It cannot be kept in the lane: the statement's kind when it is the reason (`GRANT`,
    /// `SET GLOBAL`), and why.
    Unsupported(Option<String>, &'static str),
}

/// Refused for what the statement is (`kind`).
fn unsupported(kind: &str, why: &'static str) -> Refusal {
    Refusal::Unsupported(Some(kind.to_owned()), why)
}

/// Refused for something in it, whatever its kind.
fn refused(why: &'static str) -> Refusal {
    Refusal::Unsupported(None, why)
}

pub fn is_system(schema: &str) -> bool {
    SYSTEM.iter().any(|s| s.eq_ignore_ascii_case(schema))
}

/// Whether a character set (a name) is one the parser cannot follow.
pub fn unsafe_charset(name: &str) -> bool {
    UNSAFE_CHARSETS.iter().any(|c| name.to_ascii_uppercase().contains(c))
}

impl Schemas {
    /// The lane's name for `schema`; `Ok(None)` for a system schema (unchanged).
    pub fn target(&self, schema: &str) -> Result<Option<String>, Refusal> {
        if is_system(schema) {
            return Ok(None);
        }
        if let Some(t) = self.map.get(schema) {
            return Ok(Some(t.clone()));
        }
        match &self.suffix {
            Some(s) => Ok(Some(format!("{schema}{s}"))),
            None => Err(refused("the lane has no schema mapped for it")),
        }
    }
}

/// What the walk did: identifiers to replace, and qualifiers it placed.
#[derive(Default)]
struct Walk {
    renames: Vec<(Ident, String)>,
    /// Where each qualifier the walk placed starts (line, column).
    placed: HashSet<(u64, u64)>,
}

impl Walk {
    fn place(&mut self, id: &Ident) {
        self.placed.insert((id.span.start.line, id.span.start.column));
    }

    /// Renames the schema `id` for the lane (`write`: the statement changes it, so a
    /// system schema is refused).
    fn rename(&mut self, id: &mut Ident, schemas: &Schemas, write: bool) -> Result<(), Refusal> {
        match schemas.target(&id.value)? {
            Some(t) => {
                self.renames.push((id.clone(), t.clone()));
                id.value = t;
                Ok(())
            }
            None if write => Err(refused("system schemas are read-only for lanes")),
            None => Ok(()),
        }
    }

    /// A schema-qualified name (`schema.object`): its schema renamed, its qualifiers
    /// placed.
    fn qualified(&mut self, n: &mut ObjectName, schemas: &Schemas, write: bool) -> Result<(), Refusal> {
        let len = n.0.len();
        if len > 2 {
            return Err(refused("a name has at most two parts (schema.object)"));
        }
        if len == 2 {
            let ObjectNamePart::Identifier(id) = &mut n.0[0] else {
                return Err(refused("a schema is named by an identifier"));
            };
            self.place(id);
            self.rename(id, schemas, write)?;
        }
        Ok(())
    }

    /// A one-part schema name (`USE orders`).
    fn schema(&mut self, n: &mut ObjectName, schemas: &Schemas) -> Result<(), Refusal> {
        match n.0.as_mut_slice() {
            [ObjectNamePart::Identifier(id)] => self.rename(id, schemas, true),
            _ => Err(refused("a schema name has one part")),
        }
    }
}

/// The statement(s) for the lane: `Ok(None)` when nothing needs changing (the original
/// text goes as it is), `Ok(Some(text))` with the lane's schema names spliced in.
pub fn rewrite(sql: &str, schemas: &Schemas) -> Result<Option<String>, Refusal> {
    let upper = sql.to_ascii_uppercase();
    if upper.contains("/*!") || upper.contains("/*M!") {
        return Err(refused("executable comments (/*! … */) hide SQL from graylane"));
    }
    for (what, why) in [
        ("INTO OUTFILE", "it writes files on the server"),
        ("INTO DUMPFILE", "it writes files on the server"),
        ("LOAD_FILE", "it reads files on the server"),
    ] {
        if upper.contains(what) {
            return Err(unsupported(what, why));
        }
    }
    let dialect = MySqlDialect {};
    let tokens =
        Tokenizer::new(&dialect, sql).tokenize_with_location().map_err(|e| Refusal::Parse(e.to_string()))?;
    let meaningful: Vec<(&Token, Location)> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| (&t.token, t.span.start))
        .collect();
    let operators = meaningful
        .iter()
        .filter(|(t, _)| match t {
            Token::Word(w) => matches!(w.value.to_ascii_uppercase().as_str(), "AND" | "OR" | "XOR"),
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Pipe
            | Token::Ampersand
            | Token::Caret
            | Token::StringConcat
            | Token::LParen => true,
            _ => false,
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(refused("the statement nests too deep to read safely"));
    }
    let mut parser = Parser::new(&dialect).try_with_sql(sql).map_err(|e| Refusal::Parse(e.to_string()))?;
    let mut statements = parser.parse_statements().map_err(|e| Refusal::Parse(e.to_string()))?;
    if parser.peek_token().token != Token::EOF {
        return Err(Refusal::Parse("the statement was not read to its end".into()));
    }
    let mut walk = Walk::default();
    for s in &mut statements {
        statement(s, schemas, &mut walk)?;
    }
    // Every qualifier in the text is one the walk placed, at its very position.
    let token = |i: usize| meaningful.get(i).map(|(t, _)| *t);
    for (i, (t, at)) in meaningful.iter().enumerate() {
        let (Token::Word(w), Some(Token::Period)) = (t, token(i + 1)) else { continue };
        if w.value.starts_with('@') {
            continue;
        }
        // `t.*` and `s.t.*` qualify a wildcard, which can only name tables of the FROM.
        let wildcard = matches!(token(i + 2), Some(Token::Mul))
            || matches!((token(i + 3), token(i + 4)), (Some(Token::Period), Some(Token::Mul)));
        if !wildcard && !walk.placed.contains(&(at.line, at.column)) {
            return Err(refused("it names something graylane cannot place"));
        }
    }
    if walk.renames.is_empty() {
        return Ok(None);
    }
    splice(sql, &walk.renames).map(Some)
}

/// The text with each renamed identifier replaced at its span (quotes kept).
fn splice(sql: &str, renames: &[(Ident, String)]) -> Result<String, Refusal> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(sql.char_indices().filter(|(_, c)| *c == '\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |l: Location| -> Option<usize> {
        let line_start = *starts.get(usize::try_from(l.line).ok()?.checked_sub(1)?)?;
        let col = usize::try_from(l.column).ok()?.checked_sub(1)?;
        let line = &sql[line_start..];
        match line.char_indices().nth(col) {
            Some((i, _)) => Some(line_start + i),
            None => Some(sql.len()),
        }
    };
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for (id, new) in renames {
        let (Some(start), Some(end)) = (offset(id.span.start), offset(id.span.end)) else {
            return Err(refused("a name without a position in the text"));
        };
        let text = match id.quote_style {
            Some(q) => {
                let close = if q == '[' { ']' } else { q };
                format!("{q}{}{close}", new.replace(close, &format!("{close}{close}")))
            }
            None => new.clone(),
        };
        // The span covers the identifier as written (with its quotes).
        let written = sql.get(start..end).unwrap_or("");
        let bare = written.trim_matches(|c| c == '`' || c == '"' || c == '[' || c == ']');
        if !bare.eq_ignore_ascii_case(&id.value) {
            return Err(refused("a name's position does not match the text"));
        }
        edits.push((start, end, text));
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = sql.to_owned();
    let mut last = usize::MAX;
    for (start, end, text) in edits {
        if end > last {
            return Err(refused("overlapping names"));
        }
        out.replace_range(start..end, &text);
        last = start;
    }
    Ok(out)
}

fn statement(s: &mut Statement, schemas: &Schemas, walk: &mut Walk) -> Result<(), Refusal> {
    let kind = kind(s);
    match s {
        Statement::Use(Use::Object(n) | Use::Database(n) | Use::Schema(n)) => return walk.schema(n, schemas),
        Statement::Use(_) => return Err(unsupported(&kind, "only USE <schema> is kept in a lane")),
        Statement::CreateDatabase { db_name, .. } => return walk.schema(db_name, schemas),
        Statement::CreateSchema { schema_name: SchemaName::Simple(n), .. } => return walk.schema(n, schemas),
        Statement::Drop { object_type: ObjectType::Schema | ObjectType::Database, names, .. } => {
            for n in names {
                walk.schema(n, schemas)?;
            }
            return Ok(());
        }
        Statement::Drop { object_type: ObjectType::Table | ObjectType::View, names, table: None, .. } => {
            for n in names {
                walk.qualified(n, schemas, true)?;
            }
            return Ok(());
        }
        Statement::RenameTable(pairs) => {
            for p in pairs {
                walk.qualified(&mut p.old_name, schemas, true)?;
                walk.qualified(&mut p.new_name, schemas, true)?;
            }
            return Ok(());
        }
        Statement::ShowTables { show_options, .. } => {
            if let Some(ShowStatementIn { parent_name: Some(n), .. }) = &mut show_options.show_in {
                return walk.schema(n, schemas);
            }
            return Ok(());
        }
        Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCollation { .. }
        | Statement::ShowCharset(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::UnlockTables => return Ok(()),
        Statement::Set(_) => {
            let text = s.to_string().to_ascii_uppercase();
            if text.contains("GLOBAL") || text.contains("PERSIST") {
                return Err(unsupported("SET GLOBAL", "it changes the server for everyone"));
            }
            if text.contains("SQL_MODE") {
                return Err(unsupported(
                    "SET sql_mode",
                    "it changes how graylane would have to read the SQL",
                ));
            }
            if (text.contains("NAMES") || text.contains("CHARACTER") || text.contains("CHARSET"))
                && unsafe_charset(&text)
            {
                return Err(unsupported("SET NAMES", "graylane cannot read SQL in that character set"));
            }
        }
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update { .. }
        | Statement::Delete(_)
        | Statement::CreateTable(_)
        | Statement::CreateIndex(_)
        | Statement::AlterTable { .. }
        | Statement::Truncate { .. }
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::LockTables { .. }
        | Statement::Analyze { .. }
        | Statement::OptimizeTable { .. } => {}
        _ => return Err(unsupported(&kind, "it reaches beyond the lane's data")),
    }
    let read_only = matches!(
        s,
        Statement::Query(_)
            | Statement::Set(_)
            | Statement::Explain { .. }
            | Statement::ExplainTable { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
    );
    let mut result = Ok(());
    let _ = visit_relations_mut(s, |name| match walk.qualified(name, schemas, !read_only) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            result = Err(e);
            ControlFlow::Break(())
        }
    });
    result?;
    let mut result = Ok(());
    let _ = visit_expressions_mut(s, |e| {
        if let Expr::CompoundIdentifier(ids) = e {
            let n = ids.len();
            if n > 3 {
                result = Err(refused("a column has at most three parts"));
                return ControlFlow::Break(());
            }
            for id in &ids[..n.saturating_sub(1)] {
                walk.place(id);
            }
            if n == 3
                && let Err(err) = walk.rename(&mut ids[0], schemas, false)
            {
                result = Err(err);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    result
}

/// The statement's kind, for refusals and the access log (`GRANT`, `CALL`, …): its first
/// words, never its values.
fn kind(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [a, b] if matches!(a.to_ascii_uppercase().as_str(), "CREATE" | "DROP" | "ALTER" | "SHOW" | "SET") => {
            format!("{} {}", a.to_ascii_uppercase(), b.to_ascii_uppercase())
        }
        [a, ..] => a.to_ascii_uppercase(),
        [] => "statement".into(),
    }
}

#[cfg(test)]
mod tests;
