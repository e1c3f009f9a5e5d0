//! A lane's SQL, rewritten with a real parser (`sqlparser`, MySQL dialect): every schema a
//! statement names (`orders.t`, `orders.t.col`, `USE orders`, `CREATE DATABASE orders`,
//! `SHOW TABLES FROM orders`) becomes the lane's schema. Statements that reach beyond the
//! data (accounts, grants, server settings, files, procedures) or that the parser cannot
//! read are refused. Two checks guard the rewrite: every qualifier in the statement must
//! be a schema, table or alias the parser placed, and no production schema may remain as a
//! qualifier afterwards.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;

use sqlparser::{
    ast::{
        Expr, Ident, ObjectName, ObjectNamePart, ObjectType, SchemaName, ShowStatementIn, Statement,
        TableFactor, Use, Visit, Visitor, visit_expressions_mut, visit_relations_mut,
    },
    dialect::MySqlDialect,
    parser::Parser,
    tokenizer::{Token, Tokenizer},
};

/// Schemas every lane shares, read-only: never renamed, never written.
const SYSTEM: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];

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
    /// It cannot be kept in the lane (statement kind, and why).
    Unsupported(String, &'static str),
}

impl Schemas {
    /// The lane's name for `schema`; `Ok(None)` for a system schema (unchanged).
    pub fn target(&self, schema: &str) -> Result<Option<String>, Refusal> {
        if SYSTEM.iter().any(|s| s.eq_ignore_ascii_case(schema)) {
            return Ok(None);
        }
        if let Some(t) = self.map.get(schema) {
            return Ok(Some(t.clone()));
        }
        match &self.suffix {
            Some(s) => Ok(Some(format!("{schema}{s}"))),
            None => Err(Refusal::Unsupported("schema".into(), "the lane has no schema mapped for it")),
        }
    }
}

/// The statement(s) for the lane: `Ok(None)` when nothing needs changing (the original
/// text goes as it is), `Ok(Some(text))` rewritten.
pub fn rewrite(sql: &str, schemas: &Schemas) -> Result<Option<String>, Refusal> {
    let dialect = MySqlDialect {};
    let mut statements = Parser::parse_sql(&dialect, sql).map_err(|e| Refusal::Parse(e.to_string()))?;
    let mut renamed: HashSet<String> = HashSet::new();
    let mut known: HashSet<String> = HashSet::new();
    for s in &mut statements {
        statement(s, schemas, &mut renamed, &mut known)?;
    }
    // Every qualifier the text uses is one the parser placed: a schema renamed here, a
    // table, an alias, a system schema.
    let qualifiers = qualifiers(sql)?;
    for q in &qualifiers {
        let q = q.to_ascii_lowercase();
        if !(renamed.contains(&q) || known.contains(&q) || SYSTEM.contains(&q.as_str())) {
            return Err(Refusal::Unsupported("statement".into(), "it names something graylane cannot place"));
        }
    }
    if renamed.is_empty() {
        return Ok(None);
    }
    let text = statements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    // No production schema survives as a qualifier (a name the parser's walk missed).
    for q in qualifiers_of(&text)? {
        let q = q.to_ascii_lowercase();
        if renamed.contains(&q) && !known.contains(&q) {
            return Err(Refusal::Unsupported(
                "statement".into(),
                "a schema name sits where graylane cannot rename it",
            ));
        }
    }
    Ok(Some(text))
}

fn qualifiers(sql: &str) -> Result<Vec<String>, Refusal> {
    qualifiers_of(sql)
}

/// Identifiers directly followed by a `.` (a qualifier), skipping variables (`@@x.y`).
fn qualifiers_of(sql: &str) -> Result<Vec<String>, Refusal> {
    let tokens =
        Tokenizer::new(&MySqlDialect {}, sql).tokenize().map_err(|e| Refusal::Parse(e.to_string()))?;
    let mut out = Vec::new();
    let mut prev: Option<&Token> = None;
    let meaningful: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    for t in &meaningful {
        if let (Token::Period, Some(Token::Word(w))) = (t, prev)
            && !w.value.starts_with('@')
        {
            out.push(w.value.clone());
        }
        prev = Some(t);
    }
    Ok(out)
}

