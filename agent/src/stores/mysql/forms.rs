//! MariaDB forms the SQL parser does not read, handled on the lexer's own tokens: what
//! mysqldump, sysbench and sequences use. Statement forms (`ALTER TABLE t DISABLE KEYS`,
//! `CREATE`/`ALTER SEQUENCE`, a `SET` of plain values) are decided here whole; expression
//! forms (`NEXT VALUE FOR s`, `PREVIOUS VALUE FOR s`, `LOCK IN SHARE MODE`) are read here
//! and replaced in the parser's view by text of the same length it reads (`NULL`,
//! `FOR SHARE`).

use super::{
    lex::{Kind, Token},
    refusal::Refusal,
    schemas::Walk,
};

/// The words of a statement, lowercased, with where they are.
pub(super) struct Words<'a> {
    pub sql: &'a [u8],
    pub sig: &'a [Token],
}

impl Words<'_> {
    pub fn is(&self, i: usize, word: &str) -> bool {
        self.sig.get(i).is_some_and(|t| {
            t.kind == Kind::Word && self.sql[t.start..t.end].eq_ignore_ascii_case(word.as_bytes())
        })
    }

    fn punct(&self, i: usize, p: &[u8]) -> bool {
        self.sig.get(i).is_some_and(|t| t.kind == Kind::Punct && &self.sql[t.start..t.end] == p)
    }

    /// A name (`t`) or a qualified one (`s.t`) at `i`: its schema renamed and placed; the
    /// tokens it spans.
    fn object(&self, i: usize, walk: &mut Walk, write: bool) -> Result<usize, Refusal> {
        let name = |k: usize| self.sig.get(k).is_some_and(Token::is_name);
        if !name(i) {
            return Err(refused("a name was expected"));
        }
        if self.punct(i + 1, b".") {
            if !name(i + 2) || self.punct(i + 3, b".") {
                return Err(refused("a name has at most two parts (schema.object)"));
            }
            walk.schema_token(self.sql, &self.sig[i], write)?;
            return Ok(3);
        }
        Ok(1)
    }
}

fn refused(why: &'static str) -> Refusal {
    Refusal::Unsupported(None, why)
}

/// A statement decided here whole (`Ok(true)`), or one for the parser (`Ok(false)`).
pub(super) fn statement(w: &Words<'_>, walk: &mut Walk) -> Result<bool, Refusal> {
    // ALTER TABLE t {DISABLE|ENABLE} KEYS (mysqldump).
    if w.is(0, "alter") && w.is(1, "table") {
        let n = w.object(2, walk, true).ok();
        if let Some(n) = n
            && (w.is(2 + n, "disable") || w.is(2 + n, "enable"))
            && w.is(3 + n, "keys")
            && w.sig.len() == 4 + n
        {
            return Ok(true);
        }
        return Ok(false);
    }
    // CREATE [OR REPLACE] SEQUENCE [IF NOT EXISTS] s options; ALTER SEQUENCE [IF EXISTS] s options.
    let mut i = if w.is(0, "create") && w.is(1, "or") && w.is(2, "replace") { 3 } else { 1 };
    if (w.is(0, "create") || w.is(0, "alter")) && w.is(i, "sequence") {
        i += 1;
        while w.is(i, "if") || w.is(i, "not") || w.is(i, "exists") {
            i += 1;
        }
        i += w.object(i, walk, true)?;
        // Options are words, numbers, `=` and signs: never a name with a schema.
        let plain = w.sig[i..].iter().all(|t| match t.kind {
            Kind::Word | Kind::Number => true,
            Kind::Punct => matches!(&w.sql[t.start..t.end], b"=" | b"-" | b"+"),
            _ => false,
        });
        if !plain {
            return Err(refused("a sequence's options are plain words and numbers"));
        }
        return Ok(true);
    }
    // SET with plain values (the session has read what it sets): no names in it.
    if w.is(0, "set") {
        let plain = w.sig[1..].iter().all(|t| match t.kind {
            Kind::Punct => matches!(&w.sql[t.start..t.end], b"=" | b":=" | b"," | b"-" | b"."),
            Kind::Word
            | Kind::Quoted
            | Kind::Str
            | Kind::Number
            | Kind::UserVar
            | Kind::SysVar
            | Kind::Bits => true,
            _ => false,
        });
        // `a.b` outside a variable would be a name: plain SETs have none.
        let dotted = w.sig.windows(2).any(|p| p[0].is_name() && w.sql[p[1].start..p[1].end] == *b".");
        return Ok(plain && !dotted);
    }
    Ok(false)
}

/// Expression forms: their names renamed and placed, and the parser's view of them
/// replaced by same-length text it reads (`view` is the statement's slice, from `base`).
pub(super) fn substitute(
    w: &Words<'_>,
    view: &mut [u8],
    base: usize,
    walk: &mut Walk,
) -> Result<(), Refusal> {
    let mut i = 0;
    while i < w.sig.len() {
        // NEXT VALUE FOR s, PREVIOUS VALUE FOR s → NULL.
        if (w.is(i, "next") || w.is(i, "previous")) && w.is(i + 1, "value") && w.is(i + 2, "for") {
            let n = w.object(i + 3, walk, true)?;
            let (start, end) = (w.sig[i].start - base, w.sig[i + 2 + n].end - base);
            blank(view, start, end);
            view[start..start + 4].copy_from_slice(b"NULL");
            i += 3 + n;
            continue;
        }
        // LOCK IN SHARE MODE → FOR SHARE.
        if w.is(i, "lock") && w.is(i + 1, "in") && w.is(i + 2, "share") && w.is(i + 3, "mode") {
            let (start, end) = (w.sig[i].start - base, w.sig[i + 3].end - base);
            blank(view, start, end);
            view[start..start + 9].copy_from_slice(b"FOR SHARE");
            i += 4;
            continue;
        }
        i += 1;
    }
    Ok(())
}

pub(super) fn blank(view: &mut [u8], start: usize, end: usize) {
    view[start..end].iter_mut().for_each(|b| *b = b' ');
}
