//! Redis' own command table with its key specifications (`commands.json`: the reply of
//! `redis-cli --json COMMAND` from Redis 7.0; regenerate it the same way for a newer
//! server). Read once; tells where a command's keys are.

use std::{collections::HashMap, sync::OnceLock};

use bytes::Bytes;
use serde_json::Value as Json;

/// Where a key spec's keys start.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    Index(i64),
    Keyword { keyword: String, startfrom: i64 },
    Unknown,
}

/// Which arguments after the start are keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Find {
    Range { lastkey: i64, step: i64, limit: i64 },
    Keynum { keynumidx: i64, firstkey: i64, step: i64 },
    Unknown,
}

#[derive(Debug, Clone)]
pub struct KeySpec {
    pub begin: Begin,
    pub find: Find,
    /// Redis says the spec may miss keys (`incomplete`).
    pub incomplete: bool,
}

#[derive(Debug, Default)]
pub struct Command {
    pub name: String,
    pub acl: Vec<String>,
    pub flags: Vec<String>,
    pub specs: Vec<KeySpec>,
    pub subcommands: HashMap<String, Command>,
}

impl Command {
    pub fn in_category(&self, c: &str) -> bool {
        self.acl.iter().any(|a| a == c)
    }
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|a| a == f)
    }
}

static TABLE: OnceLock<HashMap<String, Command>> = OnceLock::new();

/// The table, parsed on first use.
pub fn table() -> &'static HashMap<String, Command> {
    TABLE.get_or_init(|| {
        let json: Json = serde_json::from_str(include_str!("commands.json")).unwrap_or(Json::Null);
        json.as_array().into_iter().flatten().filter_map(command).map(|c| (c.name.clone(), c)).collect()
    })
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_ascii_lowercase)).collect()
}

fn command(v: &Json) -> Option<Command> {
    let a = v.as_array()?;
    let full = a.first()?.as_str()?.to_ascii_lowercase();
    let name = full.rsplit('|').next().unwrap_or(&full).to_owned();
    let specs = a.get(8).and_then(Json::as_array).into_iter().flatten().map(spec).collect();
    let subcommands = a
        .get(9)
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(command)
        .map(|c| (c.name.clone(), c))
        .collect();
    Some(Command {
        name,
        flags: a.get(2).map(strings).unwrap_or_default(),
        acl: a.get(6).map(strings).unwrap_or_default(),
        specs,
        subcommands,
    })
}

fn spec(v: &Json) -> KeySpec {
    let int = |s: &Json, k: &str| s.get(k).and_then(Json::as_i64);
    let b = &v["begin_search"];
    let begin = match b["type"].as_str() {
        Some("index") => int(&b["spec"], "index").map(Begin::Index),
        Some("keyword") => b["spec"]["keyword"]
            .as_str()
            .zip(int(&b["spec"], "startfrom"))
            .map(|(k, s)| Begin::Keyword { keyword: k.to_owned(), startfrom: s }),
        _ => None,
    }
    .unwrap_or(Begin::Unknown);
    let f = &v["find_keys"];
    let s = &f["spec"];
    let find = match f["type"].as_str() {
        Some("range") => (|| {
            Some(Find::Range {
                lastkey: int(s, "lastkey")?,
                step: int(s, "keystep")?,
                limit: int(s, "limit")?,
            })
        })(),
        Some("keynum") => (|| {
            Some(Find::Keynum {
                keynumidx: int(s, "keynumidx")?,
                firstkey: int(s, "firstkey")?,
                step: int(s, "keystep")?,
            })
        })(),
        _ => None,
    }
    .unwrap_or(Find::Unknown);
    let incomplete = strings(&v["flags"]).iter().any(|f| f == "incomplete");
    KeySpec { begin, find, incomplete }
}

/// Why a command's keys cannot be found.
#[derive(Debug, PartialEq, Eq)]
pub struct KeysUnknown;

