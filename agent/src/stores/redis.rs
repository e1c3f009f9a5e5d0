//! Redis (RESP2 and RESP3) for a lane: every key, channel and pattern of the lane's
//! commands gets the lane's prefix (found by Redis' own key specifications), names in
//! replies lose it, and commands that cannot be kept under it are answered with a Redis
//! error (or forwarded unchanged when the lane's `onUnsupported` is `passthrough`).
//! Pipelining, `MULTI`/`EXEC` and pub/sub keep their order and meaning.

mod commands;
pub mod probe;
pub mod resp;

use std::{collections::VecDeque, sync::Arc};

use bytes::{Bytes, BytesMut};

use self::resp::{RespError, Scan, Value};
use super::{Codec, DataError, Tally};
use crate::inventory::accounts::Credentials;

/// A lane command's size at most (arguments included).
pub const MAX_REQUEST: usize = 64 << 20;
/// Local answers waiting behind replies, at most.
const MAX_LOCAL: usize = 1 << 20;
/// A reply graylane rewrites or passes, at most.
pub const MAX_REPLY: usize = 512 << 20;

/// What the reply to a forwarded command needs.
#[derive(Clone, Debug, PartialEq)]
enum Reply {
    Pass,
    /// An array of key names (`KEYS`, `PUBSUB CHANNELS`).
    Keys,
    /// `[cursor, [keys]]`.
    Scan,
    /// `[key, …]` (`BLPOP`, `LMPOP`, …).
    FirstKey,
    /// Streams by key (`XREAD`): pairs in RESP2, a map in RESP3.
    Streams,
    /// Channels and counts (`PUBSUB NUMSUB`).
    Pairs,
    /// Each queued command's reply, in order.
    Exec(Vec<Reply>),
    /// graylane's own answer instead of the server's (a discarded transaction).
    Replace(Bytes),
}

enum Pending {
    Reply(Reply),
    /// graylane's own answer, sent once every reply before it has gone.
    Local(Bytes),
    /// The reply to graylane's `AUTH` as the lane's account (never the client's).
    Login,
}

/// The lane's login as its store account.
#[derive(Debug, PartialEq)]
enum Login {
    /// No account: the connection is the client's.
    None,
    /// `AUTH` goes out before the client's first command.
    Unsent,
    /// Sent; the client's commands wait for its answer.
    Waiting,
    Done,
    /// The store refused it: every command is answered with this.
    Failed(String),
}

#[derive(Default)]
struct Tx {
    replies: Vec<Reply>,
    /// A command of the transaction was refused: `EXEC` becomes `DISCARD`.
    poisoned: bool,
}

pub struct Redis {
    prefix: Bytes,
    pattern_prefix: Bytes,
    lane: String,
    reject: bool,
    pending: VecDeque<Pending>,
    multi: Option<Tx>,
    /// RESP2 replies may be pub/sub messages (a subscription is or may be active).
    subscribed: bool,
    /// The connection speaks RESP3 (`HELLO 3`): pub/sub comes as pushes only.
    resp3: bool,
    /// Bytes of local answers waiting behind replies (bounded: a client that keeps
    /// sending refused commands behind a blocking one is cut off).
    local_bytes: usize,
    account: Option<Arc<Credentials>>,
    login: Login,
    /// The lane may not be served now: every command is answered with this.
    refuse: Option<String>,
    tally: Tally,
}

enum Decision {
    Forward(Vec<Bytes>, Reply, bool),
    /// Answer locally: (command, why) for a refusal, or a plain Redis error.
    Refuse(String, &'static str),
    Local(Bytes),
}

impl Redis {
    pub fn new(prefix: &[u8], lane: &str, reject: bool) -> Self {
        Self {
            prefix: Bytes::copy_from_slice(prefix),
            pattern_prefix: glob_escape(prefix),
            lane: lane.to_owned(),
            reject,
            pending: VecDeque::new(),
            multi: None,
            subscribed: false,
            resp3: false,
            local_bytes: 0,
            account: None,
            login: Login::None,
            refuse: None,
            tally: Tally::default(),
        }
    }

