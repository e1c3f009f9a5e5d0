//! A lane's SQL: every schema a statement names (`orders.t`, `orders.t.col`, `USE orders`,
//! `CREATE DATABASE orders`, `SHOW TABLES FROM orders`, `NEXTVAL(orders.s)`) becomes the
//! lane's schema.
//!
//! The text is read twice and both readings must agree. First as MariaDB reads it
//! ([`super::lex`]: comments, executable comments, literals under the session's quoting
//! and character set as the server reports them, [`super::session`]).
//! That reading makes a *view* of the same length in which comments are blanks, the
//! markers of executable comments are blanks (their bodies are SQL, as for the server) and
//! literals hold only spaces — so the parser (`sqlparser`, MySQL dialect) sees exactly the
//! code MariaDB sees and cannot misread a literal or a comment. The parser reads each
//! statement of the view; a parser comment, or a name it renames that is not one of the
//! lexer's names, refuses the statement. Every qualifier the lexer finds (`x.` before a
//! name) must be one the walk placed (a schema it renamed or a table qualifying a
//! column). The client's own bytes are sent with only those names replaced.
//!
//! What this cannot read, or what reaches beyond the data (accounts, grants, server
//! settings, files, procedures), is refused. The store account (`dataLanes[].account`) is
//! the wall behind this one: a statement misread here still fails at the store.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::{
    ast::{
        Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, ObjectNamePart, ObjectType,
        SchemaName, ShowStatementIn, Statement, Use, visit_expressions_mut, visit_relations_mut,
    },
    dialect::MySqlDialect,
    parser::Parser,
    tokenizer::{Location, Token as PToken, Tokenizer, Whitespace},
};

use super::{
    forms::{self, Words},
    lex::{Kind, Lexer, Rules, Token, trimmed},
    refusal::{refused, unsupported},
    schemas::Walk,
    session::{Change, Session},
};
pub use super::{
    refusal::Refusal,
    schemas::{Schemas, is_system},
};

/// Operators in one statement at most: each nests the expression tree one level deeper
/// (walking, printing and dropping it recurse), so a `1+1+…` of 100,000 terms would
/// overflow the stack.
const MAX_OPERATORS: usize = 2_000;
/// MariaDB functions whose first argument names a sequence (`schema.sequence`).
const SEQUENCE_FUNCTIONS: &[&str] = &["nextval", "lastval", "setval"];

/// One statement of the view as the parser reads it, with byte offsets (in the whole text)
/// for its spans.
struct ParsedView<'v> {
    text: &'v str,
    /// Where the statement starts in the whole text.
    base: usize,
    line_starts: Vec<usize>,
}

impl ParsedView<'_> {
    fn offset(&self, l: Location) -> Option<usize> {
        let start = *self.line_starts.get(usize::try_from(l.line).ok()?.checked_sub(1)?)?;
        let col = usize::try_from(l.column).ok()?.checked_sub(1)?;
        let line = &self.text[start..];
        Some(self.base + start + line.char_indices().nth(col).map_or(line.len(), |(i, _)| i))
    }
}

/// What a text becomes for the lane.
#[derive(Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// `None` when nothing needs changing (the original text goes as it is); the text with
    /// the lane's schema names spliced in otherwise.
    pub text: Option<Vec<u8>>,
    /// It may change how the server reads SQL (ask the server afterwards).
    pub change: Change,
}

/// The statement(s) for the lane, read with the session's `rules`. `prepared`: a
/// `COM_STMT_PREPARE`. A packet of several statements refuses what a single statement
/// would only have had forwarded as it is (`onUnsupported: passthrough`): the others would
/// go unmapped.
pub fn rewrite(sql: &[u8], schemas: &Schemas, rules: &Rules, prepared: bool) -> Result<Rewritten, Refusal> {
    let (start, end) = trimmed(sql, rules.charset);
    let mut lexer = Lexer::new(sql, start, end);
    let mut tokens: Vec<Token> = Vec::new();
    let mut statements: Vec<std::ops::Range<usize>> = Vec::new();
    let mut from = 0;
    loop {
        let next = lexer.next(rules).map_err(|e| Refusal::Parse(format!("{e}")))?;
        let Some(t) = next else { break };
        tokens.push(t);
        if t.kind == Kind::Punct && sql[t.start..t.end] == *b";" {
            if lexer.in_exec() {
                return Err(refused("a statement ends inside an executable comment"));
            }
            statements.push(from..tokens.len());
            from = tokens.len();
        }
    }
    if from < tokens.len() {
        statements.push(from..tokens.len());
    }
    statements.retain(|r| tokens[r.clone()].iter().any(|t| t.significant() && sql[t.start..t.end] != *b";"));
    let several = statements.len() > 1;
    let mut change = Change::None;
    for r in &statements {
        if Session::change(sql, &tokens[r.clone()], prepared)? == Change::Reading {
            if several {
                return Err(Refusal::Unfollowable(
                    "SET".into(),
                    "a SET of sql_mode or the character set goes alone in its packet",
                ));
            }
            change = Change::Reading;
        }
    }
    let text = read(sql, schemas, &tokens, &statements).map_err(|e| match e {
        Refusal::Unsupported(Some(_), why) if several => Refusal::Unsupported(None, why),
        other => other,
    })?;
    Ok(Rewritten { text, change })
}

