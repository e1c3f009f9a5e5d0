//! An HTTP/1.1 downstream connection's own upstream connection, driven by the downstream
//! connection's task: the request goes out and its response comes back without waking
//! another task or thread, and without a pool checkout while the connection's requests go
//! to the same endpoint. One per downstream connection (the descriptor budget allows one
//! upstream connection per downstream one): a request to another endpoint parks it in the
//! shared pool (undriven until a task adopts it) and adopts or dials that endpoint's; when
//! the downstream connection ends, an idle one is parked too.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
    time::Instant,
};

use futures::task::AtomicWaker;

use super::h1_conn::{ConnFuture, IdleConns, Key, Sender, detach};

/// A pass over the connection and its upstream one is repeated while either woke the
/// other, at most this many times before the task yields (tokio's cooperative budget wakes
/// a task that exhausted it: looping on that would never end).
const MAX_PASSES: usize = 8;

pub struct LocalConn {
    pool: Arc<dyn IdleConns>,
    slot: Mutex<Slot>,
    wake: Arc<Wakeup>,
    /// The wakers handed to the upstream connection and to the downstream one (made once).
    conn_waker: Waker,
    down_waker: Waker,
}

#[derive(Default)]
struct Slot {
    conn: Option<Held>,
    /// The downstream connection has ended: nothing is adopted any more.
    released: bool,
    /// Ids of the connections held, in turn: a sender comes back only to its own.
    next: u64,
}

struct Held {
    id: u64,
    key: Key,
    conn: ConnFuture,
    /// `None` while a request uses the connection.
    idle: Option<Sender>,
    /// When it was last given back.
    since: Instant,
}