    /// Logs the lane in as its store account before its first command (its own `AUTH`s
    /// are answered by graylane, never sent); `refuse`: the lane may not be served now.
    pub fn login(mut self, account: Option<Arc<Credentials>>, refuse: Option<String>) -> Self {
        self.login = if account.is_some() { Login::Unsent } else { Login::None };
        self.account = account;
        self.refuse = refuse;
        self
    }

    fn prefixed(&self, a: &[u8]) -> Bytes {
        concat(&self.prefix, a)
    }

    fn pattern(&self, a: &[u8]) -> Bytes {
        concat(&self.pattern_prefix, a)
    }

    fn unsupported(&mut self, name: &str, why: &'static str, args: Vec<Bytes>) -> Decision {
        if self.reject {
            // A command's name, as the client sent it, bounded (it is logged).
            let name: String = name.chars().filter(|c| !c.is_control()).take(32).collect();
            Decision::Refuse(name.to_ascii_uppercase(), why)
        } else {
            self.tally.unsupported_passed += 1;
            Decision::Forward(args, Reply::Pass, false)
        }
    }

    fn decide(&mut self, mut args: Vec<Bytes>) -> Decision {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let sub = args.get(1).map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()).unwrap_or_default();
        let refused = match (&self.refuse, &self.login) {
            (Some(why), _) => {
                Some((format!("graylane: lane '{}' may not connect here: {why}", self.lane), why_static(why)))
            }
            (None, Login::Failed(why)) => Some((
                format!("graylane: lane '{}' could not log in to the store: {why}", self.lane),
                "the lane could not log in",
            )),
            _ => None,
        };
        if let Some((text, label)) = refused {
            self.tally.rejected += 1;
            self.tally.rejections.push((name.to_ascii_uppercase().chars().take(32).collect(), label));
            return Decision::Local(error(&text));
        }
        if self.account.is_some() {
            match name.as_str() {
                // The lane's connection is the account's: the client's own credentials are
                // answered here and go nowhere.
                "auth" if self.multi.is_some() => {
                    return self.unsupported_always("auth", "AUTH inside MULTI");
                }
                "auth" => return Decision::Local(Bytes::from_static(b"+OK\r\n")),
                "hello" => return Decision::Forward(without_auth(args), Reply::Pass, false),
                "reset" => {
                    return self.unsupported_always(
                        "reset",
                        "it would log the connection out of the lane's account",
                    );
                }
                _ => {}
            }
        }
        match name.as_str() {
            "multi" | "discard" | "exec" => Decision::Forward(args, Reply::Pass, false),
            "keys" if args.len() == 2 => {
                args[1] = self.pattern(&args[1]);
                Decision::Forward(args, Reply::Keys, true)
            }
            "scan" => {
                // Redis takes the last MATCH: every one is rewritten.
                let at: Vec<usize> = (2..args.len())
                    .step_by(2)
                    .filter(|i| args[*i].eq_ignore_ascii_case(b"match") && i + 1 < args.len())
                    .collect();
                for i in &at {
                    args[i + 1] = self.pattern(&args[i + 1]);
                }
                if at.is_empty() {
                    args.push(Bytes::from_static(b"MATCH"));
                    args.push(self.pattern(b"*"));
                }
                Decision::Forward(args, Reply::Scan, true)
            }
            "subscribe" | "ssubscribe" | "psubscribe" if args.len() < 2 => {
                Decision::Local(error(&format!("wrong number of arguments for '{name}' command")))
            }
            // Inside a transaction their confirmations would come with EXEC, unmatched.
            "subscribe" | "unsubscribe" | "ssubscribe" | "sunsubscribe" | "psubscribe" | "punsubscribe"
                if self.multi.is_some() =>
            {
                self.unsupported(&name, "pub/sub inside MULTI", args)
            }
            "subscribe" | "unsubscribe" | "ssubscribe" | "sunsubscribe" => {
                for a in &mut args[1..] {
                    *a = self.prefixed(a);
                }
                self.subscribed = true;
                Decision::Forward(args, Reply::Pass, true)
            }
            "psubscribe" | "punsubscribe" => {
                for a in &mut args[1..] {
                    *a = self.pattern(a);
                }
                self.subscribed = true;
                Decision::Forward(args, Reply::Pass, true)
            }
            "publish" | "spublish" if args.len() == 3 => {
                args[1] = self.prefixed(&args[1]);
                Decision::Forward(args, Reply::Pass, true)
            }
            "pubsub" if sub == "channels" || sub == "shardchannels" => {
                let pattern = self.pattern(args.get(2).map_or(&b"*"[..], |p| &p[..]));
                args.truncate(2);
                args.push(pattern);
                Decision::Forward(args, Reply::Keys, true)
            }
            "pubsub" if sub == "numsub" || sub == "shardnumsub" => {
                for a in &mut args[2..] {
                    *a = self.prefixed(a);
                }
                Decision::Forward(args, Reply::Pairs, true)
            }
            // A script's or function's body can name any key: graylane cannot keep it in
            // the lane (with `passthrough`, its declared keys are prefixed and it runs).
            "eval" | "eval_ro" | "evalsha" | "evalsha_ro" | "fcall" | "fcall_ro" => {
                if self.reject {
                    return self.unsupported(&name, "a script can reach keys it does not declare", args);
                }
                self.tally.unsupported_passed += 1;
                self.by_specs(&name, &sub, args)
            }
            "script" if sub == "load" => {
                self.unsupported("script load", "a script can reach keys it does not declare", args)
            }
            "script" if sub == "exists" || sub == "help" => Decision::Forward(args, Reply::Pass, false),
            "sort" | "sort_ro" => self.sort(args),
            // Connection bookkeeping clients send on connect (`CLIENT SETINFO` is newer
            // than the command table): no keys, nothing shared.
            "client"
                if matches!(sub.as_str(), "setinfo" | "setname" | "getname" | "id" | "info" | "no-touch") =>
            {
                Decision::Forward(args, Reply::Pass, false)
            }
            "client" if sub == "tracking" => {
                self.unsupported("client tracking", "invalidations would name every key", args)
            }
            "hello" => {
                if args.get(1).is_some_and(|v| v.as_ref() == b"3") {
                    self.resp3 = true;
                }
                Decision::Forward(args, Reply::Pass, false)
            }
            // They change what the connection's replies are (none, or a fresh state).
            "reset" => self.unsupported(&name, "it resets the connection's state under graylane", args),
            "client" if sub == "reply" => {
                self.unsupported("client reply", "replies graylane counts on", args)
            }
            "info" | "lastsave" | "role" | "auth" | "ping" | "echo" | "select" | "quit" => {
                Decision::Forward(args, Reply::Pass, false)
            }
            "config" if sub == "get" => Decision::Forward(args, Reply::Pass, false),
            _ => self.by_specs(&name, &sub, args),
        }
    }

