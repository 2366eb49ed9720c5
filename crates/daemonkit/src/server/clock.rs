//! The connection clock: which phase a connection is in and the one deadline that
//! applies, fed by the byte stream, the request body, the service and the response body.
//!
//! hyper's own `header_read_timeout` starts counting as soon as it waits for a request,
//! so it cannot tell a keep-alive connection resting between requests (fine for a while)
//! from a client trickling a request head (slowloris), and hyper has no body or write
//! deadline at all. The [`ConnClock`] keeps them: it learns from the byte stream
//! ([`TimedIo`]) when a request head begins and when a response has been flushed, from
//! the request body ([`RequestBody`]) when the body has been read, from the service when
//! a request starts and its response is ready, and from the response body
//! ([`ResponseBody`]) when hyper has taken all of it. It keeps the one deadline that
//! applies:
//!
//! | phase | starts when | deadline (from the start of the phase) |
//! |---|---|---|
//! | `Head` | the connection is accepted, or the first byte after `Idle` arrives | header read timeout |
//! | `Body` | the head was parsed and a component route was called with a body still to come | body read timeout |
//! | `Busy` | the body is read (or there is none), the handler runs | none |
//! | `Write` | the response is ready | write timeout |
//! | `Idle` | the whole response has been flushed to the socket | idle timeout |
//!
//! Every deadline is a total time counted from the start of its phase and never moved
//! by traffic, so a client trickling a byte at a time gains nothing. A connection whose
//! deadline passes is closed.
//!
//! The clock also tells the accept loop which connections it may reclaim at the
//! connection cap ([`ConnClock::reclaim_rank`]): idle ones first, then those waiting on
//! their client (head, body, write), oldest first; never one whose handler runs.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::limits::Limits;

pub(crate) const NO_DEADLINE: u64 = u64::MAX;

pub(crate) const HEAD: u8 = 0;
pub(crate) const BODY: u8 = 1;
pub(crate) const BUSY: u8 = 2;
pub(crate) const WRITE: u8 = 3;
pub(crate) const IDLE: u8 = 4;

// ===== ConnClock =====

/// The phase of one connection and the deadline that goes with it.
///
/// Only the connection's own task changes it (the I/O wrapper, the bodies and the
/// service future are all polled or dropped from inside the connection future), so
/// `Relaxed` is enough for its own reads: the runtime orders a task's polls even when it
/// moves between threads. The accept loop reads the phase and its start to choose a
/// connection to reclaim; a stale read there only picks a slightly worse victim, and a
/// reclaimed connection that just became busy finishes its request first (see
/// [`serve`]).
pub(crate) struct ConnClock {
    /// The server's epoch, shared by all connections so their phase starts compare.
    epoch: Instant,
    header_nanos: u64,
    body_nanos: u64,
    write_nanos: u64,
    idle_nanos: u64,
    phase: AtomicU8,
    /// When the current phase began, nanoseconds after `epoch`.
    since: AtomicU64,
    /// Nanoseconds after `epoch`, or `NO_DEADLINE`.
    deadline: AtomicU64,
    /// hyper has dropped the response body: what is left is in its write buffer.
    response_taken: AtomicBool,
    /// Bytes of a next (pipelined) request arrived before the response was out.
    head_pending: AtomicBool,
    /// The accept loop chose this connection to close, to make room at the cap.
    pub(crate) reclaimed: AtomicBool,
}

impl ConnClock {
    /// A clock for a connection accepted now: it has the header read timeout to send its
    /// first request head.
    pub(crate) fn new(epoch: Instant, limits: &Limits) -> ConnClock {
        let clock = ConnClock {
            epoch,
            header_nanos: nanos(limits.header_read_timeout),
            body_nanos: nanos(limits.body_read_timeout),
            write_nanos: nanos(limits.write_timeout),
            idle_nanos: nanos(limits.idle_timeout),
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(0),
            deadline: AtomicU64::new(NO_DEADLINE),
            response_taken: AtomicBool::new(false),
            head_pending: AtomicBool::new(false),
            reclaimed: AtomicBool::new(false),
        };
        clock.enter(HEAD, clock.header_nanos);
        clock
    }

    pub(crate) fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    pub(crate) fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    /// Enters `phase` now, with a deadline `limit` from now (`NO_DEADLINE` for none).
    pub(crate) fn enter(&self, phase: u8, limit: u64) {
        let now = self.now();
        self.phase.store(phase, Ordering::Relaxed);
        self.since.store(now, Ordering::Relaxed);
        let deadline = if limit == NO_DEADLINE {
            NO_DEADLINE
        } else {
            now.saturating_add(limit).min(NO_DEADLINE - 1)
        };
        self.deadline.store(deadline, Ordering::Relaxed);
    }

    /// The service was called with a parsed request head.
    pub(crate) fn request_started(&self) {
        self.response_taken.store(false, Ordering::Relaxed);
        self.head_pending.store(false, Ordering::Relaxed);
        self.enter(BUSY, NO_DEADLINE);
    }

