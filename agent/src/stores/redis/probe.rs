//! What a Redis ACL user can reach, asked without running anything: logged in as the
//! account, inside `MULTI` each probe command is checked against the ACL when it is
//! queued (`QUEUED` or `-NOPERM`), and `DISCARD` drops them all. Store-enforced: the
//! account may use its own keys (under the lane's prefix) and nothing else — no key or
//! channel outside the prefix, no keyspace-wide write (`FLUSHALL`, `FLUSHDB`, `SWAPDB`,
//! `FUNCTION FLUSH`), no server settings or accounts.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::resp::{self, Scan};
use crate::{
    inventory::accounts::Credentials,
    stores::{
        DataError,
        probe::{Probe, Verdict},
    },
};

/// A key no lane prefix starts with (chosen per probe if one does).
const OUTSIDE: &[u8] = b"graylane-probe:outside";

pub struct RedisProbe {
    account: Arc<Credentials>,
    prefix: Vec<u8>,
    /// What each queued probe must get: (what it is, whether the account may run it).
    expect: Vec<(String, bool)>,
    /// Replies read so far.
    replies: usize,
    findings: Vec<String>,
}

impl RedisProbe {
    pub fn new(account: Arc<Credentials>, prefix: &[u8]) -> Self {
        Self { account, prefix: prefix.to_vec(), expect: Vec::new(), replies: 0, findings: Vec::new() }
    }

    fn outside(&self) -> Vec<u8> {
        if OUTSIDE.starts_with(&self.prefix) { b"~graylane-probe:outside".to_vec() } else { OUTSIDE.to_vec() }
    }
}

fn cmd(out: &mut BytesMut, args: &[&[u8]]) {
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    resp::encode_command(&args, out);
}

impl Probe for RedisProbe {
    fn start(&mut self, out: &mut BytesMut) {
        let own: Vec<u8> = [self.prefix.as_slice(), b"graylane-probe"].concat();
        let outside = self.outside();
        cmd(out, &[b"AUTH", self.account.username.as_bytes(), &self.account.password]);
        cmd(out, &[b"MULTI"]);
        let probes: Vec<(&str, Vec<&[u8]>, bool)> = vec![
            ("the lane's own keys", vec![b"SET", &own, b"1"], true),
            ("keys outside the lane's prefix (read)", vec![b"GET", &outside], false),
            ("keys outside the lane's prefix (write)", vec![b"SET", &outside, b"1"], false),
            ("channels outside the lane's prefix", vec![b"PUBLISH", &outside, b"1"], false),
            ("FLUSHALL", vec![b"FLUSHALL"], false),
            ("FLUSHDB", vec![b"FLUSHDB"], false),
            ("SWAPDB", vec![b"SWAPDB", b"0", b"1"], false),
            ("FUNCTION FLUSH", vec![b"FUNCTION", b"FLUSH"], false),
            ("CONFIG SET", vec![b"CONFIG", b"SET", b"maxmemory-samples", b"5"], false),
            ("ACL SETUSER", vec![b"ACL", b"SETUSER", b"graylane-probe"], false),
        ];
        for (what, args, allowed) in probes {
            cmd(out, &args);
            self.expect.push((what.to_owned(), allowed));
        }
        cmd(out, &[b"DISCARD"]);
    }

    fn read(&mut self, input: &mut BytesMut, _out: &mut BytesMut) -> Result<Option<Verdict>, DataError> {
        loop {
            let n = match resp::scan(input, 1 << 20)
                .map_err(|e| DataError::Malformed { protocol: "redis", detail: e.to_string() })?
            {
                Scan::Complete(n) => n,
                Scan::Incomplete(_) => return Ok(None),
            };
            let frame = input.split_to(n);
            let text = String::from_utf8_lossy(&frame[..frame.len().min(200)]).trim().to_owned();
            let i = self.replies;
            self.replies += 1;
            match i {
                // AUTH
                0 if !frame.starts_with(b"+OK") => {
                    return Ok(Some(Verdict::RewriteOnly(format!(
                        "the store refused the account's login: {text}"
                    ))));
                }
                // MULTI
                1 if !frame.starts_with(b"+OK") => {
                    return Ok(Some(Verdict::RewriteOnly(format!(
                        "the account may not run MULTI, so its reach cannot be read: {text}"
                    ))));
                }
                0 | 1 => {}
                _ if i - 2 < self.expect.len() => {
                    let (what, allowed) = &self.expect[i - 2];
                    let queued = frame.starts_with(b"+QUEUED");
                    match (allowed, queued) {
                        (true, false) => {
                            self.findings.push(format!("the account may not use {what} ({text})"))
                        }
                        (false, true) => self.findings.push(format!("the account may run {what}")),
                        _ => {}
                    }
                }
                // DISCARD: the end.
                _ => {
                    return Ok(Some(if self.findings.is_empty() {
                        Verdict::StoreEnforced
                    } else {
                        Verdict::RewriteOnly(self.findings.join("; "))
                    }));
                }
            }
        }
    }
}