    /// Refused whatever `onUnsupported` says.
    fn unsupported_always(&mut self, name: &str, why: &'static str) -> Decision {
        Decision::Refuse(name.to_ascii_uppercase(), why)
    }

    /// Any other command: its keys where Redis' key specifications put them.
    fn by_specs(&mut self, name: &str, sub: &str, mut args: Vec<Bytes>) -> Decision {
        let Some(cmd) = commands::lookup(name, sub) else {
            return self.unsupported(name, "unknown command", args);
        };
        if cmd.in_category("@dangerous") || cmd.has_flag("admin") {
            return self.unsupported(name, "it reaches the whole server", args);
        }
        if cmd.specs.is_empty() {
            let data =
                ["@keyspace", "@write", "@read", "@scripting", "@pubsub"].iter().any(|c| cmd.in_category(c));
            if data && cmd.name != "help" {
                return self.unsupported(name, "it reaches keys it does not name", args);
            }
            return Decision::Forward(args, Reply::Pass, false);
        }
        let Ok(positions) = commands::key_positions(&cmd.specs, &args) else {
            return self.unsupported(name, "its keys cannot be found", args);
        };
        for i in positions {
            args[i] = self.prefixed(&args[i]);
        }
        let reply = match name {
            "blpop" | "brpop" | "bzpopmin" | "bzpopmax" | "lmpop" | "blmpop" | "zmpop" | "bzmpop" => {
                Reply::FirstKey
            }
            "xread" | "xreadgroup" => Reply::Streams,
            _ => Reply::Pass,
        };
        Decision::Forward(args, reply, true)
    }