fn read(
    sql: &[u8],
    schemas: &Schemas,
    tokens: &[Token],
    statements: &[std::ops::Range<usize>],
) -> Result<Option<Vec<u8>>, Refusal> {
    let view = view(sql, tokens)?;
    let mut walk = Walk { schemas, renames: Vec::new(), placed: HashSet::new() };
    for range in statements.iter().cloned() {
        let sig: Vec<Token> = tokens[range.clone()].iter().copied().filter(Token::significant).collect();
        let sig: Vec<Token> = sig.into_iter().filter(|t| sql[t.start..t.end] != *b";").collect();
        if sig.is_empty() {
            continue;
        }
        refuse_files(sql, &sig)?;
        let words = Words { sql, sig: &sig };
        if forms::statement(&words, &mut walk)? || unqualified(&words) {
            continue;
        }
        // This statement alone: its slice of the view (offsets from `s`).
        let (s, e) = (tokens[range.start].start, tokens[range.end - 1].end);
        let mut own = view[s..e].to_vec();
        forms::substitute(&words, &mut own, s, &mut walk)?;
        let text = String::from_utf8(own).map_err(|_| refused("names in bytes graylane cannot read"))?;
        // A deep tree is parsed, walked and dropped (all recursive) on a stack of its own.
        let mut parse = || parse_statement(&text, s, tokens, &mut walk, words.is(0, "do"));
        if nesting(sql, &sig) > SHALLOW { stacker::grow(DEEP_STACK, parse)? } else { parse()? }
    }
    // Every qualifier the lexer sees is one the walk placed, at its very position.
    let sig: Vec<&Token> = tokens.iter().filter(|t| t.significant()).collect();
    let punct =
        |i: usize, p: &[u8]| sig.get(i).is_some_and(|t| t.kind == Kind::Punct && sql[t.start..t.end] == *p);
    for (i, t) in sig.iter().enumerate() {
        if !t.is_name() || !punct(i + 1, b".") {
            continue;
        }
        // `t.*` and `s.t.*` qualify a wildcard, which can only name tables of the FROM.
        let wildcard = punct(i + 2, b"*") || (punct(i + 3, b".") && punct(i + 4, b"*"));
        if !wildcard && !walk.placed.contains(&t.start) {
            return Err(refused("it names something graylane cannot place"));
        }
    }
    if walk.renames.is_empty() {
        return Ok(None);
    }
    splice(sql, tokens, walk.renames).map(Some)
}

/// Statement kinds that name no schema but through a qualifier (`s.t`): their unqualified
/// names are the session's default schema, which is the lane's.
const DATA_STATEMENTS: &[&str] =
    &["select", "insert", "update", "delete", "replace", "begin", "commit", "rollback"];

/// A data statement with no `.` anywhere MariaDB could read one (outside literals,
/// comments and system variables): it reaches only the default schema, so there is nothing
/// to rename or place and the parser is not needed (the rows of a load test take this way).
fn unqualified(w: &Words<'_>) -> bool {
    let kind = DATA_STATEMENTS.iter().any(|k| w.is(0, k)) || (w.is(0, "start") && w.is(1, "transaction"));
    kind && w.sig.iter().all(|t| {
        matches!(t.kind, Kind::Str | Kind::Bits | Kind::SysVar) || !w.sql[t.start..t.end].contains(&b'.')
    })
}

