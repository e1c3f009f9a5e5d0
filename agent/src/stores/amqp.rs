//! AMQP 0-9-1 (RabbitMQ) for a lane: the lane's connection opens the lane's own virtual
//! host (`Connection.Open` rewritten) and, with a store account, logs in as that account
//! (`Connection.StartOk` rewritten to PLAIN with the account's user and password; the
//! client's own credentials go nowhere). A virtual host is the broker's own isolation
//! unit — its exchanges, queues and permissions are its own — so nothing after the
//! handshake needs reading: every later frame passes byte for byte.

pub mod probe;

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::{Codec, DataError, Tally};
use crate::inventory::accounts::Credentials;

const FRAME_METHOD: u8 = 1;
const FRAME_END: u8 = 0xCE;
/// A handshake frame at most (RabbitMQ's `frame_max` floor is 4 KiB; client properties are
/// small).
const MAX_HANDSHAKE_FRAME: usize = 128 * 1024;
const CONNECTION: u16 = 10;
const START_OK: u16 = 11;
const OPEN: u16 = 40;
const CLOSE: u16 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The client's protocol header (`AMQP\0\0\x09\x01`).
    Header,
    /// Frames until the client's `Connection.Open`.
    Handshake,
    /// Everything else: byte for byte.
    Open,
    Closed,
}

pub struct Amqp {
    lane: String,
    vhost: String,
    account: Option<Arc<Credentials>>,
    refuse: Option<String>,
    phase: Phase,
    tally: Tally,
}

fn malformed(detail: &str) -> DataError {
    DataError::Malformed { protocol: "amqp", detail: detail.to_owned() }
}

/// A frame at the front of a buffer.
struct Frame<'a> {
    kind: u8,
    channel: u16,
    payload: &'a [u8],
    /// Bytes it takes, header and end octet included.
    len: usize,
}

/// The frame at the front of `buf`, if whole.
fn frame(buf: &[u8]) -> Result<Option<Frame<'_>>, DataError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if size > MAX_HANDSHAKE_FRAME {
        return Err(malformed("handshake frame over the bound"));
    }
    if buf.len() < 8 + size {
        return Ok(None);
    }
    if buf[7 + size] != FRAME_END {
        return Err(malformed("frame without its end octet"));
    }
    Ok(Some(Frame {
        kind: buf[0],
        channel: u16::from_be_bytes([buf[1], buf[2]]),
        payload: &buf[7..7 + size],
        len: 8 + size,
    }))
}

fn put_frame(out: &mut BytesMut, kind: u8, channel: u16, payload: &[u8]) {
    out.put_u8(kind);
    out.put_u16(channel);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.put_u8(FRAME_END);
}

fn shortstr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len().min(255) as u8);
    out.extend_from_slice(&s[..s.len().min(255)]);
}

fn longstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Reads a shortstr at `at`: (bytes, next).
fn read_short(p: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let n = usize::from(*p.get(at)?);
    Some((p.get(at + 1..at + 1 + n)?, at + 1 + n))
}

/// Reads a longstr (or a table, same framing) at `at`: (bytes, next).
fn read_long(p: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let n = u32::from_be_bytes(p.get(at..at + 4)?.try_into().ok()?) as usize;
    Some((p.get(at + 4..at + 4 + n)?, at + 4 + n))
}