    /// `SORT key [BY pattern] [LIMIT o c] [GET pattern …] [ASC|DESC] [ALPHA] [STORE dest]`:
    /// its key, patterns (except `#` and `nosort`) and destination.
    fn sort(&mut self, mut args: Vec<Bytes>) -> Decision {
        if args.len() < 2 {
            return Decision::Forward(args, Reply::Pass, false);
        }
        args[1] = self.prefixed(&args[1]);
        let mut i = 2;
        while i < args.len() {
            let word = args[i].to_ascii_lowercase();
            match word.as_slice() {
                b"by" | b"get" | b"store" if i + 1 < args.len() => {
                    let v = &args[i + 1];
                    let keep = v.as_ref() == b"#" || (word == b"by" && !v.contains(&b'*'));
                    if !keep {
                        args[i + 1] = self.prefixed(v);
                    }
                    i += 2;
                }
                b"limit" => i += 3,
                _ => i += 1,
            }
        }
        Decision::Forward(args, Reply::Pass, true)
    }

    /// Queues a reply expectation (inside `MULTI`, the server answers `QUEUED` now and
    /// the real reply comes with `EXEC`).
    fn expect(&mut self, name: &[u8], reply: Reply) {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if ["subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe"]
            .iter()
            .any(|n| is(n))
        {
            // Confirmations are recognized by their shape, one per channel.
            return;
        }
        if is("multi") {
            if self.multi.is_none() {
                self.multi = Some(Tx::default());
            }
            self.pending.push_back(Pending::Reply(Reply::Pass));
            return;
        }
        if is("discard") {
            self.multi = None;
            self.pending.push_back(Pending::Reply(Reply::Pass));
            return;
        }
        if is("exec") {
            let r = match self.multi.take() {
                Some(tx) => Reply::Exec(tx.replies),
                None => Reply::Pass,
            };
            self.pending.push_back(Pending::Reply(r));
            return;
        }
        match &mut self.multi {
            Some(tx) => {
                tx.replies.push(reply);
                self.pending.push_back(Pending::Reply(Reply::Pass));
            }
            None => self.pending.push_back(Pending::Reply(reply)),
        }
    }

    fn local(&mut self, answer: Bytes, down: &mut BytesMut) -> Result<(), DataError> {
        if self.pending.is_empty() {
            down.extend_from_slice(&answer);
        } else {
            self.local_bytes += answer.len();
            if self.local_bytes > MAX_LOCAL {
                return Err(DataError::Malformed {
                    protocol: "redis",
                    detail: "too many refused commands waiting behind a reply".into(),
                });
            }
            self.pending.push_back(Pending::Local(answer));
        }
        Ok(())
    }

    fn flush_locals(&mut self, down: &mut BytesMut) {
        while let Some(Pending::Local(_)) = self.pending.front() {
            if let Some(Pending::Local(b)) = self.pending.pop_front() {
                self.local_bytes -= b.len();
                down.extend_from_slice(&b);
            }
        }
    }

    fn strip(&self, v: &mut Value) {
        let p = self.prefix.len();
        match v {
            Value::Blob(_, Some(b)) if b.starts_with(&self.prefix) => *b = b.slice(p..),
            Value::Line(b'+', b) if b.starts_with(&self.prefix) => *b = b.slice(p..),
            _ => {}
        }
    }

    fn transform(&self, reply: &Reply, v: &mut Value) {
        match reply {
            Reply::Pass | Reply::Replace(_) => {}
            Reply::Keys => {
                if let Some(items) = v.elements_mut() {
                    items.iter_mut().for_each(|e| self.strip(e));
                }
            }
            Reply::Scan => {
                if let Some(keys) = v.elements_mut().and_then(|e| e.get_mut(1)).and_then(Value::elements_mut)
                {
                    keys.iter_mut().for_each(|e| self.strip(e));
                }
            }
            Reply::FirstKey => {
                if let Some(first) = v.elements_mut().and_then(|e| e.first_mut()) {
                    self.strip(first);
                }
            }
            Reply::Streams => match v {
                Value::Agg(b'%', Some(items)) => items.iter_mut().step_by(2).for_each(|k| self.strip(k)),
                Value::Agg(_, Some(items)) => {
                    for s in items {
                        if let Some(k) = s.elements_mut().and_then(|e| e.first_mut()) {
                            self.strip(k);
                        }
                    }
                }
                _ => {}
            },
            Reply::Pairs => {
                if let Some(items) = v.elements_mut() {
                    items.iter_mut().step_by(2).for_each(|k| self.strip(k));
                }
            }
            Reply::Exec(replies) => {
                if let Some(items) = v.elements_mut() {
                    for (r, item) in replies.iter().zip(items.iter_mut()) {
                        self.transform(r, item);
                    }
                }
            }
        }
    }