/// The positions of `args`' keys by `specs` (Redis' `getKeysUsingKeySpecs`), sorted and
/// unique. Arguments the command lacks yield no positions (Redis answers the arity error).
pub fn key_positions(specs: &[KeySpec], args: &[Bytes]) -> Result<Vec<usize>, KeysUnknown> {
    let argc = args.len() as i64;
    let mut out = Vec::new();
    for s in specs {
        if s.incomplete {
            return Err(KeysUnknown);
        }
        let first = match &s.begin {
            Begin::Index(i) => *i,
            Begin::Keyword { keyword, startfrom } => {
                let (from, to, step): (i64, i64, i64) =
                    if *startfrom >= 0 { (*startfrom, argc - 1, 1) } else { (argc + startfrom, 1, -1) };
                let mut i = from;
                let mut found = None;
                while (step > 0 && i <= to) || (step < 0 && i >= to) {
                    if args.get(i as usize).is_some_and(|a| a.eq_ignore_ascii_case(keyword.as_bytes())) {
                        if found.is_some() {
                            // Redis may take another occurrence than the first (GEORADIUS
                            // takes the last STORE): a repeated keyword is not guessed.
                            return Err(KeysUnknown);
                        }
                        found = Some(i + 1);
                    }
                    i += step;
                }
                match found {
                    Some(f) => f,
                    None => continue,
                }
            }
            Begin::Unknown => return Err(KeysUnknown),
        };
        if first <= 0 || first >= argc {
            continue;
        }
        let (first, last, step) = match &s.find {
            Find::Range { lastkey, step, limit } => {
                let last = if *lastkey >= 0 {
                    first + lastkey
                } else if *limit <= 1 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, *step)
            }
            Find::Keynum { keynumidx, firstkey, step } => {
                let idx = first + keynumidx;
                let n: i64 = args
                    .get(idx as usize)
                    .and_then(|a| std::str::from_utf8(a).ok())
                    .and_then(|t| t.parse().ok())
                    .ok_or(KeysUnknown)?;
                if n < 0 {
                    return Err(KeysUnknown);
                }
                let first = first + firstkey;
                let last =
                    n.checked_sub(1).and_then(|m| m.checked_mul(*step)).and_then(|m| m.checked_add(first));
                (first, last.ok_or(KeysUnknown)?, *step)
            }
            Find::Unknown => return Err(KeysUnknown),
        };
        if step <= 0 {
            return Err(KeysUnknown);
        }
        if last >= argc {
            // More keys announced than arguments given: Redis refuses it; so do we.
            return Err(KeysUnknown);
        }
        let mut i = first;
        while i <= last {
            out.push(i as usize);
            i += step;
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The command named `name`, or the subcommand `sub` of a container (both lowercase).
pub fn lookup(name: &str, sub: &str) -> Option<&'static Command> {
    let c = table().get(name)?;
    if c.subcommands.is_empty() {
        return Some(c);
    }
    c.subcommands.get(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(line: &str) -> Result<Vec<usize>, KeysUnknown> {
        let args: Vec<Bytes> = line.split(' ').map(|s| Bytes::copy_from_slice(s.as_bytes())).collect();
        let lower = |i: usize| {
            args.get(i).map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).unwrap_or_default()
        };
        key_positions(&lookup(&lower(0), &lower(1)).expect("known").specs, &args)
    }

    #[test]
    fn the_table_is_redis_own() {
        assert!(table().len() > 200, "{}", table().len());
        assert!(lookup("object", "encoding").is_some());
    }

    #[test]
    fn keys_found_by_every_kind_of_spec() {
        assert_eq!(keys("GET k"), Ok(vec![1]));
        assert_eq!(keys("MSET a 1 b 2"), Ok(vec![1, 3]));
        assert_eq!(keys("EVAL s 2 a b x"), Ok(vec![3, 4]));
        assert_eq!(keys("EVAL s 0 x"), Ok(vec![]));
        assert_eq!(keys("FCALL f 1 a x"), Ok(vec![3]));
        assert_eq!(keys("XREAD COUNT 2 STREAMS s1 s2 0 0"), Ok(vec![4, 5]));
        assert_eq!(keys("XREADGROUP GROUP g c STREAMS s1 >"), Ok(vec![5]));
        assert_eq!(keys("OBJECT ENCODING k"), Ok(vec![2]));
        assert_eq!(keys("LMOVE a b LEFT RIGHT"), Ok(vec![1, 2]));
        assert_eq!(keys("ZUNIONSTORE d 2 a b WEIGHTS 1 2"), Ok(vec![1, 3, 4]));
        assert_eq!(keys("BLPOP a b 0"), Ok(vec![1, 2]));
        assert_eq!(keys("EVAL s 5 a"), Err(KeysUnknown));
        assert_eq!(keys("MIGRATE h 1 k 0 5"), Err(KeysUnknown));
        assert_eq!(keys("GEORADIUS g 0 0 100 km STORE a STORE prod"), Err(KeysUnknown));
        assert_eq!(keys("GEORADIUS g 0 0 100 km STORE a"), Ok(vec![1, 7]));
        assert_eq!(keys("EVAL s 9223372036854775807 a"), Err(KeysUnknown));
    }
}
