//! RESP2 and RESP3 frames: their length (to pass a reply through untouched), a parsed value
//! (to rewrite one), and encoding. Bounded: a frame over the limit, nesting deeper than
//! [`MAX_DEPTH`] or a malformed header is an error (the connection closes), never a panic.

use bytes::{BufMut, Bytes, BytesMut};

/// Aggregates nested deeper than this are refused.
pub const MAX_DEPTH: usize = 64;
/// Elements in one aggregate at most (Redis' own request limit is 2^31; replies this large
/// would not fit the frame bound anyway).
pub const MAX_ELEMENTS: i64 = 1 << 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RespError {
    #[error("malformed RESP: {0}")]
    Malformed(&'static str),
    #[error("RESP frame over the {0}-byte bound")]
    TooLarge(usize),
}

/// A frame is complete at `Complete(len)`, or needs at least `Incomplete(n)` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    Complete(usize),
    Incomplete(usize),
}

/// One RESP value. Line types keep their text, blobs their payload, aggregates their
/// elements (a map's keys and values alternate).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+ - : , # ( _` and the line after the type byte.
    Line(u8, Bytes),
    /// `$ ! =` with the payload; `None` is RESP2's null bulk (`$-1`).
    Blob(u8, Option<Bytes>),
    /// `* ~ > % |` with the elements; `None` is RESP2's null array (`*-1`).
    Agg(u8, Option<Vec<Value>>),
}

impl Value {
    /// The bytes of a string-like value (bulk, simple, verbatim without its format).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(b'=', Some(b)) => Some(b.get(4..).unwrap_or(b)),
            Value::Blob(_, Some(b)) => Some(b),
            Value::Line(b'+', b) => Some(b),
            _ => None,
        }
    }

    pub fn elements_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Agg(_, Some(v)) => Some(v),
            _ => None,
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Value::Line(t, b) => {
                out.put_u8(*t);
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Value::Blob(t, None) => {
                out.put_u8(*t);
                out.put_slice(b"-1\r\n");
            }
            Value::Blob(t, Some(b)) => {
                out.put_u8(*t);
                out.put_slice(itoa(b.len()).as_bytes());
                out.put_slice(b"\r\n");
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Value::Agg(t, None) => {
                out.put_u8(*t);
                out.put_slice(b"-1\r\n");
            }
            Value::Agg(t, Some(v)) => {
                out.put_u8(*t);
                let n = if matches!(t, b'%' | b'|') { v.len() / 2 } else { v.len() };
                out.put_slice(itoa(n).as_bytes());
                out.put_slice(b"\r\n");
                for e in v {
                    e.encode(out);
                }
            }
        }
    }
}

fn itoa(n: usize) -> String {
    n.to_string()
}

