//! Upstream connections, reused: HTTP/1.1 connections go back to an idle list per
//! (origin, endpoint) when their response has been read to the end (bounded in total by
//! the descriptor budget and per calling pod by a quarter of it, closed after an idle
//! timeout) — or stay with their HTTP/1.1 downstream connection, driven by its task
//! ([`LocalConn`]), and are parked here undriven when it moves on; an HTTP/2 connection
//! per (origin, endpoint) carries every request to it. A
//! connection made from one pod's address never carries another pod's request. The pool
//! is keyed by endpoint, not authority, so the request keeps its own authority (`:authority`
//! and `Host` name the service the caller asked for, not an address).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::{
    dial::Dial,
    h1_conn::{ConnFuture, IdleConns, Key, Sender, detach},
    idle_body::IdleBodyError,
    local::{Adopted, LocalConn},
    namespaces::Namespaces,
    origin::Origin,
    req_body::ReqBody,
};
use crate::{
    proxy::error::{ErrorKind, ProxyError, connect_failed},
    telemetry::metrics,
    vocab::UpstreamAddr,
};

/// Idle HTTP/1.1 connections kept per endpoint at most.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

pub struct Pool {
    dial: Arc<dyn Dial>,
    connect_timeout: Duration,
    idle: Mutex<IdleLists>,
    max_idle: usize,
    /// Idle connections one calling pod may hold (the node's origin: `max_idle`).
    max_idle_per_origin: usize,
    idle_timeout: Duration,
    h2: Mutex<HashMap<Key, http2::SendRequest<ReqBody>>>,
    /// The pods' namespaces: connections from a namespace no longer held are closed.
    namespaces: Option<Arc<Namespaces>>,
    counters: Counters,
}

/// `graylane_upstream_connections_total`'s children, looked up once.
struct Counters {
    opened: prometheus::IntCounter,
    reused: prometheus::IntCounter,
}

#[derive(Default)]
struct IdleLists {
    lists: HashMap<Key, Vec<Idle>>,
    /// Idle connections in all, and per origin.
    total: usize,
    per_origin: HashMap<u64, usize>,
}

impl IdleLists {
    fn taken(&mut self, origin: u64) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_origin.get_mut(&origin) {
            *n = n.saturating_sub(1);
        }
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
    /// Parked: nobody polls the connection until it is taken.
    parked: Option<ConnFuture>,
}

/// A response body from a pooled HTTP/1.1 connection: the connection goes back (to the
/// pool, or to its downstream connection) when the body has been read to its end (dropped
/// early, the connection closes).
pub struct Pooled {
    body: Incoming,
    back: Option<Back>,
}

struct Back {
    pool: Arc<Pool>,
    key: Key,
    sender: Sender,
    /// The downstream connection that drives it, if one does (and its id there).
    local: Option<Home>,
}

type Home = (Arc<LocalConn>, u64);

impl Back {
    fn give(self) {
        match self.local {
            Some((local, id)) => local.checkin(id, self.key, self.sender),
            None => self.pool.checkin(self.key, self.sender),
        }
    }
}