fn ident_value(p: &ObjectNamePart) -> Option<&Ident> {
    match p {
        ObjectNamePart::Identifier(i) => Some(i),
        ObjectNamePart::Function(_) => None,
    }
}

/// Renames a one-part schema name.
fn schema_name(n: &mut ObjectName, schemas: &Schemas, renamed: &mut HashSet<String>) -> Result<(), Refusal> {
    if n.0.len() != 1 {
        return Err(Refusal::Unsupported("schema".into(), "a schema name has one part"));
    }
    if let Some(ObjectNamePart::Identifier(id)) = n.0.first_mut() {
        rename(id, schemas, renamed, true)?;
    }
    Ok(())
}

fn rename(
    id: &mut Ident,
    schemas: &Schemas,
    renamed: &mut HashSet<String>,
    write: bool,
) -> Result<(), Refusal> {
    match schemas.target(&id.value)? {
        Some(t) => {
            renamed.insert(id.value.to_ascii_lowercase());
            id.value = t;
            Ok(())
        }
        None if write => {
            Err(Refusal::Unsupported("statement".into(), "system schemas are read-only for lanes"))
        }
        None => Ok(()),
    }
}

/// Tables and aliases a statement introduces (what `t.col` may qualify with).
struct Names<'a>(&'a mut HashSet<String>);

impl Visitor for Names<'_> {
    type Break = ();
    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if let Some(last) = relation.0.last().and_then(ident_value) {
            self.0.insert(last.value.to_ascii_lowercase());
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
        let alias = match f {
            TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } => alias.as_ref(),
            TableFactor::NestedJoin { alias, .. } => alias.as_ref(),
            _ => None,
        };
        if let Some(a) = alias {
            self.0.insert(a.name.value.to_ascii_lowercase());
        }
        ControlFlow::Continue(())
    }
}

