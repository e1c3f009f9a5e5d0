//! NATS for a lane: the subjects a lane's pod publishes to, replies to and subscribes to
//! get the lane's prefix (`orders.created` → `shadow.orders.created`), its queue groups
//! the lane's suffix, and the messages it receives lose the prefix. A base pod's
//! connection passes as it is, except that messages on any lane's subjects never reach it
//! (a base subscriber to `>` would otherwise see them): gray consumers receive only gray
//! messages, base consumers never do. System and JetStream subjects (`$…`) cannot be kept
//! in a lane.

pub mod probe;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{Codec, DataError, Tally};
use crate::inventory::accounts::Credentials;

/// A control line at most (NATS' own default is 4 KiB).
const MAX_LINE: usize = 64 * 1024;
/// A message's payload at most (NATS' default `max_payload` is 1 MiB; 64 MiB is its hard
/// ceiling).
const MAX_PAYLOAD: usize = 64 << 20;

pub struct Nats {
    /// `None`: a base connection.
    lane: Option<Lane>,
    /// Every lane's prefix (for base connections: what never reaches them).
    lane_subjects: Vec<String>,
    /// The server's `INFO` has reached the client: graylane's own `-ERR`s may follow (a
    /// client reads `INFO` first).
    info_passed: bool,
    /// graylane's own answers written before `INFO` passed.
    held: BytesMut,
    tally: Tally,
}

struct Lane {
    name: String,
    prefix: String,
    queue_suffix: Option<String>,
    reject: bool,
    /// The store account `CONNECT` logs in as.
    account: Option<Arc<Credentials>>,
    /// The lane may not be served now: its `CONNECT` is refused with this.
    refuse: Option<String>,
}

fn malformed(detail: impl Into<String>) -> DataError {
    DataError::Malformed { protocol: "nats", detail: detail.into() }
}

/// The next control line (without CRLF) and the length it occupies, if complete.
fn control_line(buf: &[u8]) -> Result<Option<(String, usize)>, DataError> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(i) => {
            let end = if i > 0 && buf[i - 1] == b'\r' { i - 1 } else { i };
            let text =
                std::str::from_utf8(&buf[..end]).map_err(|_| malformed("control line is not UTF-8"))?;
            Ok(Some((text.to_owned(), i + 1)))
        }
        None if buf.len() > MAX_LINE => Err(malformed("control line too long")),
        None => Ok(None),
    }
}

/// The payload size a `PUB`/`MSG` (last word) or `HPUB`/`HMSG` (last word: total) line
/// announces.
fn payload_len(words: &[&str]) -> Result<usize, DataError> {
    let n: usize = words.last().and_then(|w| w.parse().ok()).ok_or_else(|| malformed("bad payload size"))?;
    if n > MAX_PAYLOAD {
        return Err(malformed(format!("payload of {n} bytes over the {MAX_PAYLOAD}-byte bound")));
    }
    Ok(n)
}

/// A lane's NATS connection: its subjects, what it may not reach, how it logs in.
pub struct LaneNats<'a> {
    pub name: &'a str,
    pub prefix: &'a str,
    pub queue_suffix: Option<&'a str>,
    pub reject: bool,
    pub account: Option<Arc<Credentials>>,
    pub refuse: Option<String>,
}

impl Nats {
    pub fn lane(l: LaneNats<'_>) -> Self {
        Self {
            lane: Some(Lane {
                name: l.name.to_owned(),
                prefix: l.prefix.to_owned(),
                queue_suffix: l.queue_suffix.map(str::to_owned),
                reject: l.reject,
                account: l.account,
                refuse: l.refuse,
            }),
            lane_subjects: Vec::new(),
            info_passed: false,
            held: BytesMut::new(),
            tally: Tally::default(),
        }
    }

    pub fn base(lane_subjects: &[String]) -> Self {
        Self {
            lane: None,
            lane_subjects: lane_subjects.to_vec(),
            info_passed: false,
            held: BytesMut::new(),
            tally: Tally::default(),
        }
    }
}

