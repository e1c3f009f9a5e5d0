//! What a NATS user can reach: logged in as the account, graylane subscribes outside the
//! lane's subjects (a subject of its own, production's reply inboxes and `>`), publishes one empty message outside them
//! (to `_GRAYLANE.probe`, which no application uses), subscribes inside them, and reads the
//! server's answers up to its `PONG`. Store-enforced: every step outside the lane's prefix
//! is a `Permissions Violation` and the one inside is not.

use std::sync::Arc;

use bytes::BytesMut;

use crate::{
    inventory::accounts::Credentials,
    stores::{
        DataError,
        probe::{Probe, Verdict},
    },
};

const OUTSIDE: &str = "_GRAYLANE.probe";
/// In production's reply inboxes (a lane's own replies come to `<prefix>_INBOX.…`).
const INBOX: &str = "_INBOX.graylane-probe";

pub struct NatsProbe {
    account: Arc<Credentials>,
    prefix: String,
    connected: bool,
    errors: Vec<String>,
}

impl NatsProbe {
    pub fn new(account: Arc<Credentials>, prefix: &str) -> Self {
        Self { account, prefix: prefix.to_owned(), connected: false, errors: Vec::new() }
    }

    fn verdict(&self) -> Verdict {
        let denied = |what: &str, subject: &str| {
            self.errors.iter().any(|e| {
                e.contains("Permissions Violation")
                    && e.contains(what)
                    && e.contains(&format!("\"{subject}\""))
            })
        };
        let own = format!("{}graylane-probe", self.prefix);
        let mut findings = Vec::new();
        if !denied("Subscription", OUTSIDE) {
            findings.push(format!("the account may subscribe to {OUTSIDE}, outside the lane's subjects"));
        }
        if !denied("Subscription", INBOX) {
            findings.push(format!("the account may subscribe to {INBOX}, production's reply inboxes"));
        }
        if !denied("Subscription", ">") {
            findings.push("the account may subscribe to >".to_owned());
        }
        if !denied("Publish", OUTSIDE) {
            findings.push(format!("the account may publish to {OUTSIDE}, outside the lane's subjects"));
        }
        if denied("Subscription", &own) {
            findings.push(format!("the account may not subscribe to its own subjects ({own})"));
        }
        if findings.is_empty() { Verdict::StoreEnforced } else { Verdict::RewriteOnly(findings.join("; ")) }
    }
}

impl Probe for NatsProbe {
    fn start(&mut self, _out: &mut BytesMut) {}

    fn read(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<Option<Verdict>, DataError> {
        while let Some(i) = input.iter().position(|b| *b == b'\n') {
            let line = input.split_to(i + 1);
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            let op = line.split_ascii_whitespace().next().unwrap_or("").to_ascii_uppercase();
            match op.as_str() {
                "INFO" if !self.connected => {
                    self.connected = true;
                    let connect = serde_json::json!({
                        "verbose": false, "pedantic": false, "protocol": 1, "echo": false,
                        "name": "graylane-probe", "lang": "graylane",
                        "user": self.account.username,
                        "pass": String::from_utf8_lossy(&self.account.password),
                    });
                    let own = format!("{}graylane-probe", self.prefix);
                    out.extend_from_slice(
                        format!(
                            "CONNECT {connect}\r\nSUB {OUTSIDE} 1\r\nSUB {INBOX} 4\r\nSUB > 2\r\nPUB {OUTSIDE} 0\r\n\r\nSUB {own} 3\r\nPING\r\n"
                        )
                        .as_bytes(),
                    );
                }
                "-ERR" if line.contains("Authorization Violation") => {
                    return Ok(Some(Verdict::RewriteOnly(format!(
                        "the store refused the account's login: {line}"
                    ))));
                }
                "-ERR" => self.errors.push(line),
                "PING" => out.extend_from_slice(b"PONG\r\n"),
                "PONG" => return Ok(Some(self.verdict())),
                _ => {}
            }
            if input.len() > 1 << 20 {
                return Err(DataError::Malformed {
                    protocol: "nats",
                    detail: "probe answer too long".into(),
                });
            }
        }
        Ok(None)
    }
}
