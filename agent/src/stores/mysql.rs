//! MySQL / MariaDB client protocol for a lane: the default schema of the handshake and of
//! `COM_INIT_DB` becomes the lane's, and the SQL of `COM_QUERY` and `COM_STMT_PREPARE` is
//! rewritten by a parser ([`sql`]); what cannot be kept in the lane is answered with a
//! MySQL error packet. Authentication passes untouched (any plugin: native password,
//! caching_sha2, ed25519); TLS asked for by a lane client is refused with an error (the
//! SQL could not be read; graylane never downgrades silently). Compression and query
//! attributes are not offered to lane clients (both would hide the SQL).
//!
//! Replies pass through unchanged: values that name schemas (`SELECT DATABASE()`,
//! `SHOW DATABASES`, result-set metadata) show the lane's schema names.

pub mod sql;

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use self::sql::{Refusal, Schemas};
use super::{Codec, DataError, Tally};

const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
const CLIENT_COMPRESS: u32 = 1 << 5;
const CLIENT_PROTOCOL_41: u32 = 1 << 9;
const CLIENT_SSL: u32 = 1 << 11;
const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 1 << 21;
const CLIENT_ZSTD_COMPRESSION: u32 = 1 << 26;
const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;
/// Character sets (by collation id: big5, sjis, gbk, cp932, gb18030 and their `_bin`) in
/// which a multi-byte character can end in `\`: the parser would not read strings as
/// MySQL does.
const UNSAFE_CHARSET_IDS: &[u8] = &[1, 13, 28, 84, 87, 88, 95, 96, 248, 249, 250];
/// Packets a client may send ahead of the handshake's end (held, then read as commands).
const MAX_EARLY: usize = 64;

/// A packet's largest payload; a bigger one continues in the next packet.
const MAX_PACKET: usize = 0xFF_FFFF;
/// A lane's statement at most (its packets reassembled).
const MAX_STATEMENT: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the server's greeting.
    Greeting,
    /// Waiting for the client's handshake response.
    Response,
    /// Authentication exchange, until the server's OK.
    Auth,
    /// Commands.
    Command,
}

pub struct Mysql {
    lane: String,
    schemas: Schemas,
    reject: bool,
    phase: Phase,
    /// A command's payload split over packets (reassembled before it is read).
    partial: Option<(u8, Vec<u8>)>,
    /// Packets the client sent before the server's greeting or before authentication
    /// ended: read once the phase they belong to has come.
    early: Vec<(u8, Bytes)>,
    tally: Tally,
}

fn malformed(detail: &str) -> DataError {
    DataError::Malformed { protocol: "mysql", detail: detail.to_owned() }
}

/// The packet at the front of `buf`: (sequence id, payload).
fn packet(buf: &mut BytesMut) -> Option<(u8, Bytes)> {
    if buf.len() < 4 {
        return None;
    }
    let len = usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16;
    if buf.len() < 4 + len {
        return None;
    }
    let seq = buf[3];
    let mut p = buf.split_to(4 + len);
    let payload = p.split_off(4).freeze();
    Some((seq, payload))
}

/// Writes `payload` as packets from sequence `seq` (split at 16 MiB).
fn put_packets(out: &mut BytesMut, mut seq: u8, payload: &[u8]) {
    let mut chunks = payload.chunks(MAX_PACKET).peekable();
    if payload.is_empty() {
        out.put_slice(&[0, 0, 0, seq]);
        return;
    }
    while let Some(c) = chunks.next() {
        let n = c.len();
        out.put_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq]);
        out.put_slice(c);
        seq = seq.wrapping_add(1);
        if chunks.peek().is_none() && n == MAX_PACKET {
            out.put_slice(&[0, 0, 0, seq]);
        }
    }
}

/// A MySQL error packet.
fn error_packet(out: &mut BytesMut, seq: u8, code: u16, state: &[u8; 5], message: &str) {
    let mut p = Vec::with_capacity(9 + message.len());
    p.push(0xFF);
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state);
    p.extend_from_slice(message.as_bytes());
    put_packets(out, seq, &p);
}

/// ER_SPECIFIC_ACCESS_DENIED_ERROR: refused by graylane.
const ER_ACCESS: (u16, &[u8; 5]) = (1227, b"42000");
/// ER_PARSE_ERROR.
const ER_PARSE: (u16, &[u8; 5]) = (1064, b"42000");