/// A command as an array of bulk strings.
pub fn encode_command(args: &[Bytes], out: &mut BytesMut) {
    out.put_u8(b'*');
    out.put_slice(itoa(args.len()).as_bytes());
    out.put_slice(b"\r\n");
    for a in args {
        out.put_u8(b'$');
        out.put_slice(itoa(a.len()).as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

/// The line starting at `at` (without CRLF) and where the next one starts.
fn line(buf: &[u8], at: usize, max: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    let rest = buf.get(at..).unwrap_or_default();
    match memchr(b'\n', rest) {
        Some(i) if i > 0 && rest[i - 1] == b'\r' => Ok(Some((&rest[..i - 1], at + i + 1))),
        Some(_) => Err(RespError::Malformed("line not ended by CRLF")),
        None if rest.len() > 64 * 1024 || at + rest.len() > max => Err(RespError::Malformed("line too long")),
        None => Ok(None),
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

fn int(text: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(text).ok().and_then(|s| s.parse().ok()).ok_or(RespError::Malformed("bad length"))
}

/// Where the frame starting at `buf[0]` ends, within `max` bytes.
pub fn scan(buf: &[u8], max: usize) -> Result<Scan, RespError> {
    let mut at = 0usize;
    // Elements still to read at each open aggregate level.
    let mut pending: Vec<i64> = Vec::new();
    loop {
        if at > max {
            return Err(RespError::TooLarge(max));
        }
        let Some(&t) = buf.get(at) else { return Ok(Scan::Incomplete(at + 1)) };
        let Some((text, next)) = line(buf, at + 1, max)? else { return Ok(Scan::Incomplete(buf.len() + 1)) };
        at = next;
        match t {
            b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {}
            b'$' | b'!' | b'=' => {
                let n = int(text)?;
                if n >= 0 {
                    let end = at.checked_add(n as usize + 2).ok_or(RespError::TooLarge(max))?;
                    if end > max {
                        return Err(RespError::TooLarge(max));
                    }
                    if buf.len() < end {
                        return Ok(Scan::Incomplete(end));
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err(RespError::Malformed("blob not ended by CRLF"));
                    }
                    at = end;
                } else if n != -1 {
                    return Err(RespError::Malformed("negative length"));
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = int(text)?;
                if n > MAX_ELEMENTS {
                    return Err(RespError::TooLarge(max));
                }
                if n < -1 {
                    return Err(RespError::Malformed("negative length"));
                }
                let n = if matches!(t, b'%' | b'|') { n * 2 } else { n };
                if pending.len() >= MAX_DEPTH {
                    return Err(RespError::Malformed("nested too deep"));
                }
                if t == b'|' {
                    // An attribute precedes the value it describes: one more element.
                    pending.push(n + 1);
                    continue;
                }
                if n > 0 {
                    pending.push(n);
                    continue;
                }
            }
            _ => return Err(RespError::Malformed("unknown type byte")),
        }
        // One element done: close the aggregates it completes.
        loop {
            match pending.last_mut() {
                None => return Ok(Scan::Complete(at)),
                Some(n) => {
                    *n -= 1;
                    if *n > 0 {
                        break;
                    }
                    pending.pop();
                }
            }
        }
    }
}

/// Parses one complete frame (as [`scan`] found it).
pub fn parse(frame: &Bytes) -> Result<Value, RespError> {
    let mut at = 0;
    let v = value(frame, &mut at, 0)?;
    Ok(v)
}

fn value(buf: &Bytes, at: &mut usize, depth: usize) -> Result<Value, RespError> {
    if depth > MAX_DEPTH {
        return Err(RespError::Malformed("nested too deep"));
    }
    let t = *buf.get(*at).ok_or(RespError::Malformed("truncated"))?;
    let (text, next) = line(buf, *at + 1, usize::MAX)?.ok_or(RespError::Malformed("truncated"))?;
    let text_range = (*at + 1, *at + 1 + text.len());
    *at = next;
    match t {
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
            Ok(Value::Line(t, buf.slice(text_range.0..text_range.1)))
        }
        b'$' | b'!' | b'=' => {
            let n = int(&buf[text_range.0..text_range.1])?;
            if n < 0 {
                return Ok(Value::Blob(t, None));
            }
            let end = *at + n as usize;
            if buf.len() < end + 2 {
                return Err(RespError::Malformed("truncated"));
            }
            let b = buf.slice(*at..end);
            *at = end + 2;
            Ok(Value::Blob(t, Some(b)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(&buf[text_range.0..text_range.1])?;
            if n < 0 {
                return Ok(Value::Agg(t, None));
            }
            let n = if matches!(t, b'%' | b'|') { n * 2 } else { n };
            let mut v = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                v.push(value(buf, at, depth + 1)?);
            }
            Ok(Value::Agg(t, Some(v)))
        }
        _ => Err(RespError::Malformed("unknown type byte")),
    }
}

/// A client's command: `*N` of bulk strings, or an inline command (words on one line).
/// `Ok(None)`: incomplete.
pub fn command(buf: &mut BytesMut, max: usize) -> Result<Option<Vec<Bytes>>, RespError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        // Inline: split on spaces (quoted arguments are not supported here).
        let Some(i) = memchr(b'\n', buf) else {
            if buf.len() > 64 * 1024 {
                return Err(RespError::Malformed("inline command too long"));
            }
            return Ok(None);
        };
        let line = buf.split_to(i + 1).freeze();
        let text = line.slice(..line.len() - 1);
        let text = if text.ends_with(b"\r") { text.slice(..text.len() - 1) } else { text };
        if text.contains(&b'"') || text.contains(&b'\'') {
            return Err(RespError::Malformed("quoted inline commands are not supported; send RESP arrays"));
        }
        let mut args = Vec::new();
        let mut start = None;
        for (j, c) in text.iter().enumerate() {
            match (c.is_ascii_whitespace(), start) {
                (true, Some(s)) => {
                    args.push(text.slice(s..j));
                    start = None;
                }
                (false, None) => start = Some(j),
                _ => {}
            }
        }
        if let Some(s) = start {
            args.push(text.slice(s..));
        }
        return Ok(Some(args));
    }
    let n = match scan(buf, max)? {
        Scan::Incomplete(_) => return Ok(None),
        Scan::Complete(n) => n,
    };
    let frame = buf.split_to(n).freeze();
    match parse(&frame)? {
        Value::Agg(b'*', Some(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::Blob(b'$', Some(b)) => Ok(b),
                _ => Err(RespError::Malformed("a command's arguments are bulk strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(RespError::Malformed("a command is an array of bulk strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(text: &[u8]) -> Value {
        assert_eq!(
            scan(text, 1 << 20),
            Ok(Scan::Complete(text.len())),
            "{:?}",
            String::from_utf8_lossy(text)
        );
        let v = parse(&Bytes::copy_from_slice(text)).expect("parse");
        let mut out = BytesMut::new();
        v.encode(&mut out);
        assert_eq!(&out[..], text);
        v
    }

    #[test]
    fn frames_round_trip_in_both_protocol_versions() {
        round(b"+OK\r\n");
        round(b"$-1\r\n");
        round(b"*2\r\n$3\r\nfoo\r\n:1\r\n");
        round(b"%1\r\n$1\r\na\r\n*1\r\n_\r\n");
        round(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        round(b"=8\r\ntxt:abcd\r\n");
        round(b"*0\r\n");
    }

    #[test]
    fn partial_and_bad_frames() {
        assert_eq!(scan(b"$5\r\nab", 100), Ok(Scan::Incomplete(11)));
        assert_eq!(scan(b"*2\r\n:1\r\n", 100), Ok(Scan::Incomplete(9)));
        assert!(scan(b"?x\r\n", 100).is_err());
        assert!(scan(b"$5\r\nabcdefg\r\n", 100).is_err());
        assert_eq!(scan(b"$500\r\n", 100), Err(RespError::TooLarge(100)));
        let deep = "*1\r\n".repeat(100) + ":1\r\n";
        assert!(scan(deep.as_bytes(), 1 << 20).is_err());
    }

    #[test]
    fn commands_in_resp_and_inline() {
        let mut b = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nPI"[..]);
        assert_eq!(command(&mut b, 1024).expect("ok"), Some(vec![Bytes::from("GET"), Bytes::from("k")]));
        assert_eq!(command(&mut b, 1024).expect("ok"), Some(vec![Bytes::from("PING")]));
        assert_eq!(command(&mut b, 1024).expect("ok"), None);
        let mut b = BytesMut::from(&b"*1\r\n:1\r\n"[..]);
        assert!(command(&mut b, 1024).is_err());
    }
}
