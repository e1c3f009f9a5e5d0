//! MySQL client/server packets: framing (3-byte length, sequence id), length-encoded
//! integers and strings, error packets, and the rows of a text result set.

use bytes::{BufMut, Bytes, BytesMut};

/// A packet's largest payload; a bigger one continues in the next packet.
pub const MAX_PACKET: usize = 0xFF_FFFF;

/// The packet at the front of `buf`: (sequence id, payload).
pub fn packet(buf: &mut BytesMut) -> Option<(u8, Bytes)> {
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
pub fn put_packets(out: &mut BytesMut, mut seq: u8, payload: &[u8]) {
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
pub fn error_packet(out: &mut BytesMut, seq: u8, code: u16, state: &[u8; 5], message: &str) {
    let mut p = Vec::with_capacity(9 + message.len());
    p.push(0xFF);
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state);
    p.extend_from_slice(message.as_bytes());
    put_packets(out, seq, &p);
}

/// An error packet's message (`None` if `p` is not one).
pub fn error_message(p: &[u8]) -> Option<String> {
    if p.first() != Some(&0xFF) || p.len() < 3 {
        return None;
    }
    let code = u16::from_le_bytes([p[1], p[2]]);
    let text = if p.get(3) == Some(&b'#') { p.get(9..).unwrap_or_default() } else { &p[3..] };
    Some(format!("{code} {}", String::from_utf8_lossy(text)))
}

/// A length-encoded integer: (value, bytes used).
pub fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
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

pub fn put_lenenc(out: &mut Vec<u8>, n: usize) {
    match n {
        0..=0xfa => out.push(n as u8),
        0xfb..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
    }
}

/// A NUL-terminated string at `at`: (bytes, position after the NUL).
pub fn nul_str(p: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = p.get(at..)?;
    let n = rest.iter().position(|b| *b == 0)?;
    Some((&rest[..n], at + n + 1))
}

/// A `COM_QUERY` packet (sequence 0).
pub fn query(out: &mut BytesMut, sql: &str) {
    let mut p = Vec::with_capacity(1 + sql.len());
    p.push(0x03);
    p.extend_from_slice(sql.as_bytes());
    put_packets(out, 0, &p);
}

/// Columns a result set graylane reads may announce at most.
const MAX_COLUMNS: u64 = 4096;

/// A text result set read packet by packet: the rows, once whole.
#[derive(Debug, Default)]
pub struct ResultSet {
    columns: Option<usize>,
    defs_seen: usize,
    /// An EOF packet follows the column definitions (no `CLIENT_DEPRECATE_EOF`).
    eof_after_defs: bool,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
}

/// What a result set packet said.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    More,
    Done,
    /// An error packet (the message), or a packet that does not belong.
    Failed(String),
}

impl ResultSet {
    pub fn new(deprecate_eof: bool) -> Self {
        Self { eof_after_defs: !deprecate_eof, ..Self::default() }
    }

    pub fn feed(&mut self, p: &[u8]) -> Step {
        if let Some(m) = error_message(p) {
            return Step::Failed(m);
        }
        let Some(columns) = self.columns else {
            return match p.first() {
                // An OK: a statement without rows.
                Some(0x00) => Step::Done,
                _ => match lenenc(p) {
                    Some((n, _)) if n <= MAX_COLUMNS => {
                        self.columns = Some(n as usize);
                        Step::More
                    }
                    Some(_) => Step::Failed("a result set with too many columns".into()),
                    None => Step::Failed("a result set without a column count".into()),
                },
            };
        };
        if self.defs_seen < columns {
            self.defs_seen += 1;
            return Step::More;
        }
        let terminator =
            p.first() == Some(&0xFE) && p.len() < MAX_PACKET && (p.len() < 9 || !self.eof_after_defs);
        if self.eof_after_defs && terminator {
            self.eof_after_defs = false;
            return Step::More;
        }
        if terminator {
            return Step::Done;
        }
        let mut row = Vec::with_capacity(columns);
        let mut at = 0;
        for _ in 0..columns {
            if p.get(at) == Some(&0xFB) {
                row.push(None);
                at += 1;
                continue;
            }
            let Some((n, used)) = lenenc(&p[at.min(p.len())..]) else {
                return Step::Failed("a row shorter than its columns".into());
            };
            let start = at + used;
            let Some(v) = usize::try_from(n).ok().and_then(|n| p.get(start..start.checked_add(n)?)) else {
                return Step::Failed("a row shorter than its columns".into());
            };
            row.push(Some(v.to_vec()));
            at = start + v.len();
        }
        self.rows.push(row);
        Step::More
    }
}