impl Mysql {
    pub fn new(lane: &str, suffix: Option<String>, map: BTreeMap<String, String>, reject: bool) -> Self {
        Self {
            lane: lane.to_owned(),
            schemas: Schemas { suffix, map },
            reject,
            phase: Phase::Greeting,
            partial: None,
            early: Vec::new(),
            tally: Tally::default(),
        }
    }

    fn refuse(&mut self, down: &mut BytesMut, seq: u8, what: &str, why: &str, err: (u16, &[u8; 5])) {
        self.tally.rejected += 1;
        let why_static: &'static str = match err.0 {
            1064 => "the statement could not be parsed",
            _ => "it cannot be kept in the lane",
        };
        self.tally.rejections.push((what.to_owned(), why_static));
        let msg = format!("graylane: lane '{}' may not run {what} here: {why}", self.lane);
        error_packet(down, seq.wrapping_add(1), err.0, err.1, &msg);
    }

    /// The server's greeting: compression and query attributes are not offered.
    fn greeting(&self, payload: &[u8]) -> Vec<u8> {
        let mut p = payload.to_vec();
        if p.first() != Some(&10) {
            return p;
        }
        let Some(nul) = p.iter().skip(1).position(|b| *b == 0) else { return p };
        // version, NUL, connection id (4), auth data (8), filler (1): then capabilities.
        let low = 1 + nul + 1 + 4 + 8 + 1;
        if p.len() >= low + 2 {
            let caps = u16::from_le_bytes([p[low], p[low + 1]]) & !(CLIENT_COMPRESS as u16);
            p[low..low + 2].copy_from_slice(&caps.to_le_bytes());
        }
        // charset (1), status (2): then the upper capabilities.
        let high = low + 2 + 1 + 2;
        if p.len() >= high + 2 {
            let caps = u16::from_le_bytes([p[high], p[high + 1]]) & !((CLIENT_QUERY_ATTRIBUTES >> 16) as u16);
            p[high..high + 2].copy_from_slice(&caps.to_le_bytes());
        }
        p
    }

    /// The client's handshake response, with its default schema mapped. `Err` with the
    /// refusal already written: the connection ends.
    fn response(&mut self, seq: u8, payload: &[u8], down: &mut BytesMut) -> Result<Vec<u8>, DataError> {
        if payload.len() < 32 {
            return Err(malformed("short handshake response"));
        }
        let caps = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
        if caps & CLIENT_SSL != 0 {
            self.refuse(
                down,
                seq,
                "TLS",
                "its SQL could not be read to keep it in the lane; connect without TLS (ssl-mode=DISABLED) through graylane",
                ER_ACCESS,
            );
            return Err(malformed("TLS refused on a lane connection"));
        }
        if caps & CLIENT_PROTOCOL_41 == 0 {
            return Err(malformed("pre-4.1 handshake"));
        }
        // The server agrees to what the client asks for out of its own capabilities, not
        // the greeting graylane passed on: refuse what would hide the SQL.
        if caps & (CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION | CLIENT_QUERY_ATTRIBUTES) != 0 {
            let why = "compressed packets and query attributes would hide the SQL";
            self.refuse(down, seq, "compression", why, ER_ACCESS);
            return Err(malformed("compression or query attributes asked for on a lane connection"));
        }
        if UNSAFE_CHARSET_IDS.contains(&payload[8]) {
            let why = "graylane cannot read SQL in that character set";
            self.refuse(down, seq, "the character set", why, ER_ACCESS);
            return Err(malformed("unreadable character set on a lane connection"));
        }
        let mut at = 32;
        let user_end =
            payload[at..].iter().position(|b| *b == 0).ok_or_else(|| malformed("user not ended"))?;
        at += user_end + 1;
        if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
            let (n, used) = lenenc(&payload[at..]).ok_or_else(|| malformed("auth length"))?;
            at = usize::try_from(n)
                .ok()
                .and_then(|n| at.checked_add(used)?.checked_add(n))
                .ok_or_else(|| malformed("auth length"))?;
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            let n = *payload.get(at).ok_or_else(|| malformed("auth length"))?;
            at += 1 + usize::from(n);
        } else {
            let n = payload[at..].iter().position(|b| *b == 0).ok_or_else(|| malformed("auth not ended"))?;
            at += n + 1;
        }
        if at > payload.len() {
            return Err(malformed("handshake response truncated"));
        }
        if caps & CLIENT_CONNECT_WITH_DB == 0 {
            return Ok(payload.to_vec());
        }
        let db_end =
            payload[at..].iter().position(|b| *b == 0).ok_or_else(|| malformed("schema not ended"))?;
        let db = String::from_utf8_lossy(&payload[at..at + db_end]).into_owned();
        if db.is_empty() {
            return Ok(payload.to_vec());
        }
        let target = match self.schemas.target(&db) {
            Ok(Some(t)) => t,
            Ok(None) | Err(_) => {
                self.refuse(
                    down,
                    seq,
                    "the default schema",
                    "the lane has no schema mapped for it",
                    ER_ACCESS,
                );
                return Err(malformed("unmapped default schema"));
            }
        };
        self.tally.rewritten += 1;
        let mut out = payload[..at].to_vec();
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(&payload[at + db_end..]);
        Ok(out)
    }

    /// One command (reassembled): forwarded as it is, rewritten, or refused.
    fn command(&mut self, seq: u8, payload: &[u8], up: &mut BytesMut, down: &mut BytesMut) {
        let Some(&cmd) = payload.first() else {
            put_packets(up, seq, payload);
            return;
        };
        let outcome: Result<Option<Vec<u8>>, (String, Refusal)> = match cmd {
            // COM_QUERY, COM_STMT_PREPARE: the SQL.
            0x03 | 0x16 => {
                let name = if cmd == 0x03 { "COM_QUERY" } else { "COM_STMT_PREPARE" };
                match std::str::from_utf8(&payload[1..]) {
                    Err(_) => Err((name.to_owned(), Refusal::Parse("the statement is not UTF-8".into()))),
                    Ok(text) => match sql::rewrite(text, &self.schemas) {
                        Ok(None) => Ok(None),
                        Ok(Some(new)) => {
                            let mut p = vec![cmd];
                            p.extend_from_slice(new.as_bytes());
                            Ok(Some(p))
                        }
                        Err(r) => Err((statement_kind(text), r)),
                    },
                }
            }
            // COM_INIT_DB: the schema.
            0x02 => {
                let db = String::from_utf8_lossy(&payload[1..]).into_owned();
                match self.schemas.target(&db) {
                    Ok(Some(t)) => {
                        let mut p = vec![cmd];
                        p.extend_from_slice(t.as_bytes());
                        Ok(Some(p))
                    }
                    Ok(None) => Err((
                        "COM_INIT_DB".to_owned(),
                        Refusal::Unsupported(None, "system schemas are read-only for lanes"),
                    )),
                    Err(r) => Err(("COM_INIT_DB".to_owned(), r)),
                }
            }
            // Quit, statistics, ping, field list (of the mapped schema), prepared
            // statements by id, set option, reset connection, MariaDB bulk execute.
            0x01 | 0x04 | 0x09 | 0x0e | 0x17 | 0x18 | 0x19 | 0x1a | 0x1b | 0x1c | 0x1f | 0xfa => Ok(None),
            0x11 => Err((
                "COM_CHANGE_USER".into(),
                Refusal::Unsupported(None, "its schema and account change mid-connection"),
            )),
            other => Err((
                format!("command 0x{other:02x}"),
                Refusal::Unsupported(None, "it reaches beyond the lane's data"),
            )),
        };
        match outcome {
            Ok(None) => {
                self.tally.passed += 1;
                put_packets(up, seq, payload);
            }
            Ok(Some(p)) => {
                self.tally.rewritten += 1;
                put_packets(up, seq, &p);
            }
            Err((what, Refusal::Parse(detail))) => {
                // Unreadable SQL cannot be kept in the lane, whatever onUnsupported says.
                let why = format!("graylane could not parse it ({detail})");
                self.refuse(down, seq, &what, &why, ER_PARSE);
            }
            Err((what, Refusal::Unsupported(kind, why))) => {
                let what = kind.unwrap_or(what);
                if self.reject {
                    self.refuse(down, seq, &what, why, ER_ACCESS);
                } else {
                    self.tally.unsupported_passed += 1;
                    put_packets(up, seq, payload);
                }
            }
        }
    }
}

