//! Upstream connections, reused: HTTP/1.1 connections go back to an idle list per
//! (origin, endpoint) when their response has been read to the end (bounded in total by
//! the descriptor budget and per calling pod by a quarter of it, closed after an idle
//! timeout); an HTTP/2 connection per (origin, endpoint) carries every request to it. A
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
    dial::Dial, idle_body::IdleBodyError, namespaces::Namespaces, origin::Origin, req_body::ReqBody,
};
use crate::{
    proxy::error::{ErrorKind, ProxyError, connect_failed},
    telemetry::metrics,
    vocab::UpstreamAddr,
};

/// Idle HTTP/1.1 connections kept per endpoint at most.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// Connections are reused only for the same origin (its [`Origin::key`]) and endpoint.
type Key = (u64, UpstreamAddr);

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
    sender: http1::SendRequest<ReqBody>,
    since: Instant,
}

/// A response body from a pooled HTTP/1.1 connection: the connection goes back to the pool
/// when the body has been read to its end (dropped early, the connection closes).
pub struct Pooled {
    body: Incoming,
    back: Option<(Arc<Pool>, Key, http1::SendRequest<ReqBody>)>,
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
    /// connection when one is idle. The request's URI must be origin-form for HTTP/1.1 and
    /// carry the authority for HTTP/2.
    pub async fn send(
        self: &Arc<Self>,
        from: &Origin,
        to: UpstreamAddr,
        h2: bool,
        req: Request<ReqBody>,
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
            let mut sender = match reused {
                true => self.ready_idle(key).await,
                false => None,
            };
            reused = sender.is_some();
            let mut sender = match sender.take() {
                Some(s) => s,
                None => self.h1_connect(from, to).await?,
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    let back = (!upgrade).then(|| (self.clone(), key, sender));
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

    /// An idle connection for `key` that is open and ready for a request, if any.
    async fn ready_idle(&self, key: Key) -> Option<http1::SendRequest<ReqBody>> {
        while let Some(mut sender) = self.checkout(key) {
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
        None
    }

    /// An idle connection for `key` that is still open, if any.
    fn checkout(&self, key: Key) -> Option<http1::SendRequest<ReqBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let i = idle.lists.get_mut(&key)?.pop()?;
            idle.taken(key.0);
            if !i.sender.is_closed() && i.since.elapsed() < self.idle_timeout {
                metrics().upstream.connections.with_label_values(&["reused"]).inc();
                return Some(i.sender);
            }
        }
    }

    fn checkin(&self, key: Key, sender: http1::SendRequest<ReqBody>) {
        if sender.is_closed() {
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
        list.push(Idle { sender, since: Instant::now() });
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

    async fn h1_connect(
        &self,
        from: &Origin,
        to: UpstreamAddr,
    ) -> Result<http1::SendRequest<ReqBody>, ProxyError> {
        let io = self.dial(from, to).await?;
        let (sender, conn) =
            http1::Builder::new().max_buf_size(64 * 1024).handshake(TokioIo::new(io)).await.map_err(|e| {
                ProxyError::new(ErrorKind::ConnectFailure, format!("handshake with {to}: {e}"))
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(upstream = %to, error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    async fn h2_sender(&self, from: &Origin, key: Key) -> Result<http2::SendRequest<ReqBody>, ProxyError> {
        let to = key.1;
        let cached =
            self.h2.lock().unwrap_or_else(|p| p.into_inner()).get(&key).filter(|s| !s.is_closed()).cloned();
        let mut sender = match cached {
            Some(s) => {
                metrics().upstream.connections.with_label_values(&["reused"]).inc();
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
        metrics().upstream.connections.with_label_values(&["opened"]).inc();
        Ok(io)
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
            && let Some((pool, to, sender)) = self.back.take()
        {
            pool.checkin(to, sender);
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
            && let Some((pool, to, sender)) = self.back.take()
        {
            pool.checkin(to, sender);
        }
    }
}