    /// The request has a body still to be read by a component's handler: the body read
    /// timeout runs until it has all arrived.
    pub(crate) fn body_pending(&self) {
        if self.phase() == BUSY {
            self.enter(BODY, self.body_nanos);
        }
    }

    /// The request body has been read to its end, failed, or was dropped by the handler:
    /// from here the handler may take as long as it needs.
    pub(crate) fn body_finished(&self) {
        if self.phase() == BODY {
            self.enter(BUSY, NO_DEADLINE);
        }
    }

    /// The response is ready: it must be written within the write timeout.
    pub(crate) fn response_ready(&self) {
        self.enter(WRITE, self.write_nanos);
    }

    /// hyper has taken the whole response body; it is written once hyper flushes.
    pub(crate) fn response_taken(&self) {
        self.response_taken.store(true, Ordering::Relaxed);
    }

    /// hyper's write buffer is empty and the socket flushed.
    pub(crate) fn flushed(&self) {
        if self.phase() == WRITE && self.response_taken.load(Ordering::Relaxed) {
            if self.head_pending.load(Ordering::Relaxed) {
                // The next request's head began before the response was out: it has
                // the header timeout from now, not the idle timeout.
                self.enter(HEAD, self.header_nanos);
            } else {
                self.enter(IDLE, self.idle_nanos);
            }
        }
    }

    pub(crate) fn bytes_read(&self) {
        match self.phase() {
            IDLE => self.enter(HEAD, self.header_nanos),
            // Once the body is in, more bytes are a next (pipelined) request.
            BUSY | WRITE => self.head_pending.store(true, Ordering::Relaxed),
            _ => {}
        }
    }

    pub(crate) fn deadline(&self) -> u64 {
        self.deadline.load(Ordering::Relaxed)
    }

    pub(crate) fn instant(&self, deadline: u64) -> Instant {
        self.epoch + Duration::from_nanos(deadline)
    }

    pub(crate) fn is_reading_head(&self) -> bool {
        self.phase() == HEAD
    }

    /// How willing the accept loop should be to close this connection to make room for
    /// a new one, lower first: `(0, since)` for an idle keep-alive connection, `(1,
    /// since)` for one waiting on its client (sending its request, or reading its
    /// response), `None` while its handler runs (it is doing the daemon's work) or once
    /// it was reclaimed already.
    pub(crate) fn reclaim_rank(&self) -> Option<(u8, u64)> {
        if self.reclaimed.load(Ordering::Relaxed) {
            return None;
        }
        let class = match self.phase() {
            IDLE => 0,
            HEAD | BODY | WRITE => 1,
            _ => return None,
        };
        Some((class, self.since.load(Ordering::Relaxed)))
    }

    /// Marks the connection as reclaimed; the caller then cancels its close token.
    pub(crate) fn reclaim(&self) {
        self.reclaimed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn phase_name(&self) -> &'static str {
        match self.phase() {
            HEAD => "head",
            BODY => "body",
            BUSY => "busy",
            WRITE => "write",
            _ => "idle",
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(NO_DEADLINE - 1)
}

// ===== TimedIo =====

/// A stream that tells its [`ConnClock`] when bytes arrive and when hyper has flushed.
pub(crate) struct TimedIo<S> {
    pub(crate) inner: S,
    pub(crate) clock: Arc<ConnClock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.bytes_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper flushes the stream only once its own write buffer is empty, so a
        // successful flush after the response body was taken means the response is out.
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.clock.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ===== RequestBody =====

/// A request body that tells its [`ConnClock`] when it has been read to the end (or
/// failed, or was dropped unread), which ends the body read timeout.
pub(crate) struct RequestBody {
    inner: Incoming,
    clock: Arc<ConnClock>,
}

impl RequestBody {
    /// Wraps `inner`, starting the body read timeout if there is a body to read.
    pub(crate) fn new(inner: Incoming, clock: Arc<ConnClock>) -> RequestBody {
        if !inner.is_end_stream() {
            clock.body_pending();
        }
        RequestBody { inner, clock }
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let finished = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if finished {
            self.clock.body_finished();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // A handler that drops the body unread is not waiting for it any more. hyper
        // drains what has already arrived after the response and closes the connection
        // if more is due (tested: `a_body_nobody_reads_does_not_keep_the_connection`).
        self.clock.body_finished();
    }
}

// ===== ResponseBody =====

/// A response body that tells its [`ConnClock`] when hyper has taken all of it (hyper
/// drops the body after its last frame, or at once when it is empty or the request was
/// `HEAD`).
pub(crate) struct ResponseBody {
    inner: Body,
    clock: Arc<ConnClock>,
}

impl ResponseBody {
    pub(crate) fn new(inner: Body, clock: Arc<ConnClock>) -> ResponseBody {
        ResponseBody { inner, clock }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.clock.response_taken();
    }
}
