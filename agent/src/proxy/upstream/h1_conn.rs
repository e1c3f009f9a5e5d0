//! An HTTP/1.1 upstream connection's pieces as the pool and a downstream connection share
//! them: its key, its I/O future (polled by its own task, by its downstream connection's,
//! or by nobody while parked idle), and where an idle one goes.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use hyper::client::conn::http1;

use super::req_body::ReqBody;
use crate::vocab::UpstreamAddr;

/// Connections are reused only for the same origin (its `Origin::key`) and endpoint.
pub type Key = (u64, UpstreamAddr);

/// An HTTP/1.1 connection's I/O, driven by whoever polls it.
pub type ConnFuture = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

pub type Sender = http1::SendRequest<ReqBody>;

/// Where idle connections are kept for any caller (the pool).
pub trait IdleConns: Send + Sync {
    /// An idle connection driven by its own task.
    fn checkin(&self, key: Key, sender: Sender);
    /// An idle connection nobody drives any more, idle `since`: kept undriven until
    /// taken, or closed.
    fn park(&self, key: Key, sender: Sender, conn: ConnFuture, since: Instant);
    /// How long an idle connection is kept.
    fn idle_timeout(&self) -> Duration;
}

/// Runs a connection on a task of its own until it ends.
pub fn detach(to: UpstreamAddr, conn: ConnFuture) {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(upstream = %to, error = %e, "upstream connection ended with an error");
        }
    });
}