impl Pool {
    /// `max_idle`: idle connections the descriptor budget allows over every endpoint.
    /// Starts the idle reaper (inside the runtime).
    pub fn new(
        dial: Arc<dyn Dial>,
        connect_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
        namespaces: Option<Arc<Namespaces>>,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            dial,
            connect_timeout,
            idle: Mutex::new(IdleLists::default()),
            max_idle,
            max_idle_per_origin: (max_idle / 4).max(1),
            idle_timeout,
            h2: Mutex::new(HashMap::new()),
            namespaces,
            counters: Counters {
                opened: metrics().upstream.connections.with_label_values(&["opened"]),
                reused: metrics().upstream.connections.with_label_values(&["reused"]),
            },
        });
        let weak = Arc::downgrade(&pool);
        tokio::spawn(async move {
            let every = (idle_timeout / 2).max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = weak.upgrade() else { return };
                pool.reap();
            }
        });
        pool
    }

    /// Sends `req` from `from` to `to` over HTTP/2 (`h2`) or HTTP/1.1, on a reused
    /// connection when one is idle: over HTTP/1.1 the `local` downstream connection's own
    /// first, and a connection it takes or opens stays with it. The request's URI must be
    /// origin-form for HTTP/1.1 and carry the authority for HTTP/2.
    pub async fn send(
        self: &Arc<Self>,
        from: &Origin,
        to: UpstreamAddr,
        h2: bool,
        req: Request<ReqBody>,
        local: Option<&Arc<LocalConn>>,
    ) -> Result<Response<Pooled>, ProxyError> {
        let key = (from.key(), to);
        if h2 {
            let mut sender = self.h2_sender(from, key).await?;
            let resp = sender.send_request(req).await.map_err(|e| classify(&e, to))?;
            return Ok(resp.map(|body| Pooled { body, back: None }));
        }
        let mut req = req;
        let mut reused = true;
        loop {
            let idle = match reused {
                true => self.ready_idle(key, local).await,
                false => None,
            };
            reused = idle.is_some();
            let (mut sender, home) = match idle {
                Some(s) => s,
                None => {
                    let (sender, conn) = self.h1_connect(from, to).await?;
                    (sender, self.place(key, conn, local).unwrap_or_default())
                }
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    let back = (!upgrade).then(|| Back { pool: self.clone(), key, sender, local: home });
                    return Ok(resp.map(|body| Pooled { body, back }));
                }
                // A reused connection the server closed just now gives the request back
                // unsent: it goes on a fresh connection (once).
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => {
                        req = unsent;
                        reused = false;
                    }
                    _ => return Err(classify(e.error(), to)),
                },
            }
        }
    }

    /// An idle connection for `key` that is open and ready for a request, if any: the
    /// `local` downstream connection's own, else one from the idle lists (which stays with
    /// `local` if it was parked), with the downstream connection that drives it.
    async fn ready_idle(&self, key: Key, local: Option<&Arc<LocalConn>>) -> Option<(Sender, Option<Home>)> {
        if let Some(local) = local
            && let Some((mut sender, id)) = local.take(key)
            && sender.ready().await.is_ok()
        {
            self.counters.reused.inc();
            return Some((sender, Some((local.clone(), id))));
        }
        while let Some((mut sender, parked)) = self.checkout(key) {
            let home = match parked {
                Some(conn) => match self.place(key, conn, local) {
                    Some(home) => home,
                    None => continue, // it had ended while parked
                },
                None => None,
            };
            if sender.ready().await.is_ok() {
                return Some((sender, home));
            }
        }
        None
    }

    /// Who polls a connection from now on: the `local` downstream connection if it has
    /// room, else a task of its own. `None`: the connection had already ended.
    fn place(&self, key: Key, conn: ConnFuture, local: Option<&Arc<LocalConn>>) -> Option<Option<Home>> {
        let conn = match local {
            Some(l) => match l.adopt(key, conn) {
                Adopted::Driven(id) => return Some(Some((l.clone(), id))),
                Adopted::Ended => return None,
                Adopted::Busy(conn) => conn,
            },
            None => conn,
        };
        detach(key.1, conn);
        Some(None)
    }

    /// An idle connection for `key` that is still open, if any (and its connection future
    /// if it was parked).
    fn checkout(&self, key: Key) -> Option<(Sender, Option<ConnFuture>)> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let i = idle.lists.get_mut(&key)?.pop()?;
            idle.taken(key.0);
            if !i.sender.is_closed() && i.since.elapsed() < self.idle_timeout {
                self.counters.reused.inc();
                return Some((i.sender, i.parked));
            }
        }
    }

    /// Keeps a connection idle `since` (closed instead if it is past the idle timeout).
    fn keep_idle(&self, key: Key, sender: Sender, parked: Option<ConnFuture>, since: Instant) {
        if sender.is_closed() || since.elapsed() >= self.idle_timeout {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let IdleLists { lists, total, per_origin } = &mut *idle;
        if *total >= self.max_idle {
            return; // over budget: the connection closes
        }
        let of_origin = per_origin.entry(key.0).or_default();
        let list = lists.entry(key).or_default();
        // One pod's idle connections cannot take the node's whole idle budget.
        let origin_full = key.0 != 0 && *of_origin >= self.max_idle_per_origin;
        if list.len() >= MAX_IDLE_PER_ENDPOINT || origin_full {
            return;
        }
        *of_origin += 1;
        *total += 1;
        list.push(Idle { sender, since, parked });
    }

    /// Closes idle connections past the idle timeout and those (HTTP/2 ones too) from a
    /// pod's namespace no longer held (the pod left), and forgets closed ones.
    fn reap(&self) {
        let live = self.namespaces.as_ref().map(|n| n.live());
        let held = |origin: u64| origin == 0 || live.as_ref().is_none_or(|l| l.contains(&origin));
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept = 0;
        let mut per_origin: HashMap<u64, usize> = HashMap::new();
        idle.lists.retain(|key, list| {
            if !held(key.0) {
                list.clear();
            }
            list.retain(|i| !i.sender.is_closed() && i.since.elapsed() < self.idle_timeout);
            kept += list.len();
            if !list.is_empty() {
                *per_origin.entry(key.0).or_default() += list.len();
            }
            !list.is_empty()
        });
        idle.per_origin = per_origin;
        idle.total = kept;
        metrics().upstream.idle.set(kept as i64);
        drop(idle);
        self.h2.lock().unwrap_or_else(|p| p.into_inner()).retain(|key, s| held(key.0) && !s.is_closed());
    }

    /// A new HTTP/1.1 connection, not yet polled by anyone (see [`Pool::place`]).
    async fn h1_connect(&self, from: &Origin, to: UpstreamAddr) -> Result<(Sender, ConnFuture), ProxyError> {
        let io = self.dial(from, to).await?;
        let (sender, conn) =
            http1::Builder::new().max_buf_size(64 * 1024).handshake(TokioIo::new(io)).await.map_err(|e| {
                ProxyError::new(ErrorKind::ConnectFailure, format!("handshake with {to}: {e}"))
            })?;
        Ok((sender, Box::pin(conn.with_upgrades())))
    }

    async fn h2_sender(&self, from: &Origin, key: Key) -> Result<http2::SendRequest<ReqBody>, ProxyError> {
        let to = key.1;
        let cached =
            self.h2.lock().unwrap_or_else(|p| p.into_inner()).get(&key).filter(|s| !s.is_closed()).cloned();
        let mut sender = match cached {
            Some(s) => {
                self.counters.reused.inc();
                s
            }
            None => {
                let io = self.dial(from, to).await?;
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(TokioIo::new(io))
                    .await
                    .map_err(|e| {
                        ProxyError::new(ErrorKind::ConnectFailure, format!("h2 handshake with {to}: {e}"))
                    })?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(upstream = %to, error = %e, "upstream h2 connection ended with an error");
                    }
                });
                self.h2.lock().unwrap_or_else(|p| p.into_inner()).insert(key, sender.clone());
                sender
            }
        };
        sender.ready().await.map_err(|e| classify(&e, to))?;
        Ok(sender)
    }

    async fn dial(&self, from: &Origin, to: UpstreamAddr) -> Result<super::dial::BoxIo, ProxyError> {
        let io = self.dial.dial(from, to).await.map_err(|e| {
            if let Some(namespaces) = &self.namespaces {
                namespaces.connect_failed(from, &e);
            }
            connect_failed(&e, to, self.connect_timeout)
        })?;
        self.counters.opened.inc();
        Ok(io)
    }
}