/// Words the parser may read as an operator (each nests the tree one level deeper).
const OPERATOR_WORDS: &[&str] = &[
    "and",
    "or",
    "xor",
    "not",
    "div",
    "mod",
    "union",
    "intersect",
    "except",
    "minus",
    "is",
    "collate",
    "like",
    "rlike",
    "regexp",
    "between",
    "in",
    "escape",
    "sounds",
    "member",
    "binary",
    "interval",
    "case",
    "when",
];
/// Storage engines that reach data elsewhere (another server, other tables, files).
const FOREIGN_ENGINES: &[&str] =
    &["federated", "federatedx", "spider", "connect", "merge", "mrg_myisam", "csv", "sequence", "oqgraph"];

/// Operators and parentheses up to which a statement is parsed on the caller's stack.
const SHALLOW: usize = 64;
/// The stack a deeper statement gets (virtual: only what it touches is memory).
const DEEP_STACK: usize = 64 << 20;
/// Parentheses nested at most.
const MAX_DEPTH: usize = 128;

/// How deep a statement's tree may nest: its operators plus its deepest parenthesis.
fn nesting(sql: &[u8], sig: &[Token]) -> usize {
    let (mut depth, mut deepest, mut operators) = (0usize, 0usize, 0usize);
    for t in sig {
        match (t.kind, &sql[t.start..t.end]) {
            (Kind::Punct, b"(") => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (Kind::Punct, b")") => depth = depth.saturating_sub(1),
            (Kind::Punct, b"," | b"." | b";") => {}
            (Kind::Punct, _) => operators += 1,
            (Kind::Word, w) if OPERATOR_WORDS.iter().any(|o| w.eq_ignore_ascii_case(o.as_bytes())) => {
                operators += 1
            }
            _ => {}
        }
    }
    operators + deepest
}