fn statement(
    s: &mut Statement,
    schemas: &Schemas,
    renamed: &mut HashSet<String>,
    known: &mut HashSet<String>,
) -> Result<(), Refusal> {
    let _ = Visit::visit(&*s, &mut Names(known));
    let kind = kind(s);
    let unsupported = |why| Err(Refusal::Unsupported(kind.clone(), why));
    match s {
        Statement::Use(Use::Object(n) | Use::Database(n) | Use::Schema(n)) => {
            return schema_name(n, schemas, renamed);
        }
        Statement::Use(_) => return unsupported("only USE <schema> is kept in a lane"),
        Statement::CreateDatabase { db_name, .. } => return schema_name(db_name, schemas, renamed),
        Statement::CreateSchema { schema_name: SchemaName::Simple(n), .. } => {
            return schema_name(n, schemas, renamed);
        }
        Statement::Drop { object_type: ObjectType::Schema | ObjectType::Database, names, .. } => {
            for n in names {
                schema_name(n, schemas, renamed)?;
            }
            return Ok(());
        }
        Statement::ShowTables { show_options, .. } => {
            if let Some(ShowStatementIn { parent_name: Some(n), .. }) = &mut show_options.show_in {
                schema_name(n, schemas, renamed)?;
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
                return Err(Refusal::Unsupported("SET GLOBAL".into(), "it changes the server for everyone"));
            }
            return Ok(());
        }
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update { .. }
        | Statement::Delete(_)
        | Statement::CreateTable(_)
        | Statement::CreateView { .. }
        | Statement::CreateIndex(_)
        | Statement::AlterTable { .. }
        | Statement::Drop { .. }
        | Statement::Truncate { .. }
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::LockTables { .. }
        | Statement::RenameTable(_)
        | Statement::Analyze { .. }
        | Statement::OptimizeTable { .. } => {}
        _ => return unsupported("it reaches beyond the lane's data"),
    }
    if let Statement::Query(q) = s
        && q.to_string().to_ascii_uppercase().contains(" INTO OUTFILE")
    {
        return unsupported("it writes files on the server");
    }
    let read_only = matches!(
        s,
        Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ExplainTable { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
    );
    let mut result = Ok(());
    let _ = visit_relations_mut(s, |name| {
        let n = name.0.len();
        if n >= 2
            && let Some(ObjectNamePart::Identifier(id)) = name.0.get_mut(n - 2)
            && let Err(e) = rename(id, schemas, renamed, !read_only)
        {
            result = Err(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    result?;
    let mut result = Ok(());
    let _ = visit_expressions_mut(s, |e| {
        if let Expr::CompoundIdentifier(ids) = e
            && ids.len() >= 3
        {
            let i = ids.len() - 3;
            if let Err(err) = rename(&mut ids[i], schemas, renamed, false) {
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
mod tests {
    use super::*;

    fn lane() -> Schemas {
        Schemas {
            suffix: Some("_shadow".into()),
            map: BTreeMap::from([("billing".into(), "billing_stress".into())]),
        }
    }

    fn ok(sql: &str) -> Option<String> {
        rewrite(sql, &lane()).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    #[test]
    fn schema_qualified_names_move_to_the_lane() {
        assert_eq!(
            ok("SELECT * FROM t WHERE id = 1"),
            None,
            "unqualified: the connection's schema is mapped"
        );
        assert_eq!(
            ok("SELECT a.x FROM orders.t AS a").as_deref(),
            Some("SELECT a.x FROM orders_shadow.t AS a")
        );
        assert_eq!(
            ok("INSERT INTO billing.inv (id) VALUES (?)").as_deref(),
            Some("INSERT INTO billing_stress.inv (id) VALUES (?)")
        );
        assert_eq!(
            ok("UPDATE orders.t SET who = 'x' WHERE orders.t.id = 2").as_deref(),
            Some("UPDATE orders_shadow.t SET who = 'x' WHERE orders_shadow.t.id = 2")
        );
        assert_eq!(ok("USE orders").as_deref(), Some("USE orders_shadow"));
        assert_eq!(
            ok("CREATE DATABASE IF NOT EXISTS orders").as_deref(),
            Some("CREATE DATABASE IF NOT EXISTS orders_shadow")
        );
        assert_eq!(ok("DROP DATABASE orders").as_deref(), Some("DROP DATABASE orders_shadow"));
        assert_eq!(
            ok("SELECT * FROM `orders`.`t` JOIN billing.inv i ON i.id = t.id").as_deref(),
            Some("SELECT * FROM `orders_shadow`.`t` JOIN billing_stress.inv AS i ON i.id = t.id")
        );
        assert_eq!(ok("SELECT @@version_comment LIMIT 1"), None);
        assert_eq!(ok("SELECT * FROM information_schema.tables"), None);
        assert_eq!(ok("SET NAMES utf8mb4"), None);
    }

    #[test]
    fn statements_beyond_the_data_are_refused() {
        for sql in [
            "GRANT ALL ON *.* TO 'x'@'%'",
            "CREATE USER 'x'@'%' IDENTIFIED BY 'y'",
            "SET GLOBAL max_connections = 10",
            "CALL orders.p()",
            "INSERT INTO mysql.user (Host) VALUES ('x')",
            "SELECT * FROM t INTO OUTFILE '/tmp/x'",
            "KILL 5",
        ] {
            // Refused either way: as beyond the data, or as unreadable.
            assert!(rewrite(sql, &lane()).is_err(), "{sql}");
        }
        assert!(matches!(rewrite("GRANT ALL ON *.* TO x", &lane()), Err(Refusal::Unsupported(..))));
        assert!(matches!(rewrite("SELEC 1", &lane()), Err(Refusal::Parse(_))));
        let only_map = Schemas { suffix: None, map: BTreeMap::from([("orders".into(), "o2".into())]) };
        assert!(rewrite("SELECT * FROM other.t", &only_map).is_err(), "an unmapped schema is refused");
    }
}