    /// A pub/sub message or confirmation (a RESP3 push, or a RESP2 array while
    /// subscribed): channel and pattern names lose the prefix.
    fn pubsub(&mut self, v: &mut Value) -> bool {
        let Some(items) = v.elements_mut() else { return false };
        let kind =
            items.first().and_then(Value::as_bytes).map(<[u8]>::to_ascii_lowercase).unwrap_or_default();
        let names = match kind.as_slice() {
            b"message" | b"smessage" => 1..2,
            b"pmessage" => 1..3,
            b"subscribe" | b"unsubscribe" | b"psubscribe" | b"punsubscribe" | b"ssubscribe"
            | b"sunsubscribe" => {
                // (A count of 0 does not end the pub/sub reading: a pipelined SUBSCRIBE
                // may already be on its way.)
                1..2
            }
            _ => return false,
        };
        let p = self.prefix.len();
        let pp = self.pattern_prefix.clone();
        for (i, e) in items.iter_mut().enumerate() {
            if !names.contains(&i) {
                continue;
            }
            let pattern = kind == b"pmessage" && i == 1 || kind.ends_with(b"psubscribe");
            if let Value::Blob(_, Some(b)) = e {
                if pattern && b.starts_with(&pp) {
                    *b = b.slice(pp.len()..);
                } else if b.starts_with(&self.prefix) {
                    *b = b.slice(p..);
                }
            }
        }
        true
    }
}

impl Codec for Redis {
    fn client(
        &mut self,
        input: &mut BytesMut,
        up: &mut BytesMut,
        down: &mut BytesMut,
    ) -> Result<(), DataError> {
        match &self.login {
            Login::Unsent if self.refuse.is_none() => {
                if let Some(a) = &self.account {
                    let auth = [
                        Bytes::from_static(b"AUTH"),
                        Bytes::copy_from_slice(a.username.as_bytes()),
                        Bytes::copy_from_slice(&a.password),
                    ];
                    resp::encode_command(&auth, up);
                    self.pending.push_back(Pending::Login);
                    self.login = Login::Waiting;
                }
                return Ok(());
            }
            // The client's commands wait for the login's answer.
            Login::Waiting => return Ok(()),
            _ => {}
        }
        while let Some(args) = resp::command(input, MAX_REQUEST).map_err(malformed)? {
            if args.is_empty() {
                continue;
            }
            match self.decide(args) {
                Decision::Forward(args, reply, rewritten) => {
                    if rewritten {
                        self.tally.rewritten += 1;
                    } else {
                        self.tally.passed += 1;
                    }
                    let name = args[0].clone();
                    if name.eq_ignore_ascii_case(b"exec")
                        && let Some(tx) = &self.multi
                        && tx.poisoned
                    {
                        self.multi = None;
                        resp::encode_command(&[Bytes::from_static(b"DISCARD")], up);
                        self.pending.push_back(Pending::Reply(Reply::Replace(Bytes::from_static(
                            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
                        ))));
                        continue;
                    }
                    resp::encode_command(&args, up);
                    self.expect(&name, reply);
                }
                Decision::Refuse(command, why) => {
                    self.tally.rejected += 1;
                    self.tally.rejections.push((command.clone(), why));
                    if let Some(tx) = &mut self.multi {
                        tx.poisoned = true;
                    }
                    let text = format!("graylane: lane '{}' may not run {command} here: {why}", self.lane);
                    self.local(error(&text), down)?;
                }
                Decision::Local(answer) => {
                    if let Some(tx) = &mut self.multi {
                        tx.poisoned = true;
                    }
                    self.local(answer, down)?;
                }
            }
        }
        Ok(())
    }

