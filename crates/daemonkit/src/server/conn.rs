//! One client connection: hyper's HTTP/1 state machine, watched by the connection clock
//! ([`ConnClock`], see `clock`), and told to finish when the server drains or closed when
//! the server reclaims it.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

pub(crate) use super::actions::Peer;
use super::routes::{App, ControlService};

use super::clock::{BODY, BUSY, ConnClock, IDLE, NO_DEADLINE, TimedIo, WRITE};
// ===== serving one connection =====

/// How a connection ended.
enum Ended {
    Closed,
    Failed(hyper::Error),
    HeaderTimeout,
    BodyTimeout,
    WriteTimeout,
    IdleTimeout,
    /// Closed by the accept loop to make room at the cap, in this phase.
    Reclaimed(&'static str),
}

/// Serves one accepted connection until the client leaves, a deadline passes, or
/// `close` is cancelled.
///
/// `close` is cancelled when the server drains (in-flight requests finish, then the
/// connection closes; one still sending a request head closes at once) or when the
/// accept loop reclaims the connection (see [`ConnClock::reclaim`]): then it closes at
/// once, unless its handler had started running in the meantime, in which case the
/// request finishes first, as when draining.
pub(crate) async fn serve<S>(
    stream: S,
    peer: Peer,
    app: Arc<App>,
    clock: Arc<ConnClock>,
    close: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &app.limits;
    let io = TokioIo::new(TimedIo {
        inner: stream,
        clock: clock.clone(),
    });
    let service = ControlService::new(app.clone(), clock.clone(), peer);
    let mut conn = pin!(app.http.serve_connection(io, service));
    let mut closing = pin!(close.cancelled());
    let mut draining = false;
    let mut armed = clock.deadline();
    let mut sleep = pin!(tokio::time::sleep_until(
        clock.instant(armed.min(NO_DEADLINE - 1))
    ));

    let ended = poll_fn(|cx| {
        if !draining && closing.as_mut().poll(cx).is_ready() {
            draining = true;
            if clock.reclaimed.load(Ordering::Relaxed) && clock.phase() != BUSY {
                return Poll::Ready(Ended::Reclaimed(clock.phase_name()));
            }
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
                Poll::Ready(()) => return Poll::Ready(timed_out(&clock)),
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
        Ended::BodyTimeout => tracing::debug!(
            reason = "ControlPlaneBodyTimeout",
            peer = %peer,
            timeout = ?limits.body_read_timeout,
            "closed a control-plane connection that did not send its whole request body in time"
        ),
        Ended::WriteTimeout => tracing::debug!(
            reason = "ControlPlaneWriteTimeout",
            peer = %peer,
            timeout = ?limits.write_timeout,
            "closed a control-plane connection whose client did not read its response in time"
        ),
        Ended::IdleTimeout => tracing::debug!(
            reason = "ControlPlaneIdleTimeout",
            peer = %peer,
            timeout = ?limits.idle_timeout,
            "closed an idle keep-alive control-plane connection"
        ),
        Ended::Reclaimed(phase) => tracing::debug!(
            reason = "ControlPlaneConnectionReclaimed",
            peer = %peer,
            phase,
            "closed a control-plane connection to make room for a new one at the connection cap"
        ),
    }
}

/// How a connection whose deadline passed ended, by the phase it was in.
fn timed_out(clock: &ConnClock) -> Ended {
    match clock.phase() {
        IDLE => Ended::IdleTimeout,
        BODY => Ended::BodyTimeout,
        WRITE => Ended::WriteTimeout,
        _ => Ended::HeaderTimeout,
    }
}