/// Files on the server (`INTO OUTFILE`/`DUMPFILE`, `LOAD_FILE()`), tables whose data lives
/// elsewhere (`CONNECTION=`, the engines of `FOREIGN_ENGINES`), and statements that nest
/// too deep to walk.
fn refuse_files(sql: &[u8], sig: &[Token]) -> Result<(), Refusal> {
    let w = Words { sql, sig };
    // A name as MariaDB reads it, quoted or not.
    let named = |i: usize, name: &str| {
        w.is(i, name)
            || sig.get(i).is_some_and(|t| {
                t.kind == Kind::Quoted && sql[t.start + 1..t.end - 1].eq_ignore_ascii_case(name.as_bytes())
            })
    };
    for i in 0..sig.len() {
        if w.is(i, "into") && (w.is(i + 1, "outfile") || w.is(i + 1, "dumpfile")) {
            return Err(unsupported("INTO OUTFILE", "it writes files on the server"));
        }
        if named(i, "load_file") {
            return Err(unsupported("LOAD_FILE", "it reads files on the server"));
        }
        if w.is(i, "connection") && (w.is(0, "create") || w.is(0, "alter")) {
            return Err(unsupported("CONNECTION", "a table whose data lives on another server"));
        }
        if w.is(i, "engine") {
            let at = if sig.get(i + 1).is_some_and(|t| sql[t.start..t.end] == *b"=") { i + 2 } else { i + 1 };
            if FOREIGN_ENGINES.iter().any(|e| named(at, e)) {
                return Err(unsupported("ENGINE", "a storage engine whose data lives elsewhere"));
            }
        }
    }
    // (Operators nest left-deep; parentheses nest; a VALUES list of any length does not.)
    let mut depth = 0usize;
    let mut deepest = 0usize;
    for t in sig.iter().filter(|t| t.kind == Kind::Punct) {
        match &sql[t.start..t.end] {
            b"(" => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b")" => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if nesting(sql, sig) - deepest > MAX_OPERATORS || deepest > MAX_DEPTH {
        return Err(refused("the statement nests too deep to read safely"));
    }
    Ok(())
}

/// The text as the parser may see it: same length; comments as `/*` blanks `*/` (one token
/// for the parser, whatever their length) or blanks when shorter than four bytes;
/// executable comments' markers and a final NUL blank; literals' contents blank (their
/// quotes kept, `"…"` strings quoted `'…'`); `ANSI_QUOTES` names quoted with backticks.
fn view(sql: &[u8], tokens: &[Token]) -> Result<Vec<u8>, Refusal> {
    let mut v = sql.to_vec();
    for t in tokens {
        match t.kind {
            Kind::Comment if t.end - t.start >= 4 => {
                forms::blank(&mut v, t.start, t.end);
                v[t.start..t.start + 2].copy_from_slice(b"/*");
                v[t.end - 2..t.end].copy_from_slice(b"*/");
            }
            Kind::Comment | Kind::ExecOpen | Kind::ExecClose | Kind::Nul => {
                forms::blank(&mut v, t.start, t.end)
            }
            Kind::Str => {
                let open = if matches!(sql[t.start], b'n' | b'N') { t.start + 1 } else { t.start };
                forms::blank(&mut v, open + 1, t.end - 1);
                v[open] = b'\'';
                v[t.end - 1] = b'\'';
            }
            Kind::Quoted if sql[t.start] == b'"' => {
                if sql[t.start + 1..t.end - 1].iter().any(|b| *b == b'`' || *b == b'"') {
                    return Err(refused("a quoted name with quotes in it"));
                }
                v[t.start] = b'`';
                v[t.end - 1] = b'`';
            }
            _ => {}
        }
    }
    Ok(v)
}

/// Parses one statement of the view (`expressions`: `DO`'s list) and walks it.
fn parse_statement(
    text: &str,
    base: usize,
    tokens: &[Token],
    walk: &mut Walk,
    expressions: bool,
) -> Result<(), Refusal> {
    let dialect = MySqlDialect {};
    let parse = |e: sqlparser::parser::ParserError| Refusal::Parse(e.to_string());
    let view = ParsedView {
        text,
        base,
        line_starts: std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect(),
    };
    // The parser's own tokens: a comment where MariaDB saw none, or a literal or quoted name
    // where MariaDB saw none, is a disagreement.
    let ptokens =
        Tokenizer::new(&dialect, text).tokenize_with_location().map_err(|e| Refusal::Parse(e.to_string()))?;
    let in_statement = |t: &&Token| t.start >= base && t.end <= base + text.len();
    let starts: HashSet<usize> = tokens
        .iter()
        .filter(in_statement)
        .filter(|t| matches!(t.kind, Kind::Str | Kind::Bits | Kind::Quoted))
        .map(|t| t.start)
        .collect();
    let comments: HashSet<(usize, usize)> = tokens
        .iter()
        .filter(in_statement)
        .filter(|t| t.kind == Kind::Comment)
        .map(|t| (t.start, t.end))
        .collect();
    for t in &ptokens {
        let literal = match &t.token {
            // Only the comments MariaDB saw, exactly where it saw them (the view writes them
            // as `/* … */`).
            PToken::Whitespace(Whitespace::MultiLineComment(_))
                if view
                    .offset(t.span.start)
                    .zip(view.offset(t.span.end))
                    .is_some_and(|se| comments.contains(&se)) =>
            {
                false
            }
            PToken::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                return Err(refused("graylane's parser and MariaDB read a comment differently"));
            }
            PToken::Word(w) => w.quote_style.is_some(),
            PToken::SingleQuotedString(_)
            | PToken::DoubleQuotedString(_)
            | PToken::NationalStringLiteral(_)
            | PToken::HexStringLiteral(_)
            | PToken::SingleQuotedByteStringLiteral(_)
            | PToken::DoubleQuotedByteStringLiteral(_) => true,
            _ => false,
        };
        if literal && !view.offset(t.span.start).is_some_and(|o| starts.contains(&o)) {
            return Err(refused("graylane's parser and MariaDB read a literal differently"));
        }
    }
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(ptokens);
    let mut idents: Found = Vec::new();
    let mut placed: Vec<Ident> = Vec::new();
    if expressions {
        // DO expr, …: `DO` is blank in the view.
        parser.expect_keyword(sqlparser::keywords::Keyword::DO).ok();
        let mut list = parser.parse_comma_separated(Parser::parse_expr).map_err(parse)?;
        for e in &mut list {
            expressions_of(e, walk.schemas, &mut idents, &mut placed)?;
        }
    } else {
        let mut statements = parser.parse_statements().map_err(parse)?;
        if statements.len() != 1 {
            return Err(Refusal::Parse("one statement was expected".into()));
        }
        statement(&mut statements[0], walk.schemas, &mut idents, &mut placed)?;
    }
    if parser.peek_token().token != PToken::EOF {
        return Err(Refusal::Parse("the statement was not read to its end".into()));
    }
    // Renames and placements land on the lexer's own names, at their exact bytes.
    let name_at = |id: &Ident| -> Result<&Token, Refusal> {
        let (Some(s), Some(e)) = (view.offset(id.span.start), view.offset(id.span.end)) else {
            return Err(refused("a name without a position in the text"));
        };
        tokens
            .binary_search_by_key(&s, |t| t.start)
            .ok()
            .map(|i| &tokens[i])
            .filter(|t| t.is_name() && t.end == e)
            .ok_or_else(|| refused("a name's position does not match the text"))
    };
    for id in &placed {
        walk.placed.insert(name_at(id)?.start);
    }
    for (id, write) in idents {
        let t = *name_at(&id)?;
        walk.placed.insert(t.start);
        walk.rename_at(t.start, t.end, &id.value, write)?;
    }
    Ok(())
}

/// The original bytes with each renamed name replaced (its quotes kept).
fn splice(
    sql: &[u8],
    tokens: &[Token],
    mut renames: Vec<(usize, usize, String)>,
) -> Result<Vec<u8>, Refusal> {
    renames.sort_by_key(|r| std::cmp::Reverse(r.0));
    renames.dedup_by_key(|r| r.0);
    let mut out = sql.to_vec();
    let mut last = usize::MAX;
    for (start, end, new) in renames {
        if end > last {
            return Err(refused("overlapping names"));
        }
        let quote =
            tokens.iter().find(|t| t.start == start).filter(|t| t.kind == Kind::Quoted).map(|_| sql[start]);
        let text = match quote {
            Some(q) => {
                let q = q as char;
                format!("{q}{}{q}", new.replace(q, &format!("{q}{q}")))
            }
            None => new,
        };
        out.splice(start..end, text.into_bytes());
        last = start;
    }
    Ok(out)
}

/// Names a walk finds: (schema identifier, written?) to rename, qualifiers to place.
type Found = Vec<(Ident, bool)>;

fn schema_of(
    n: &ObjectName,
    idents: &mut Found,
    placed: &mut Vec<Ident>,
    write: bool,
) -> Result<(), Refusal> {
    match n.0.as_slice() {
        [_] => Ok(()),
        [ObjectNamePart::Identifier(s), _] => {
            placed.push(s.clone());
            idents.push((s.clone(), write));
            Ok(())
        }
        [_, _] => Err(refused("a schema is named by an identifier")),
        _ => Err(refused("a name has at most two parts (schema.object)")),
    }
}

fn one_part(n: &ObjectName, idents: &mut Found) -> Result<(), Refusal> {
    match n.0.as_slice() {
        [ObjectNamePart::Identifier(id)] => {
            idents.push((id.clone(), true));
            Ok(())
        }
        _ => Err(refused("a schema name has one part")),
    }
}

fn statement(
    s: &mut Statement,
    schemas: &Schemas,
    idents: &mut Found,
    placed: &mut Vec<Ident>,
) -> Result<(), Refusal> {
    match s {
        Statement::Use(Use::Object(n) | Use::Database(n) | Use::Schema(n)) => return one_part(n, idents),
        Statement::Use(_) => return Err(unsupported(&kind(s), "only USE <schema> is kept in a lane")),
        Statement::CreateDatabase { db_name, .. } => return one_part(db_name, idents),
        Statement::CreateSchema { schema_name: SchemaName::Simple(n), .. } => return one_part(n, idents),
        Statement::Drop { object_type: ObjectType::Schema | ObjectType::Database, names, .. } => {
            return names.iter().try_for_each(|n| one_part(n, idents));
        }
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::View | ObjectType::Sequence,
            names,
            table: None,
            ..
        } => return names.iter().try_for_each(|n| schema_of(n, idents, placed, true)),
        Statement::RenameTable(pairs) => {
            for p in pairs.iter() {
                schema_of(&p.old_name, idents, placed, true)?;
                schema_of(&p.new_name, idents, placed, true)?;
            }
            return Ok(());
        }
        Statement::ShowCreate { obj_name, .. } => return schema_of(obj_name, idents, placed, false),
        Statement::ExplainTable { table_name, .. } => return schema_of(table_name, idents, placed, false),
        // The parser's catch-all for SHOW forms it does not know: the ones that read this
        // session's view of its own schemas, with the schema a `FROM`/`IN` names mapped.
        Statement::ShowVariable { variable } => return show_other(variable, idents),
        Statement::ShowColumns { show_options, .. } => {
            if let Some(ShowStatementIn { parent_name: Some(n), .. }) = &show_options.show_in {
                return schema_of(n, idents, placed, false);
            }
            return Ok(());
        }
        Statement::ShowTables { show_options, .. } => {
            if let Some(ShowStatementIn { parent_name: Some(n), .. }) = &show_options.show_in {
                return one_part(n, idents);
            }
            return Ok(());
        }
        Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCollation { .. }
        | Statement::ShowCharset(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::UnlockTables => return Ok(()),
        // The session read what SETs change; GLOBAL and friends were refused there.
        Statement::Set(_)
        | Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update { .. }
        | Statement::Delete(_)
        | Statement::CreateTable(_)
        | Statement::CreateIndex(_)
        | Statement::AlterTable { .. }
        | Statement::Truncate { .. }
        | Statement::Explain { .. }
        | Statement::LockTables { .. }
        | Statement::Analyze { .. }
        | Statement::OptimizeTable { .. } => {}
        _ => return Err(unsupported(&kind(s), "it reaches beyond the lane's data")),
    }
    let read_only = matches!(s, Statement::Query(_) | Statement::Set(_) | Statement::Explain { .. });
    let mut result = Ok(());
    let _ = visit_relations_mut(s, |name| match schema_of(name, idents, placed, !read_only) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            result = Err(e);
            ControlFlow::Break(())
        }
    });
    result?;
    expressions_of(s, schemas, idents, placed)
}