impl LocalConn {
    pub fn new(pool: Arc<dyn IdleConns>) -> Arc<Self> {
        let wake = Arc::new(Wakeup::default());
        let (conn_waker, down_waker) = (Side::waker(&wake, CONN), Side::waker(&wake, DOWN));
        Arc::new(Self { pool, slot: Mutex::new(Slot::default()), wake, conn_waker, down_waker })
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The idle connection to `key` (and its id), if this downstream connection holds
    /// one. One to another endpoint is parked in the pool (a request at a time: it is not
    /// needed now); one idle past the pool's timeout, or closed, is closed and let go.
    pub(super) fn take(&self, key: Key) -> Option<(Sender, u64)> {
        let mut slot = self.slot();
        let held = slot.conn.as_mut()?;
        held.idle.as_ref()?;
        if held.key == key {
            let fresh = held.since.elapsed() < self.pool.idle_timeout();
            if let Some(sender) = held.idle.take().filter(|s| fresh && !s.is_closed()) {
                return Some((sender, held.id));
            }
            slot.conn = None; // closes it
            return None;
        }
        if let Some(Held { key, conn, idle: Some(sender), since, .. }) = slot.conn.take() {
            drop(slot);
            self.pool.park(key, sender, conn, since);
        }
        None
    }

    /// Drives `conn` here from now on, if the slot is free. The connection is polled once
    /// at once: one that was parked while its server closed it ends now instead of taking
    /// the request.
    pub(super) fn adopt(&self, key: Key, mut conn: ConnFuture) -> Adopted {
        let mut slot = self.slot();
        if slot.released || slot.conn.is_some() {
            return Adopted::Busy(conn);
        }
        if conn.as_mut().poll(&mut Context::from_waker(&self.conn_waker)).is_ready() {
            return Adopted::Ended;
        }
        slot.next += 1;
        let id = slot.next;
        slot.conn = Some(Held { id, key, conn, idle: None, since: Instant::now() });
        Adopted::Driven(id)
    }

    /// The response has been read to its end: connection `id` is idle again.
    pub(super) fn checkin(&self, id: u64, key: Key, sender: Sender) {
        let mut slot = self.slot();
        let released = slot.released;
        match slot.conn.as_mut() {
            Some(held) if held.id == id && held.idle.is_none() && !released => {
                held.idle = Some(sender);
                held.since = Instant::now();
            }
            // Released meanwhile (its connection was detached and runs on its own), or
            // its connection ended (the sender is closed: the pool drops it).
            _ => {
                drop(slot);
                self.pool.checkin(key, sender);
            }
        }
    }

    /// The downstream connection has ended: an idle connection is parked in the pool, one
    /// still in use (a body read elsewhere) runs on its own task to its end.
    pub fn release(&self) {
        let mut slot = self.slot();
        slot.released = true;
        let Some(Held { key, conn, idle, since, .. }) = slot.conn.take() else { return };
        drop(slot);
        match idle {
            Some(sender) => self.pool.park(key, sender, conn, since),
            None => detach(key.1, conn),
        }
    }

    /// `fut` (the downstream connection) and the upstream connection, polled together on
    /// this task. Both are due at the first poll (a bit left by an earlier driver, which a
    /// select dropped, says nothing of the other side).
    pub fn drive<'a, F: Future>(&'a self, fut: Pin<&'a mut F>) -> Driven<'a, F> {
        self.wake.woken.fetch_or(CONN | DOWN, Ordering::SeqCst);
        Driven { local: self, fut }
    }

    fn poll_conn(&self, cx: &mut Context<'_>) {
        let mut slot = self.slot();
        let ended = match slot.conn.as_mut() {
            Some(held) => held.conn.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if ended {
            slot.conn = None;
        }
    }
}

/// What became of a connection offered to [`LocalConn::adopt`].
pub(super) enum Adopted {
    /// Driven here, as connection `id`.
    Driven(u64),
    /// It had ended (its server closed it while it was parked).
    Ended,
    /// The slot is taken: the caller runs the connection on its own task.
    Busy(ConnFuture),
}

/// See [`LocalConn::drive`].
pub struct Driven<'a, F> {
    local: &'a LocalConn,
    fut: Pin<&'a mut F>,
}

impl<F: Future> Future for Driven<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let local = self.local;
        let wake = &local.wake;
        wake.parent.register(cx.waker());
        wake.polling.store(true, Ordering::SeqCst);
        // The sides that were woken (none: another branch of the caller's select was).
        let mut due = wake.woken.swap(0, Ordering::SeqCst);
        for pass in 1.. {
            if due & CONN != 0 {
                local.poll_conn(&mut Context::from_waker(&local.conn_waker));
            }
            if due & DOWN != 0
                && let Poll::Ready(out) = self.fut.as_mut().poll(&mut Context::from_waker(&local.down_waker))
            {
                wake.polling.store(false, Ordering::SeqCst);
                return Poll::Ready(out);
            }
            due = wake.woken.swap(0, Ordering::SeqCst);
            if due == 0 {
                break;
            }
            if pass == MAX_PASSES {
                wake.woken.fetch_or(due, Ordering::SeqCst);
                wake.polling.store(false, Ordering::SeqCst);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        wake.polling.store(false, Ordering::SeqCst);
        // A wake from another thread between the last pass and now.
        if wake.woken.load(Ordering::SeqCst) != 0 {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// The upstream connection's waker bit, and the downstream connection's.
const CONN: u8 = 1;
const DOWN: u8 = 2;

/// Who was woken: during a pass a wake only marks its side for another pass; otherwise
/// it marks it and wakes the task. A pass polls only the sides marked.
#[derive(Default)]
struct Wakeup {
    parent: AtomicWaker,
    polling: AtomicBool,
    woken: AtomicU8,
}

/// One side's waker.
struct Side {
    wakeup: Arc<Wakeup>,
    bit: u8,
}

impl Side {
    fn waker(wakeup: &Arc<Wakeup>, bit: u8) -> Waker {
        Waker::from(Arc::new(Side { wakeup: wakeup.clone(), bit }))
    }
}

impl Wake for Side {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Marked first, then the task woken unless a pass is on (which sees the mark: the
        // pass clears `polling` before it reads `woken`).
        let w = &self.wakeup;
        w.woken.fetch_or(self.bit, Ordering::SeqCst);
        if !w.polling.load(Ordering::SeqCst) {
            w.parent.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::AtomicUsize, time::Duration};

    use super::*;

    /// No pool: these tests drive no upstream connection.
    struct NoPool;

    impl IdleConns for NoPool {
        fn checkin(&self, _: Key, _: Sender) {}
        fn park(&self, _: Key, _: Sender, _: ConnFuture, _: Instant) {}
        fn idle_timeout(&self) -> Duration {
            Duration::from_secs(30)
        }
    }

    /// The task's waker: counts its wakes.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A future that wakes itself `n` times before it is ready.
    struct SelfWaking {
        left: usize,
        polls: usize,
    }

    impl Future for SelfWaking {
        type Output = usize;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.left == 0 {
                return Poll::Ready(self.polls);
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn poll_once<F: Future>(local: &LocalConn, fut: Pin<&mut F>, task: &Arc<Counting>) -> Poll<F::Output> {
        let waker = Waker::from(task.clone());
        let mut driven = local.drive(fut);
        Pin::new(&mut driven).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_wake_during_a_pass_is_another_pass_not_a_wake_of_the_task() {
        let local = LocalConn::new(Arc::new(NoPool));
        let task = Arc::new(Counting::default());
        let mut fut = std::pin::pin!(SelfWaking { left: 3, polls: 0 });
        assert_eq!(poll_once(&local, fut.as_mut(), &task), Poll::Ready(4));
        assert_eq!(task.0.load(Ordering::SeqCst), 0, "the task was never woken");
    }

    #[test]
    fn a_side_that_always_wakes_itself_yields_after_the_pass_cap() {
        let local = LocalConn::new(Arc::new(NoPool));
        let task = Arc::new(Counting::default());
        let mut fut = std::pin::pin!(SelfWaking { left: usize::MAX, polls: 0 });
        assert_eq!(poll_once(&local, fut.as_mut(), &task), Poll::Pending);
        assert_eq!(fut.polls, MAX_PASSES, "capped");
        assert_eq!(task.0.load(Ordering::SeqCst), 1, "woken once to go on later");
    }

    #[test]
    fn a_wake_outside_a_pass_wakes_the_task_and_a_new_driver_polls_both_sides() {
        let local = LocalConn::new(Arc::new(NoPool));
        let task = Arc::new(Counting::default());
        let mut fut = std::pin::pin!(SelfWaking { left: 0, polls: 0 });
        // An upstream wake left over from an earlier driver (a select dropped it).
        local.conn_waker.wake_by_ref();
        assert_eq!(task.0.load(Ordering::SeqCst), 0, "no task registered yet");
        assert_eq!(
            poll_once(&local, fut.as_mut(), &task),
            Poll::Ready(1),
            "the downstream side is polled too"
        );
        // Registered now: a wake from outside a pass (another thread's) wakes the task.
        let idle = Arc::new(Counting::default());
        let mut pending = std::pin::pin!(std::future::pending::<()>());
        assert_eq!(poll_once(&local, pending.as_mut(), &idle), Poll::Pending);
        let down = local.down_waker.clone();
        std::thread::spawn(move || down.wake()).join().expect("waker thread");
        assert_eq!(idle.0.load(Ordering::SeqCst), 1);
    }
}