/// `CONNECT {json}` as the lane's account: its user and password, none of the client's own
/// credentials (token, nkey, signature, JWT).
fn connect_as(line: &str, account: &Credentials) -> Result<Vec<u8>, DataError> {
    let json = line.get(7..).unwrap_or("").trim();
    let mut c: serde_json::Value =
        serde_json::from_str(json).map_err(|e| malformed(format!("CONNECT: {e}")))?;
    let o = c.as_object_mut().ok_or_else(|| malformed("CONNECT is not an object"))?;
    for k in ["auth_token", "nkey", "sig", "jwt", "user", "pass"] {
        o.remove(k);
    }
    o.insert("user".into(), account.username.clone().into());
    o.insert("pass".into(), String::from_utf8_lossy(&account.password).into_owned().into());
    let mut out = b"CONNECT ".to_vec();
    out.extend_from_slice(c.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// An `INFO` line without the cluster's other addresses (`connect_urls`,
/// `ws_connect_urls`).
fn without_peers(line: &str) -> Result<Vec<u8>, DataError> {
    let json = line.get(4..).unwrap_or("").trim();
    let mut info: serde_json::Value =
        serde_json::from_str(json).map_err(|e| malformed(format!("INFO: {e}")))?;
    if let Some(o) = info.as_object_mut() {
        o.remove("connect_urls");
        o.remove("ws_connect_urls");
    }
    let mut out = b"INFO ".to_vec();
    out.extend_from_slice(info.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// One whole message at the front of `input`: its control line's words and the bytes it
/// spans (line, payload and CRLF), or `None` if incomplete.
fn message(input: &[u8]) -> Result<Option<(String, usize, usize)>, DataError> {
    let Some((line, at)) = control_line(input)? else { return Ok(None) };
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let op = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    let payload = match op.as_str() {
        "PUB" | "HPUB" | "MSG" | "HMSG" => payload_len(&words)? + 2,
        _ => 0,
    };
    if input.len() < at + payload {
        return Ok(None);
    }
    Ok(Some((line, at, payload)))
}

impl Codec for Nats {
    fn client(
        &mut self,
        input: &mut BytesMut,
        up: &mut BytesMut,
        down: &mut BytesMut,
    ) -> Result<(), DataError> {
        let Some(lane) = &self.lane else {
            up.extend_from_slice(&input.split());
            return Ok(());
        };
        // graylane's own answers wait for the server's INFO.
        let mut local = BytesMut::new();
        let down_for_locals: &mut BytesMut = if self.info_passed { down } else { &mut local };
        while let Some((line, at, payload)) = message(input)? {
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let op = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
            let mut out: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
            let subjects: &[usize] = match (op.as_str(), words.len()) {
                // PUB subject [reply] size; HPUB subject [reply] hsize size.
                ("PUB", 4) | ("HPUB", 5) => &[1, 2],
                ("PUB" | "HPUB" | "SUB", _) => &[1],
                _ => &[],
            };
            let system = subjects.iter().find_map(|i| words.get(*i).filter(|s| s.starts_with('$')));
            let msg: Bytes = input.split_to(at + payload).freeze();
            if op == "CONNECT" {
                if let Some(why) = &lane.refuse {
                    self.tally.rejected += 1;
                    self.tally.rejections.push(("CONNECT".into(), "the lane may not be served now"));
                    let why = why.replace(['\'', '\r', '\n'], " ");
                    down_for_locals.extend_from_slice(
                        format!("-ERR 'Authorization Violation (graylane: lane {} may not connect here: {why})'\r\n", lane.name)
                            .as_bytes(),
                    );
                    if !self.info_passed {
                        self.held.extend_from_slice(&local);
                    }
                    return Err(malformed("lane refused"));
                }
                if let Some(account) = &lane.account {
                    self.tally.passed += 1;
                    up.extend_from_slice(&connect_as(&line, account)?);
                    continue;
                }
            }
            if let Some(subject) = system {
                let subject = (*subject).to_owned();
                if lane.reject {
                    self.tally.rejected += 1;
                    self.tally
                        .rejections
                        .push((op.clone(), "system and JetStream subjects ($…) stay out of lanes"));
                    let what = if op == "SUB" { "Subscription" } else { "Publish" };
                    down_for_locals.extend_from_slice(
                        format!(
                            "-ERR 'Permissions Violation for {what} to \"{}\" (graylane: lane {} keeps out of $ subjects)'\r\n",
                            subject.replace(['\'', '"'], ""),
                            lane.name
                        )
                        .as_bytes(),
                    );
                    continue;
                }
                self.tally.unsupported_passed += 1;
                up.extend_from_slice(&msg);
                continue;
            }
            for &i in subjects {
                if let Some(w) = out.get_mut(i) {
                    *w = format!("{}{w}", lane.prefix);
                }
            }
            if op == "SUB"
                && out.len() == 4
                && let Some(q) = &lane.queue_suffix
            {
                out[2] = format!("{}{q}", out[2]);
            }
            if subjects.is_empty() {
                // CONNECT, PING, UNSUB…: byte for byte (CONNECT's JSON may hold anything).
                self.tally.passed += 1;
                up.extend_from_slice(&msg);
                continue;
            }
            self.tally.rewritten += 1;
            up.extend_from_slice(out.join(" ").as_bytes());
            up.extend_from_slice(b"\r\n");
            up.extend_from_slice(&msg[at..]);
        }
        if !self.info_passed {
            self.held.extend_from_slice(&local);
        }
        Ok(())
    }

    fn server(
        &mut self,
        input: &mut BytesMut,
        down: &mut BytesMut,
        _up: &mut BytesMut,
    ) -> Result<(), DataError> {
        while let Some((line, at, payload)) = message(input)? {
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let op = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
            let msg = input.split_to(at + payload).freeze();
            if op == "INFO" {
                // Other servers' addresses would let the client reconnect around graylane
                // (a pod IP has no data lanes): it only learns the address it dialed.
                down.extend_from_slice(&without_peers(&line)?);
                if !self.info_passed {
                    self.info_passed = true;
                    down.extend_from_slice(&self.held.split());
                }
                continue;
            }
            if op != "MSG" && op != "HMSG" {
                down.extend_from_slice(&msg);
                continue;
            }
            match &self.lane {
                None => {
                    // A base connection never receives a lane's messages.
                    let subject = words.get(1).copied().unwrap_or("");
                    if self.lane_subjects.iter().any(|p| subject.starts_with(p.as_str())) {
                        continue;
                    }
                    down.extend_from_slice(&msg);
                }
                Some(lane) => {
                    // MSG subject sid [reply] size; HMSG subject sid [reply] hsize size.
                    let reply = matches!((op.as_str(), words.len()), ("MSG", 5) | ("HMSG", 6));
                    let mut out: Vec<&str> = words.clone();
                    let p = lane.prefix.as_str();
                    if let Some(w) = out.get_mut(1) {
                        *w = w.strip_prefix(p).unwrap_or(w);
                    }
                    if reply && let Some(w) = out.get_mut(3) {
                        *w = w.strip_prefix(p).unwrap_or(w);
                    }
                    down.extend_from_slice(out.join(" ").as_bytes());
                    down.extend_from_slice(b"\r\n");
                    down.extend_from_slice(&msg[at..]);
                }
            }
        }
        Ok(())
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }

    fn need(&self, _client: bool, input: &[u8]) -> Option<usize> {
        let (line, at) = control_line(input).ok()??;
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("PUB" | "HPUB" | "MSG" | "HMSG") => Some(at + payload_len(&words).ok()? + 2),
            _ => None,
        }
    }

    fn over_budget(&mut self, down: &mut BytesMut, why: &str) {
        self.tally.rejected += 1;
        self.tally.rejections.push(("(connection)".into(), "over the data-lane memory budget"));
        let line = format!("-ERR 'graylane: connection closed: {}'\r\n", why.replace('\'', ""));
        if self.info_passed {
            down.extend_from_slice(line.as_bytes());
        } else {
            self.held.extend_from_slice(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(queue_suffix: Option<&str>) -> Nats {
        Nats::lane(LaneNats {
            name: "gray",
            prefix: "gray.",
            queue_suffix,
            reject: true,
            account: None,
            refuse: None,
        })
    }

    fn run(codec: &mut Nats, client: &[u8]) -> (String, String) {
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        codec.client(&mut BytesMut::from(client), &mut up, &mut down).expect("client");
        (String::from_utf8_lossy(&up).into_owned(), String::from_utf8_lossy(&down).into_owned())
    }

    #[test]
    fn a_lane_publishes_and_subscribes_under_its_prefix() {
        let mut c = gray(Some("-gray"));
        let (up, down) = run(
            &mut c,
            b"CONNECT {}\r\nSUB orders.* workers 1\r\nPUB orders.new _INBOX.x 5\r\nhello\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
        );
        assert_eq!(
            up,
            "CONNECT {}\r\nSUB gray.orders.* workers-gray 1\r\nPUB gray.orders.new gray._INBOX.x 5\r\nhello\r\nHPUB gray.a 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n"
        );
        assert!(down.is_empty());
        let mut down = BytesMut::new();
        let mut input = BytesMut::from(&b"MSG gray.orders.new 1 gray._INBOX.x 5\r\nhello\r\nPONG\r\n"[..]);
        c.server(&mut input, &mut down, &mut BytesMut::new()).expect("server");
        assert_eq!(&down[..], b"MSG orders.new 1 _INBOX.x 5\r\nhello\r\nPONG\r\n");
    }

    #[test]
    fn system_subjects_are_refused_and_partial_messages_wait() {
        let mut c = gray(None);
        let (up, down) = run(&mut c, b"PUB $JS.API.INFO 0\r\n\r\nPUB a 5\r\nhel");
        assert!(up.is_empty(), "{up}");
        assert!(down.is_empty(), "graylane's own -ERR waits for the server's INFO: {down}");
        let mut down = BytesMut::new();
        c.server(&mut BytesMut::from(&b"INFO {\"port\":4222}\r\n"[..]), &mut down, &mut BytesMut::new())
            .expect("info");
        let down = String::from_utf8_lossy(&down);
        assert!(down.starts_with("INFO {"), "{down}");
        assert!(down.contains("\r\n-ERR 'Permissions Violation for Publish"), "{down}");
        assert!(
            Nats::lane(LaneNats {
                name: "g",
                prefix: "g.",
                queue_suffix: None,
                reject: true,
                account: None,
                refuse: None
            })
            .client(&mut BytesMut::from(&b"PUB a x\r\n"[..]), &mut BytesMut::new(), &mut BytesMut::new())
            .is_err()
        );
    }

    #[test]
    fn base_subscribers_never_see_lane_messages() {
        let mut c = Nats::base(&["gray.".to_owned()]);
        let mut down = BytesMut::new();
        let mut input = BytesMut::from(
            &b"INFO {\"port\":4222,\"connect_urls\":[\"10.244.0.9:4222\"]}\r\nMSG gray.orders 1 2\r\nhi\r\nMSG orders 1 2\r\nok\r\n"[..],
        );
        c.server(&mut input, &mut down, &mut BytesMut::new()).expect("server");
        assert_eq!(&down[..], b"INFO {\"port\":4222}\r\nMSG orders 1 2\r\nok\r\n");
    }

    #[test]
    fn connect_logs_in_as_the_lanes_account_and_refusals_follow_info() {
        let account = Arc::new(Credentials {
            username: "stress".into(),
            password: b"s".to_vec(),
            secret: "d/n".into(),
        });
        let mut c = Nats::lane(LaneNats {
            name: "gray",
            prefix: "gray.",
            queue_suffix: None,
            reject: true,
            account: Some(account),
            refuse: None,
        });
        let (up, _) = run(&mut c, b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"prod\",\"auth_token\":\"t\"}\r\nPING\r\n");
        assert!(
            up.starts_with("CONNECT {")
                && up.contains("\"user\":\"stress\"")
                && up.contains("\"pass\":\"s\""),
            "{up}"
        );
        assert!(!up.contains("prod") && !up.contains("auth_token") && up.ends_with("PING\r\n"), "{up}");
        let mut refused = Nats::lane(LaneNats {
            name: "gray",
            prefix: "gray.",
            queue_suffix: None,
            reject: true,
            account: None,
            refuse: Some("no store account".into()),
        });
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        assert!(refused.client(&mut BytesMut::from(&b"CONNECT {}\r\n"[..]), &mut up, &mut down).is_err());
        assert!(up.is_empty() && down.is_empty());
        refused.server(&mut BytesMut::from(&b"INFO {}\r\n"[..]), &mut down, &mut up).expect("info");
        assert!(
            String::from_utf8_lossy(&down)
                .contains("INFO {}\r\n-ERR 'Authorization Violation (graylane: lane gray"),
            "{down:?}"
        );
    }
}