/// `SHOW TABLE STATUS [FROM db]`, `SHOW INDEX FROM t [FROM db]`, `SHOW WARNINGS`, …: the
/// forms that stay within the session's own data; the schema after `FROM`/`IN` (the
/// second one for `INDEX`) is the lane's.
fn show_other(words: &[Ident], idents: &mut Found) -> Result<(), Refusal> {
    let upper: Vec<String> = words.iter().map(|w| w.value.to_ascii_uppercase()).collect();
    let first = upper.first().map(String::as_str).unwrap_or("");
    let schema_after = match first {
        "WARNINGS" | "ERRORS" | "ENGINES" | "PLUGINS" | "PRIVILEGES" | "GRANTS" | "PROFILES" => {
            return if upper.iter().any(|w| w == "FOR") {
                Err(unsupported("SHOW GRANTS FOR", "it shows other accounts"))
            } else {
                Ok(())
            };
        }
        "TABLE" | "OPEN" | "TRIGGERS" | "EVENTS" => 1,
        "INDEX" | "INDEXES" | "KEYS" => 2,
        _ => return Err(unsupported(&format!("SHOW {first}"), "it reaches beyond the lane's data")),
    };
    let mut froms = 0;
    for (i, w) in upper.iter().enumerate() {
        if (w == "FROM" || w == "IN") && words.get(i + 1).is_some() {
            froms += 1;
            if froms == schema_after {
                idents.push((words[i + 1].clone(), false));
            }
        }
    }
    Ok(())
}