/// `Connection.Close` from graylane: a reply code and text, then the connection ends.
pub fn close(out: &mut BytesMut, code: u16, text: &str) {
    let mut p = Vec::new();
    p.extend_from_slice(&CONNECTION.to_be_bytes());
    p.extend_from_slice(&CLOSE.to_be_bytes());
    p.extend_from_slice(&code.to_be_bytes());
    shortstr(&mut p, text.as_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    put_frame(out, FRAME_METHOD, 0, &p);
}

/// `Connection.StartOk` as `account`: the client's properties and locale, PLAIN login.
pub fn start_ok(client: &[u8], account: &Credentials) -> Option<Vec<u8>> {
    let (props, at) = read_long(client, 4)?;
    let (_, at) = read_short(client, at)?; // mechanism
    let (_, at) = read_long(client, at)?; // response
    let (locale, _) = read_short(client, at)?;
    let mut p = client[..4].to_vec();
    longstr(&mut p, props);
    shortstr(&mut p, b"PLAIN");
    let mut response = vec![0];
    response.extend_from_slice(account.username.as_bytes());
    response.push(0);
    response.extend_from_slice(&account.password);
    longstr(&mut p, &response);
    shortstr(&mut p, locale);
    Some(p)
}

/// `Connection.Open` for `vhost`, keeping the client's other fields.
pub fn open(client: &[u8], vhost: &str) -> Option<Vec<u8>> {
    let (_, at) = read_short(client, 4)?;
    let mut p = client[..4].to_vec();
    shortstr(&mut p, vhost.as_bytes());
    p.extend_from_slice(client.get(at..)?);
    Some(p)
}

impl Amqp {
    pub fn new(lane: &str, vhost: &str, account: Option<Arc<Credentials>>, refuse: Option<String>) -> Self {
        Self {
            lane: lane.to_owned(),
            vhost: vhost.to_owned(),
            account,
            refuse,
            phase: Phase::Header,
            tally: Tally::default(),
        }
    }
}

impl Codec for Amqp {
    fn client(
        &mut self,
        input: &mut BytesMut,
        up: &mut BytesMut,
        down: &mut BytesMut,
    ) -> Result<(), DataError> {
        loop {
            match self.phase {
                Phase::Closed => {
                    input.clear();
                    return Ok(());
                }
                Phase::Open => {
                    up.extend_from_slice(&input.split());
                    return Ok(());
                }
                Phase::Header => {
                    if input.len() < 8 {
                        return Ok(());
                    }
                    if &input[..4] != b"AMQP" {
                        return Err(malformed("not AMQP"));
                    }
                    up.extend_from_slice(&input.split_to(8));
                    self.phase = Phase::Handshake;
                }
                Phase::Handshake => {
                    let Some(Frame { kind, channel, payload, len }) = frame(input)? else { return Ok(()) };
                    let method = (kind == FRAME_METHOD && payload.len() >= 4).then(|| {
                        (
                            u16::from_be_bytes([payload[0], payload[1]]),
                            u16::from_be_bytes([payload[2], payload[3]]),
                        )
                    });
                    let rewritten = match method {
                        Some((CONNECTION, START_OK)) => {
                            if let Some(why) = &self.refuse {
                                self.tally.rejected += 1;
                                self.tally
                                    .rejections
                                    .push(("Connection.StartOk".into(), "the lane may not be served now"));
                                let text = format!(
                                    "ACCESS_REFUSED - graylane: lane '{}' may not connect here: {why}",
                                    self.lane
                                );
                                close(down, 403, &text);
                                self.phase = Phase::Closed;
                                input.clear();
                                return Err(malformed("lane refused"));
                            }
                            match &self.account {
                                Some(a) => Some(
                                    start_ok(payload, a).ok_or_else(|| malformed("Connection.StartOk"))?,
                                ),
                                None => None,
                            }
                        }
                        Some((CONNECTION, OPEN)) => {
                            self.phase = Phase::Open;
                            Some(open(payload, &self.vhost).ok_or_else(|| malformed("Connection.Open"))?)
                        }
                        _ => None,
                    };
                    match rewritten {
                        Some(p) => {
                            self.tally.rewritten += 1;
                            put_frame(up, kind, channel, &p);
                        }
                        None => up.extend_from_slice(&input[..len]),
                    }
                    let _ = input.split_to(len);
                }
            }
        }
    }

    fn server(
        &mut self,
        input: &mut BytesMut,
        down: &mut BytesMut,
        _up: &mut BytesMut,
    ) -> Result<(), DataError> {
        if self.phase == Phase::Closed {
            input.clear();
        } else {
            down.extend_from_slice(&input.split());
        }
        Ok(())
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(class: u16, id: u16, args: &[u8]) -> Vec<u8> {
        let mut p = class.to_be_bytes().to_vec();
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(args);
        let mut out = BytesMut::new();
        put_frame(&mut out, FRAME_METHOD, 0, &p);
        out.to_vec()
    }

    #[test]
    fn the_lane_logs_in_as_its_account_and_opens_its_own_vhost() {
        let account = Arc::new(Credentials {
            username: "stress".into(),
            password: b"s".to_vec(),
            secret: "d/s".into(),
        });
        let mut a = Amqp::new("stress", "stress", Some(account), None);
        let mut start_ok_args = Vec::new();
        longstr(&mut start_ok_args, b"");
        shortstr(&mut start_ok_args, b"PLAIN");
        longstr(&mut start_ok_args, b"\0guest\0guest");
        shortstr(&mut start_ok_args, b"en_US");
        let mut open_args = Vec::new();
        shortstr(&mut open_args, b"/");
        shortstr(&mut open_args, b"");
        open_args.push(0);
        let mut input = BytesMut::from(&b"AMQP\x00\x00\x09\x01"[..]);
        input.extend_from_slice(&method(10, 11, &start_ok_args));
        input.extend_from_slice(&method(10, 31, &[0, 0, 0, 2, 0, 0, 0, 60]));
        input.extend_from_slice(&method(10, 40, &open_args));
        input.extend_from_slice(b"\x01\x00\x01\x00\x00\x00\x05hello\xce");
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        a.client(&mut input, &mut up, &mut down).expect("client");
        let up = String::from_utf8_lossy(&up);
        assert!(up.contains("\0stress\0s") && !up.contains("guest"), "{up:?}");
        assert!(up.contains("\x06stress") && up.ends_with("hello\u{fffd}"), "{up:?}");
        assert!(down.is_empty());
    }

    #[test]
    fn a_lane_that_may_not_be_served_is_closed_at_its_login() {
        let mut a = Amqp::new("stress", "stress", None, Some("rewrite-only".into()));
        let mut args = Vec::new();
        longstr(&mut args, b"");
        shortstr(&mut args, b"PLAIN");
        longstr(&mut args, b"\0guest\0guest");
        shortstr(&mut args, b"en_US");
        let mut input = BytesMut::from(&b"AMQP\x00\x00\x09\x01"[..]);
        input.extend_from_slice(&method(10, 11, &args));
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        assert!(a.client(&mut input, &mut up, &mut down).is_err());
        assert_eq!(&up[..], b"AMQP\x00\x00\x09\x01");
        assert!(
            String::from_utf8_lossy(&down)
                .contains("ACCESS_REFUSED - graylane: lane 'stress' may not connect here")
        );
    }
}