impl IdleConns for Pool {
    fn checkin(&self, key: Key, sender: Sender) {
        self.keep_idle(key, sender, None, Instant::now());
    }

    /// Parked by a downstream connection that moved on or ended.
    fn park(&self, key: Key, sender: Sender, conn: ConnFuture, since: Instant) {
        self.keep_idle(key, sender, Some(conn), since);
    }

    fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
}

/// An upstream client error as the request path sees it: the caller's own body failing is
/// the caller's; otherwise the connection broke.
fn classify(e: &hyper::Error, to: UpstreamAddr) -> ProxyError {
    let chain = std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| (*e).source());
    let mut detail = format!("{to}: {e}");
    for (i, s) in chain.enumerate() {
        if let Some(body) = s.downcast_ref::<IdleBodyError>() {
            let kind = match body {
                IdleBodyError::Idle(_) => ErrorKind::RequestBodyTimeout,
                IdleBodyError::Body(_) => ErrorKind::BadRequestBody,
            };
            return ProxyError::new(kind, body.to_string());
        }
        if i > 0 {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
        }
    }
    ProxyError::new(ErrorKind::Reset, detail)
}

impl Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = frame
            && let Some(back) = self.back.take()
        {
            back.give();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // A body with nothing in it (HEAD, 204, 304) may never be polled to its end.
        if self.body.is_end_stream()
            && let Some(back) = self.back.take()
        {
            back.give();
        }
    }
}