/// The statement's first word (what the access log names), never its values.
fn statement_kind(sql: &str) -> String {
    sql.split_whitespace()
        .next()
        .unwrap_or("statement")
        .chars()
        .take(24)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// A length-encoded integer: (value, bytes used).
fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    match *b.first()? {
        n @ 0..=0xfa => Some((u64::from(n), 1)),
        0xfc => Some((u64::from(u16::from_le_bytes([*b.get(1)?, *b.get(2)?])), 3)),
        0xfd => Some((u64::from(*b.get(1)?) | u64::from(*b.get(2)?) << 8 | u64::from(*b.get(3)?) << 16, 4)),
        0xfe => {
            let mut v = [0u8; 8];
            v.copy_from_slice(b.get(1..9)?);
            Some((u64::from_le_bytes(v), 9))
        }
        _ => None,
    }
}

impl Mysql {
    /// One client packet, in the phase it belongs to: a command sent before the server's
    /// greeting or before authentication ended (sequence 0 while authenticating) waits.
    fn client_packet(
        &mut self,
        seq: u8,
        payload: Bytes,
        up: &mut BytesMut,
        down: &mut BytesMut,
    ) -> Result<(), DataError> {
        match self.phase {
            Phase::Greeting => self.hold(seq, payload)?,
            Phase::Auth if seq == 0 => self.hold(seq, payload)?,
            Phase::Auth => put_packets(up, seq, &payload),
            Phase::Response => {
                let p = self.response(seq, &payload, down)?;
                put_packets(up, seq, &p);
                self.phase = Phase::Auth;
            }
            Phase::Command => {
                let (first_seq, mut whole) = self.partial.take().unwrap_or((seq, Vec::new()));
                whole.extend_from_slice(&payload);
                if whole.len() > MAX_STATEMENT {
                    return Err(malformed("statement over the 64 MiB bound"));
                }
                if payload.len() == MAX_PACKET {
                    self.partial = Some((first_seq, whole));
                    return Ok(());
                }
                self.command(first_seq, &whole, up, down);
            }
        }
        Ok(())
    }

