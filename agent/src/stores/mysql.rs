//! MySQL / MariaDB client protocol for a lane. The connection phase: the default schema of
//! the handshake becomes the lane's; with a store account, graylane logs the connection in
//! as that account (answering the server's challenge itself: [`auth`]) and the client's
//! own credentials go nowhere; then graylane asks the server how the session reads SQL
//! (`sql_mode`, character set: [`session`]) before the client's first command. The
//! command phase: `COM_INIT_DB` is mapped, the SQL of `COM_QUERY` and `COM_STMT_PREPARE`
//! is read as MariaDB reads it and rewritten ([`sql`]); what cannot be kept in the lane is
//! answered with a MySQL error packet. TLS asked for by a lane client is refused with an
//! error (the SQL could not be read; graylane never downgrades silently). Compression and
//! query attributes are not offered to lane clients (both would hide the SQL).
//!
//! Replies pass through unchanged: values that name schemas (`SELECT DATABASE()`,
//! `SHOW DATABASES`, result-set metadata) show the lane's schema names.

pub mod auth;
mod forms;
pub mod handshake;
pub mod lex;
pub mod packet;
pub mod probe;
mod refusal;
mod schemas;
pub mod session;
pub mod sql;

use std::{collections::BTreeMap, sync::Arc};

use bytes::{Bytes, BytesMut};

use self::{
    handshake::{
        CLIENT_COMPRESS, CLIENT_DEPRECATE_EOF, CLIENT_PROTOCOL_41, CLIENT_QUERY_ATTRIBUTES, CLIENT_SSL,
        CLIENT_ZSTD_COMPRESSION, Greeting, Response,
    },
    packet::{MAX_PACKET, ResultSet, Step, error_packet, packet, put_packets},
    refusal::Refusal,
    schemas::Schemas,
    session::{Change, Reported, Session},
};
use super::{Codec, DataError, Tally};
use crate::inventory::accounts::Credentials;

/// Collation ids (big5, sjis, gbk, cp932, gb18030 and their `_bin`) whose multi-byte
/// characters can end in `\`: refused at the handshake, before the server's own report.
const UNSAFE_CHARSET_IDS: &[u8] = &[1, 13, 28, 84, 87, 88, 95, 96, 248, 249, 250];
/// Packets a client may send ahead of the handshake's end (held, then read as commands).
const MAX_EARLY: usize = 64;
/// A lane's statement at most (its packets reassembled).
const MAX_STATEMENT: usize = 64 << 20;
/// What graylane asks the server after login: how the session reads SQL, and the global
/// values `DEFAULT` goes back to.
const SESSION_QUERY: &str = "SELECT @@session.sql_mode, @@session.character_set_client";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the server's greeting.
    Greeting,
    /// Waiting for the client's handshake response.
    Response,
    /// Authentication exchange, until the server's OK.
    Auth,
    /// graylane's own query of the session's settings; the server's OK is held.
    Session,
    /// Commands.
    Command,
    /// Refused or failed: nothing more is read.
    Closed,
}

pub struct Mysql {
    lane: String,
    schemas: Schemas,
    reject: bool,
    account: Option<Arc<Credentials>>,
    /// The lane may not be served now: its logins are refused with this.
    refuse: Option<String>,
    phase: Phase,
    greeting: Greeting,
    session: Session,
    /// The client's handshake response's sequence id: the login's OK goes out as the next.
    client_seq: u8,
    /// Capabilities of the login graylane sent.
    caps: u32,
    /// The account's authentication exchange.
    exchange: Option<auth::Exchange>,
    /// The OK that ends authentication (its sequence id as the client expects it).
    held_ok: Option<(u8, Bytes)>,
    /// A command that may change how the session reads SQL (a `SET`, a reset) is in flight:
    /// the client's next commands wait until graylane has asked the server how it reads now.
    verify: bool,
    result: ResultSet,
    /// A command's payload split over packets (reassembled before it is read).
    partial: Option<(u8, Vec<u8>)>,
    /// Packets the client sent before the server's greeting or before the login ended:
    /// read once the phase they belong to has come.
    early: Vec<(u8, Bytes)>,
    tally: Tally,
}

fn malformed(detail: &str) -> DataError {
    DataError::Malformed { protocol: "mysql", detail: detail.to_owned() }
}

/// ER_SPECIFIC_ACCESS_DENIED_ERROR: refused by graylane.
const ER_ACCESS: (u16, &[u8; 5]) = (1227, b"42000");
/// ER_PARSE_ERROR.
const ER_PARSE: (u16, &[u8; 5]) = (1064, b"42000");
/// ER_ACCESS_DENIED_ERROR: a login graylane did not let through.
const ER_LOGIN: (u16, &[u8; 5]) = (1045, b"28000");