    fn server(
        &mut self,
        input: &mut BytesMut,
        down: &mut BytesMut,
        _up: &mut BytesMut,
    ) -> Result<(), DataError> {
        loop {
            let n = match resp::scan(input, MAX_REPLY).map_err(malformed)? {
                Scan::Complete(n) => n,
                Scan::Incomplete(_) => return Ok(()),
            };
            let kind = input[0];
            if matches!(self.pending.front(), Some(Pending::Login)) {
                let frame = input.split_to(n);
                self.pending.pop_front();
                self.login = if frame.starts_with(b"+OK") {
                    Login::Done
                } else {
                    let who = self
                        .account
                        .as_ref()
                        .map(|a| format!("{} ({})", a.username, a.secret))
                        .unwrap_or_default();
                    let said = String::from_utf8_lossy(&frame[1..frame.len().min(200)]).trim().to_owned();
                    Login::Failed(format!("its store account {who} was refused: {said}"))
                };
                self.flush_locals(down);
                continue;
            }
            if kind == b'>' || (self.subscribed && !self.resp3 && kind == b'*') {
                let frame = input.split_to(n).freeze();
                let mut v = resp::parse(&frame).map_err(malformed)?;
                if self.pubsub(&mut v) {
                    v.encode(down);
                    continue;
                }
                match self.next_reply() {
                    Reply::Replace(b) => down.extend_from_slice(&b),
                    reply => {
                        self.transform(&reply, &mut v);
                        v.encode(down);
                    }
                }
                self.flush_locals(down);
                continue;
            }
            match self.next_reply() {
                Reply::Pass => down.extend_from_slice(&input.split_to(n)),
                Reply::Replace(b) => {
                    let _ = input.split_to(n);
                    down.extend_from_slice(&b);
                }
                reply => {
                    let frame = input.split_to(n).freeze();
                    let mut v = resp::parse(&frame).map_err(malformed)?;
                    self.transform(&reply, &mut v);
                    v.encode(down);
                }
            }
            self.flush_locals(down);
        }
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }

    fn need(&self, client: bool, input: &[u8]) -> Option<usize> {
        if client && input.first() != Some(&b'*') {
            return None;
        }
        match resp::scan(input, if client { MAX_REQUEST } else { MAX_REPLY }) {
            Ok(Scan::Incomplete(n)) => Some(n),
            _ => None,
        }
    }

    fn over_budget(&mut self, down: &mut BytesMut, why: &str) {
        self.tally.rejected += 1;
        self.tally.rejections.push(("(connection)".into(), "over the data-lane memory budget"));
        down.extend_from_slice(&error(&format!("graylane: lane '{}' connection closed: {why}", self.lane)));
    }
}

impl Redis {
    /// The expectation for the next reply (a reply nobody asked for passes).
    fn next_reply(&mut self) -> Reply {
        match self.pending.pop_front() {
            Some(Pending::Reply(r)) => r,
            Some(p @ (Pending::Local(_) | Pending::Login)) => {
                // Cannot happen (locals are sent as soon as they are first; the login's
                // answer is read first): keep order.
                self.pending.push_front(p);
                Reply::Pass
            }
            None => Reply::Pass,
        }
    }
}

/// `HELLO [protover] [AUTH user pass] [SETNAME name]` without its `AUTH`.
fn without_auth(args: Vec<Bytes>) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    out.extend(it.next());
    while let Some(a) = it.next() {
        if a.eq_ignore_ascii_case(b"auth") {
            it.next();
            it.next();
        } else {
            out.push(a);
        }
    }
    out
}

/// A refusal's reason, bounded to a few known texts (they label the access log).
fn why_static(why: &str) -> &'static str {
    if why.contains("rewrite-only") {
        "its store account is not store-enforced"
    } else {
        "the lane may not be served now"
    }
}

fn malformed(e: RespError) -> DataError {
    DataError::Malformed { protocol: "redis", detail: e.to_string() }
}

fn error(text: &str) -> Bytes {
    let clean: String = text.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
    Bytes::from(format!("-ERR {clean}\r\n"))
}

fn concat(a: &[u8], b: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v.into()
}

/// `prefix` with the glob's special characters escaped (`*?[]\`).
fn glob_escape(prefix: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(prefix.len() + 4);
    for &c in prefix {
        if matches!(c, b'*' | b'?' | b'[' | b']' | b'\\') {
            v.push(b'\\');
        }
        v.push(c);
    }
    v.into()
}

#[cfg(test)]
mod tests;