    fn hold(&mut self, seq: u8, payload: Bytes) -> Result<(), DataError> {
        if self.early.len() >= MAX_EARLY {
            return Err(malformed("too many packets ahead of the handshake"));
        }
        self.early.push((seq, payload));
        Ok(())
    }

    /// The held packets, read in the phase that has now come.
    fn replay_early(&mut self, up: &mut BytesMut, down: &mut BytesMut) -> Result<(), DataError> {
        for (seq, payload) in std::mem::take(&mut self.early) {
            self.client_packet(seq, payload, up, down)?;
        }
        Ok(())
    }
}

impl Codec for Mysql {
    fn client(
        &mut self,
        input: &mut BytesMut,
        up: &mut BytesMut,
        down: &mut BytesMut,
    ) -> Result<(), DataError> {
        while let Some((seq, payload)) = packet(input) {
            self.client_packet(seq, payload, up, down)?;
        }
        if input.len() > MAX_PACKET + 4 {
            return Err(malformed("packet over the bound"));
        }
        Ok(())
    }

    fn server(
        &mut self,
        input: &mut BytesMut,
        down: &mut BytesMut,
        up: &mut BytesMut,
    ) -> Result<(), DataError> {
        loop {
            match self.phase {
                Phase::Command | Phase::Response => {
                    down.extend_from_slice(&input.split());
                    return Ok(());
                }
                Phase::Greeting => {
                    let Some((seq, payload)) = packet(input) else { return Ok(()) };
                    let p = self.greeting(&payload);
                    put_packets(down, seq, &p);
                    if payload.first() == Some(&10) {
                        self.phase = Phase::Response;
                        self.replay_early(up, down)?;
                    }
                }
                Phase::Auth => {
                    let Some((seq, payload)) = packet(input) else { return Ok(()) };
                    put_packets(down, seq, &payload);
                    match payload.first() {
                        Some(&0x00) => {
                            self.phase = Phase::Command;
                            self.replay_early(up, down)?;
                        }
                        // Authentication failed: what the client sent ahead goes nowhere.
                        Some(&0xFF) => self.early.clear(),
                        _ => {}
                    }
                }
            }
        }
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }
}

#[cfg(test)]
mod tests;