impl Mysql {
    pub fn new(
        lane: &str,
        suffix: Option<String>,
        map: BTreeMap<String, String>,
        reject: bool,
        account: Option<Arc<Credentials>>,
        refuse: Option<String>,
    ) -> Self {
        Self {
            lane: lane.to_owned(),
            schemas: Schemas { suffix, map },
            reject,
            account,
            refuse,
            phase: Phase::Greeting,
            greeting: Greeting::default(),
            session: Session::new(0, true),
            client_seq: 1,
            caps: 0,
            exchange: None,
            held_ok: None,
            verify: false,
            result: ResultSet::default(),
            partial: None,
            early: Vec::new(),
            tally: Tally::default(),
        }
    }

    fn refuse(&mut self, down: &mut BytesMut, seq: u8, what: &str, why: &str, err: (u16, &[u8; 5])) {
        self.tally.rejected += 1;
        let why_static: &'static str = match err.0 {
            1064 => "the statement could not be read",
            1045 => "the lane could not log in",
            _ => "it cannot be kept in the lane",
        };
        self.tally.rejections.push((what.to_owned(), why_static));
        let msg = format!("graylane: lane '{}' may not run {what} here: {why}", self.lane);
        error_packet(down, seq.wrapping_add(1), err.0, err.1, &msg);
    }

    /// Ends the connection with a login error to the client.
    fn fail_login(&mut self, down: &mut BytesMut, why: &str) -> DataError {
        let seq = self.client_seq;
        self.refuse(down, seq, "a login", why, ER_LOGIN);
        self.phase = Phase::Closed;
        malformed("login refused")
    }

    /// The client's handshake response: checked, its schema mapped, and (with an
    /// account) rebuilt as the account's login. `Err` with the refusal written.
    fn response(&mut self, seq: u8, payload: &[u8], down: &mut BytesMut) -> Result<Vec<u8>, DataError> {
        self.client_seq = seq;
        if let Some(why) = self.refuse.clone() {
            return Err(self.fail_login(down, &why));
        }
        let caps = payload.get(..4).map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        if caps & CLIENT_SSL != 0 {
            let why = "its SQL could not be read to keep it in the lane; connect without TLS (ssl-mode=DISABLED) through graylane";
            self.refuse(down, seq, "TLS", why, ER_ACCESS);
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
        let r = Response::parse(payload).map_err(malformed)?;
        if UNSAFE_CHARSET_IDS.contains(&r.charset) {
            self.refuse(
                down,
                seq,
                "the character set",
                "graylane cannot read SQL in that character set",
                ER_ACCESS,
            );
            return Err(malformed("unreadable character set on a lane connection"));
        }
        let db = match r.db.filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => match self.schemas.target(&String::from_utf8_lossy(d)) {
                Ok(Some(t)) => {
                    self.tally.rewritten += 1;
                    Some(t.into_bytes())
                }
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
            },
        };
        let Some(account) = self.account.clone() else {
            self.caps = r.caps;
            return Ok(match &db {
                Some(d) => r.with_db(payload, d),
                None => payload.to_vec(),
            });
        };
        // As the lane's account: the greeting's plugin answered now (another may be asked
        // for by an auth switch).
        let (exchange, plugin, first) =
            auth::Exchange::start(&self.greeting.plugin, &self.greeting.scramble, &account.password);
        self.exchange = Some(exchange);
        let login = r.as_account(self.greeting.caps, &account.username, &first, &plugin, db.as_deref());
        self.caps = u32::from_le_bytes([login[0], login[1], login[2], login[3]]);
        Ok(login)
    }

    /// A server packet while authenticating as the lane's account.
    fn account_auth(
        &mut self,
        seq: u8,
        p: &Bytes,
        up: &mut BytesMut,
        down: &mut BytesMut,
    ) -> Result<(), DataError> {
        let step = match &mut self.exchange {
            Some(x) => x.on_packet(p),
            None => auth::Step::Failed("no login in progress".into()),
        };
        match step {
            auth::Step::Done => self.start_session(self.client_seq.wrapping_add(1), p.clone(), up),
            auth::Step::Wait => Ok(()),
            auth::Step::Send(answer) => {
                put_packets(up, seq.wrapping_add(1), &answer);
                Ok(())
            }
            auth::Step::Denied(said) => {
                let who = self
                    .account
                    .as_ref()
                    .map(|a| format!("{} ({})", a.username, a.secret))
                    .unwrap_or_default();
                Err(self
                    .fail_login(down, &format!("its store account {who} was refused by the store: {said}")))
            }
            auth::Step::Failed(why) => Err(self.fail_login(down, &why)),
        }
    }

    /// Authentication is over: the server's OK waits while graylane asks how the session
    /// reads SQL.
    fn start_session(&mut self, ok_seq: u8, ok: Bytes, up: &mut BytesMut) -> Result<(), DataError> {
        self.held_ok = Some((ok_seq, ok));
        self.ask_session(up);
        Ok(())
    }

    /// Asks the server how the session reads SQL now (its answer is graylane's).
    fn ask_session(&mut self, up: &mut BytesMut) {
        self.result = ResultSet::new(self.caps & self.greeting.caps & CLIENT_DEPRECATE_EOF != 0);
        packet::query(up, SESSION_QUERY);
        self.phase = Phase::Session;
    }

    /// A packet of the session query's answer.
    fn session_packet(&mut self, p: &[u8], up: &mut BytesMut, down: &mut BytesMut) -> Result<(), DataError> {
        match self.result.feed(p) {
            Step::More => Ok(()),
            Step::Failed(m) => {
                Err(self.fail_login(down, &format!("the store did not say how the session reads SQL: {m}")))
            }
            Step::Done => {
                let text = |i: usize| {
                    self.result
                        .rows
                        .first()
                        .and_then(|r| r.get(i).cloned().flatten())
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default()
                };
                let reported = Reported { sql_mode: text(0), charset: text(1) };
                if let Err(r) = self.session.learn(&reported) {
                    let why = match r {
                        Refusal::Unsupported(_, why) | Refusal::Unfollowable(_, why) => why.to_owned(),
                        Refusal::Parse(d) => d,
                    };
                    if self.held_ok.is_some() {
                        return Err(self.fail_login(down, &format!("its session cannot be read: {why}")));
                    }
                    // A SET that reached the server (its OK went out) left a session graylane
                    // cannot read: nothing more is read on it.
                    self.tally.rejected += 1;
                    self.tally
                        .rejections
                        .push(("SET".into(), "the session now reads SQL in a way graylane cannot"));
                    self.phase = Phase::Closed;
                    return Err(malformed(&format!(
                        "the session now reads SQL in a way graylane cannot: {why}"
                    )));
                }
                if let Some((seq, ok)) = self.held_ok.take() {
                    put_packets(down, seq, &ok);
                }
                self.phase = Phase::Command;
                self.verify = false;
                self.replay_early(up, down)
            }
        }
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
                match sql::rewrite(&payload[1..], &self.schemas, &self.session.rules, cmd == 0x16) {
                    Ok(r) => {
                        self.verify = r.change == Change::Reading;
                        Ok(r.text.map(|new| {
                            let mut p = Vec::with_capacity(1 + new.len());
                            p.push(cmd);
                            p.extend_from_slice(&new);
                            p
                        }))
                    }
                    Err(r) => Err((statement_kind(&payload[1..]).unwrap_or_else(|| name.to_owned()), r)),
                }
            }
            // COM_INIT_DB: the schema (a name MariaDB reads whole: no NUL, no control byte).
            0x02 => {
                let name = std::str::from_utf8(&payload[1..])
                    .ok()
                    .filter(|n| !n.is_empty() && n.len() <= 64 && !n.chars().any(char::is_control));
                let target = match name {
                    Some(db) => self.schemas.target(db),
                    None => Err(Refusal::Unsupported(None, "a schema name graylane cannot read")),
                };
                match target {
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
            // COM_RESET_CONNECTION: the session goes back to its state after login.
            0x1f => {
                self.verify = true;
                Ok(None)
            }
            // Quit, statistics, ping, field list (of the mapped schema), prepared
            // statements by id, set option, MariaDB bulk execute.
            0x01 | 0x04 | 0x09 | 0x0e | 0x17 | 0x18 | 0x19 | 0x1a | 0x1b | 0x1c | 0xfa => Ok(None),
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
                let why = format!("graylane could not read it as MariaDB would ({detail})");
                self.refuse(down, seq, &what, &why, ER_PARSE);
            }
            Err((_, Refusal::Unfollowable(kind, why))) => self.refuse(down, seq, &kind, why, ER_ACCESS),
            // A statement of a kind graylane does not keep in lanes (`CALL`, `GRANT`, alone in
            // its packet): `passthrough` forwards it as it is (with a store account, the store
            // decides).
            Err((_, Refusal::Unsupported(Some(_), _))) if !self.reject => {
                self.tally.unsupported_passed += 1;
                put_packets(up, seq, payload);
            }
            // Anything else that cannot be kept in the lane (a name the walk cannot place, a
            // schema with no mapping, a write to a system schema) is refused whatever the lane
            // says.
            Err((what, Refusal::Unsupported(kind, why))) => {
                let what = kind.unwrap_or(what);
                self.refuse(down, seq, &what, why, ER_ACCESS);
            }
        }
    }

    /// One client packet, in the phase it belongs to: a command sent before the server's
    /// greeting or before the login ended (sequence 0 while authenticating) waits.
    fn client_packet(
        &mut self,
        seq: u8,
        payload: Bytes,
        up: &mut BytesMut,
        down: &mut BytesMut,
    ) -> Result<(), DataError> {
        match self.phase {
            Phase::Closed => {}
            Phase::Greeting | Phase::Session => self.hold(seq, payload)?,
            Phase::Auth if seq == 0 => self.hold(seq, payload)?,
            // The account's exchange is graylane's: the client waits for its OK.
            Phase::Auth if self.account.is_some() => {}
            Phase::Auth => put_packets(up, seq, &payload),
            // A login split over packets (16 MiB of it) is not one graylane reads.
            Phase::Response if payload.len() == MAX_PACKET => return Err(malformed("a login over 16 MiB")),
            // A login split over packets (16 MiB of it) is not one graylane reads.
            Phase::Response if payload.len() == MAX_PACKET => return Err(malformed("a login over 16 MiB")),
            Phase::Response => {
                let p = self.response(seq, &payload, down)?;
                put_packets(up, seq, &p);
                self.phase = Phase::Auth;
            }
            // The answer to a command that may change how the session reads SQL comes first.
            Phase::Command if self.verify => self.hold(seq, payload)?,
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

/// The statement's first word (what the access log names), never its values.
fn statement_kind(sql: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&sql[..sql.len().min(64)]).into_owned();
    let word: String =
        text.split_whitespace().next()?.chars().take(24).filter(|c| c.is_ascii_alphabetic()).collect();
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
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
                // The answer to a SET or a reset: OK, and graylane asks how the session reads
                // now; an error changed nothing.
                Phase::Command if self.verify => {
                    let Some((seq, payload)) = packet(input) else { return Ok(()) };
                    put_packets(down, seq, &payload);
                    if payload.first() == Some(&0x00) {
                        self.ask_session(up);
                    } else {
                        self.verify = false;
                        self.replay_early(up, down)?;
                    }
                }
                Phase::Command | Phase::Response => {
                    down.extend_from_slice(&input.split());
                    return Ok(());
                }
                Phase::Closed => {
                    input.clear();
                    return Ok(());
                }
                Phase::Greeting => {
                    let Some((seq, payload)) = packet(input) else { return Ok(()) };
                    put_packets(down, seq, &Greeting::for_lane_client(&payload));
                    if let Some(g) = Greeting::parse(&payload) {
                        self.greeting = g;
                        self.session = Session::new(self.greeting.version_id, self.greeting.mariadb);
                        self.phase = Phase::Response;
                        self.replay_early(up, down)?;
                    }
                }
                Phase::Auth => {
                    let Some((seq, payload)) = packet(input) else { return Ok(()) };
                    if self.account.is_some() {
                        self.account_auth(seq, &payload, up, down)?;
                        continue;
                    }
                    match payload.first() {
                        Some(&0x00) => self.start_session(seq, payload, up)?,
                        // Authentication failed: what the client sent ahead goes nowhere.
                        Some(&0xFF) => {
                            put_packets(down, seq, &payload);
                            self.early.clear();
                        }
                        _ => put_packets(down, seq, &payload),
                    }
                }
                Phase::Session => {
                    let Some((_, payload)) = packet(input) else { return Ok(()) };
                    self.session_packet(&payload, up, down)?;
                }
            }
        }
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }

    fn need(&self, _client: bool, input: &[u8]) -> Option<usize> {
        let h = input.get(..3)?;
        Some(4 + (usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16))
    }

    fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, |(_, p)| p.len())
            + self.early.iter().map(|(_, p)| p.len()).sum::<usize>()
    }

    fn over_budget(&mut self, down: &mut BytesMut, why: &str) {
        self.tally.rejected += 1;
        self.tally.rejections.push(("(connection)".into(), "over the data-lane memory budget"));
        let msg = format!("graylane: lane '{}' connection closed: {why}", self.lane);
        error_packet(down, 1, ER_ACCESS.0, ER_ACCESS.1, &msg);
    }
}

#[cfg(test)]
mod tests;
