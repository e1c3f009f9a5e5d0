//! A lane's schemas: the mapping (`orders` → `orders_shadow`), the system schemas every
//! lane shares read-only, and what a reading of a statement placed (names to replace,
//! qualifiers accounted for).

use std::collections::{BTreeMap, HashSet};

use super::{
    lex::{Kind, Token},
    refusal::{Refusal, refused},
};

/// Schemas every lane shares, read-only: never renamed, never written, never a lane's
/// default schema.
const SYSTEM: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];
/// A lane's schema mapping.
#[derive(Clone, Debug)]
pub struct Schemas {
    pub suffix: Option<String>,
    pub map: BTreeMap<String, String>,
}

pub fn is_system(schema: &str) -> bool {
    SYSTEM.iter().any(|s| s.eq_ignore_ascii_case(schema))
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

/// What the readings placed: names to replace (byte range → new name), and where each
/// qualifier they placed starts.
pub(super) struct Walk<'a> {
    pub(super) schemas: &'a Schemas,
    pub(super) renames: Vec<(usize, usize, String)>,
    pub(super) placed: HashSet<usize>,
}

impl Walk<'_> {
    /// A schema named by one of the lexer's tokens (`schema.` in a form): renamed, placed.
    pub(super) fn schema_token(&mut self, sql: &[u8], t: &Token, write: bool) -> Result<(), Refusal> {
        let text = &sql[t.start..t.end];
        let name = match t.kind {
            Kind::Quoted => {
                let q = text[0];
                let inner = &text[1..text.len() - 1];
                String::from_utf8_lossy(inner)
                    .replace(&format!("{0}{0}", q as char), &(q as char).to_string())
            }
            _ => String::from_utf8_lossy(text).into_owned(),
        };
        self.placed.insert(t.start);
        self.rename_at(t.start, t.end, &name, write)
    }

    pub(super) fn rename_at(
        &mut self,
        start: usize,
        end: usize,
        schema: &str,
        write: bool,
    ) -> Result<(), Refusal> {
        match self.schemas.target(schema)? {
            Some(t) => {
                self.renames.push((start, end, t));
                Ok(())
            }
            None if write => Err(refused("system schemas are read-only for lanes")),
            None => Ok(()),
        }
    }
}