/// Names inside expressions: `schema.table.column` (its schema renamed), `table.column`
/// (its table placed), and the sequence of `NEXTVAL`/`LASTVAL`/`SETVAL` (`schema.seq`).
fn expressions_of<V: sqlparser::ast::VisitMut>(
    node: &mut V,
    _schemas: &Schemas,
    idents: &mut Found,
    placed: &mut Vec<Ident>,
) -> Result<(), Refusal> {
    let mut result = Ok(());
    let _ = visit_expressions_mut(node, |e| {
        match e {
            Expr::CompoundIdentifier(ids) => {
                let n = ids.len();
                if n > 3 {
                    result = Err(refused("a column has at most three parts"));
                    return ControlFlow::Break(());
                }
                placed.extend(ids[..n.saturating_sub(1)].iter().cloned());
                if n == 3 {
                    idents.push((ids[0].clone(), false));
                }
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                if SEQUENCE_FUNCTIONS.contains(&name.as_str())
                    && let FunctionArguments::List(list) = &f.args
                    && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(ids)))) =
                        list.args.first()
                {
                    if ids.len() != 2 {
                        result = Err(refused("a sequence is named schema.sequence at most"));
                        return ControlFlow::Break(());
                    }
                    idents.push((ids[0].clone(), name != "lastval"));
                }
                if f.name.0.len() > 1 {
                    result = Err(refused("schema-qualified function names"));
                    return ControlFlow::Break(());
                }
            }
            _ => {}
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
