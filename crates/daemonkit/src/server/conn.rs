//! One client connection: hyper's HTTP/1 state machine, watched by the header-read and
//! idle deadlines, and told to finish when the server drains.
//!
//! hyper's own `header_read_timeout` starts counting as soon as it waits for a request,
//! so it cannot tell a keep-alive connection resting between requests (fine for a while)
//! from a client trickling a request head (slowloris). The [`ConnClock`] does: it learns
//! from the byte stream ([`TimedIo`]) when a request head begins and from the service
//! when a request starts and ends, and keeps the one deadline that applies:
//!
//! | phase | starts when | deadline |
//! |---|---|---|
//! | `Head` | the connection is accepted, or the first byte after `Idle` arrives | header read timeout |
//! | `Busy` | the request head was parsed and the handler runs | none |
//! | `Idle` | the response is ready (and on every write while it is sent) | idle timeout |
//!
//! A connection whose deadline passes is closed.

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::routes::{App, ControlService};

const NO_DEADLINE: u64 = u64::MAX;

const HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

// ===== ConnClock =====

/// The phase of one connection and the deadline that goes with it.
///
/// Only the connection's own task touches it (the I/O wrapper and the service future are
/// both polled from inside the connection future), so `Relaxed` is enough: the runtime
/// orders a task's polls even when it moves between threads. Atomics are used only
/// because the pieces must be `Sync` to live in a spawned task.
pub(crate) struct ConnClock {
    epoch: Instant,
    header_nanos: u64,
    idle_nanos: u64,
    phase: AtomicU8,
    /// Nanoseconds after `epoch`, or `NO_DEADLINE`.
    deadline: AtomicU64,
}

impl ConnClock {
    /// A clock for a connection accepted now: it has the header read timeout to send its
    /// first request head.
    pub(crate) fn new(header_read_timeout: Duration, idle_timeout: Duration) -> ConnClock {
        let header_nanos = nanos(header_read_timeout);
        ConnClock {
            epoch: Instant::now(),
            header_nanos,
            idle_nanos: nanos(idle_timeout),
            phase: AtomicU8::new(HEAD),
            deadline: AtomicU64::new(header_nanos),
        }
    }

    fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// The service was called: the handler may take as long as it needs.
    pub(crate) fn request_started(&self) {
        self.phase.store(BUSY, Ordering::Relaxed);
        self.deadline.store(NO_DEADLINE, Ordering::Relaxed);
    }

    /// The response is ready: the connection is idle until the next request begins.
    pub(crate) fn request_finished(&self) {
        self.phase.store(IDLE, Ordering::Relaxed);
        self.deadline.store(
            self.now().saturating_add(self.idle_nanos),
            Ordering::Relaxed,
        );
    }

    fn bytes_read(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.phase.store(HEAD, Ordering::Relaxed);
            self.deadline.store(
                self.now().saturating_add(self.header_nanos),
                Ordering::Relaxed,
            );
        }
    }

    fn bytes_written(&self) {
        // A response body still being sent keeps the connection from counting as idle.
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.deadline.store(
                self.now().saturating_add(self.idle_nanos),
                Ordering::Relaxed,
            );
        }
    }

    fn deadline(&self) -> u64 {
        self.deadline.load(Ordering::Relaxed)
    }

    fn instant(&self, deadline: u64) -> Instant {
        self.epoch + Duration::from_nanos(deadline)
    }

    fn is_reading_head(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == HEAD
    }

    fn timed_out(&self) -> Ended {
        match self.phase.load(Ordering::Relaxed) {
            IDLE => Ended::IdleTimeout,
            _ => Ended::HeaderTimeout,
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

// ===== TimedIo =====

/// A stream that tells its [`ConnClock`] when bytes come and go.
pub(crate) struct TimedIo<S> {
    inner: S,
    clock: Arc<ConnClock>,
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
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.clock.bytes_written();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.clock.bytes_written();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ===== serving one connection =====

/// Who is on the other end, for logs.
#[derive(Clone, Copy)]
pub(crate) enum Peer {
    Unix,
    Tcp(SocketAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Unix => f.write_str("unix"),
            Peer::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// How a connection ended.
enum Ended {
    Closed,
    Failed(hyper::Error),
    HeaderTimeout,
    IdleTimeout,
}

/// Serves one accepted connection until the client leaves, a deadline passes, or the
/// server drains (`drain` cancelled: in-flight requests finish, then the connection
/// closes).
pub(crate) async fn serve<S>(stream: S, peer: Peer, app: Arc<App>, drain: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &app.limits;
    let clock = Arc::new(ConnClock::new(
        limits.header_read_timeout,
        limits.idle_timeout,
    ));
    let io = TokioIo::new(TimedIo {
        inner: stream,
        clock: clock.clone(),
    });
    let service = ControlService::new(app.clone(), clock.clone());
    let mut conn = pin!(app.http.serve_connection(io, service));
    let mut drained = pin!(drain.cancelled());
    let mut draining = false;
    let mut armed = clock.deadline();
    let mut sleep = pin!(tokio::time::sleep_until(clock.instant(armed)));

    let ended = poll_fn(|cx| {
        if !draining && drained.as_mut().poll(cx).is_ready() {
            draining = true;
            // Finishes the request in flight, if any, then closes; an idle connection
            // closes at once.
            conn.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(match result {
                Ok(()) => Ended::Closed,
                Err(e) => Ended::Failed(e),
            });
        }
        // hyper waits for a connection that has not completed a request head yet (a new
        // one, or one trickling); shutdown does not: no request of it is in flight.
        if draining && clock.is_reading_head() {
            return Poll::Ready(Ended::Closed);
        }
        // Polling the connection above is what moves the clock, so the deadline read
        // here is current. The timer is moved only when the deadline comes earlier than
        // it is set for; a later deadline is picked up when the timer fires. Most
        // requests then touch no timer at all (resetting one takes the runtime's timer
        // lock).
        loop {
            let deadline = clock.deadline();
            if deadline == NO_DEADLINE {
                return Poll::Pending;
            }
            if deadline < armed {
                sleep.as_mut().reset(clock.instant(deadline));
                armed = deadline;
            }
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if deadline > armed => {
                    // Fired for an earlier deadline that has since moved: wait for the
                    // current one (the next round polls the timer to register).
                    sleep.as_mut().reset(clock.instant(deadline));
                    armed = deadline;
                }
                Poll::Ready(()) => return Poll::Ready(clock.timed_out()),
            }
        }
    })
    .await;

    match ended {
        Ended::Closed => {}
        Ended::Failed(error) => tracing::debug!(
            reason = "ControlPlaneConnectionError",
            peer = %peer,
            error = %error,
            "control-plane connection ended with an error"
        ),
        Ended::HeaderTimeout => tracing::debug!(
            reason = "ControlPlaneHeaderTimeout",
            peer = %peer,
            timeout = ?limits.header_read_timeout,
            "closed a control-plane connection that did not send a complete request head in time"
        ),
        Ended::IdleTimeout => tracing::debug!(
            reason = "ControlPlaneIdleTimeout",
            peer = %peer,
            timeout = ?limits.idle_timeout,
            "closed an idle keep-alive control-plane connection"
        ),
    }
}
