//! Lua scripts a lane may run: every `redis.call`/`redis.pcall` names its key as
//! `KEYS[i]` (the keys graylane sees and prefixes), none builds key names itself. Scripts
//! a lane has shown (by `EVAL` or `SCRIPT LOAD`) and that pass are remembered by SHA-1, so
//! the lane's `EVALSHA` of them runs; any other `EVALSHA` gets `NOSCRIPT` (clients then
//! load the script, which is checked).

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

use sha1::{Digest, Sha1};

/// Scripts remembered at most (the set starts afresh beyond).
const MAX_SCRIPTS: usize = 4096;

static APPROVED: OnceLock<Mutex<HashSet<[u8; 20]>>> = OnceLock::new();

fn approved() -> &'static Mutex<HashSet<[u8; 20]>> {
    APPROVED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// The script's SHA-1, as Redis names it (lowercase hex).
#[cfg(test)]
pub fn sha1_hex(script: &[u8]) -> String {
    Sha1::digest(script).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `script`; remembers it when it passes.
pub fn admit(script: &[u8]) -> bool {
    if !keys_only_from_keys(script) {
        return false;
    }
    let sha: [u8; 20] = Sha1::digest(script).into();
    if let Ok(mut set) = approved().lock() {
        if set.len() >= MAX_SCRIPTS {
            set.clear();
        }
        set.insert(sha);
    }
    true
}

/// A script shown before and admitted, by its hex SHA-1.
pub fn admitted(sha_hex: &[u8]) -> bool {
    let Some(sha) = unhex(sha_hex) else { return false };
    approved().lock().is_ok_and(|s| s.contains(&sha))
}

fn unhex(h: &[u8]) -> Option<[u8; 20]> {
    if h.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, pair) in h.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Every call into Redis takes its key from `KEYS[…]` (or takes no argument after the
/// command name); a call through anything but `redis.call(`/`redis.pcall(` (an alias, an
/// index) fails the check.
pub fn keys_only_from_keys(script: &[u8]) -> bool {
    let text = String::from_utf8_lossy(script);
    let rest: &str = &text;
    for api in ["redis", "server"] {
        let mut from = 0;
        while let Some(i) = rest[from..].find(api) {
            let at = from + i + api.len();
            from = at;
            let tail = &rest[at..];
            let Some(call) = tail.strip_prefix(".call").or_else(|| tail.strip_prefix(".pcall")) else {
                // `redis[...]`, `local r = redis`: a way around the check.
                if tail.starts_with('[') || tail.trim_start().starts_with(';') || tail.trim_start().is_empty()
                {
                    return false;
                }
                continue;
            };
            let Some(args) = call.trim_start().strip_prefix('(') else { return false };
            let Some(after_first) = skip_argument(args) else { return false };
            let after_first = after_first.trim_start();
            if after_first.starts_with(')') {
                continue;
            }
            let Some(second) = after_first.strip_prefix(',') else { return false };
            if !second.trim_start().starts_with("KEYS[") {
                return false;
            }
        }
    }
    true
}

/// Skips one Lua argument (strings, nested brackets); returns what follows it.
fn skip_argument(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth > 0 => depth -= 1,
            b',' | b')' if depth == 0 => return Some(&s[i..]),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_that_name_keys_only_through_keys_pass() {
        assert!(keys_only_from_keys(b"return redis.call('GET', KEYS[1])"));
        assert!(keys_only_from_keys(
            b"redis.call('SET', KEYS[1], ARGV[1]); return redis.pcall(\"INCR\", KEYS[2])"
        ));
        assert!(keys_only_from_keys(b"return redis.call('PING')"));
        assert!(!keys_only_from_keys(b"return redis.call('GET', 'prod:key')"));
        assert!(!keys_only_from_keys(b"return redis.call('GET', ARGV[1])"));
        assert!(!keys_only_from_keys(b"local c = redis.call; return c('GET', 'x')"));
        assert!(!keys_only_from_keys(b"return redis['call']('GET', 'x')"));
        assert!(!keys_only_from_keys(b"local k = KEYS[1] .. 'x'; return redis.call('GET', k)"));
    }

    #[test]
    fn shown_scripts_are_known_by_sha() {
        let s = b"return redis.call('GET', KEYS[1]) -- test shown_scripts";
        assert!(!admitted(sha1_hex(s).as_bytes()));
        assert!(admit(s));
        assert!(admitted(sha1_hex(s).as_bytes()));
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
