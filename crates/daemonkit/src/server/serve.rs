//! [`BoundControlPlane::serve`]: the accept loop, the connection cap and the graceful
//! shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::BoundControlPlane;
use super::actions::Credentials;
use super::clock::ConnClock;
use super::conn::{self, Peer};
use crate::Error;

/// How long the accept loop pauses after running out of file descriptors or memory, so it
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A connection just accepted.
enum Accepted {
    Unix(UnixStream),
    Tcp(TcpStream, SocketAddr),
}

impl BoundControlPlane {
    /// Answers requests until `cancel` is cancelled, then shuts down: stops accepting,
    /// closes the connections with no request in flight (idle, or still sending a request
    /// head), lets requests in flight finish for up to the shutdown grace, closes the
    /// remaining connections, and removes the socket file if it is still the one it
    /// created.
    ///
    /// Failures of single connections (a client that resets, a malformed request, a
    /// timeout) are logged at debug level and never end the server.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the socket file cannot be removed at shutdown (it is still this
    /// server's, e.g. the directory became read-only).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future instead of cancelling the token closes every connection
    /// abruptly and removes the socket file (if still ours) without waiting.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O and time enabled.
    pub async fn serve(self, cancel: CancellationToken) -> Result<(), Error> {
        let BoundControlPlane {
            app,
            unix,
            tcp,
            socket_path,
            socket_file,
            tcp_addr,
        } = self;
        let limits = app.limits;
        let epoch = Instant::now();
        let drain = CancellationToken::new();
        let mut connections: JoinSet<()> = JoinSet::new();
        let mut live = Live::default();
        // Connections refused since the cap was last reached (logged once per burst).
        let mut rejected: u64 = 0;
        // Connections reclaimed since the cap was last reached (logged once per burst).
        let mut reclaimed: u64 = 0;

        loop {
            // Not `biased`: a flood on one listener must not starve the other.
            let accepted = tokio::select! {
                () = cancel.cancelled() => break,
                Some(joined) = connections.join_next_with_id(), if !connections.is_empty() => {
                    report_join(joined, &mut live);
                    continue;
                }
                accepted = unix.accept() => accepted.map(|(stream, _)| Accepted::Unix(stream)),
                accepted = accept_tcp(tcp.as_ref()) => {
                    accepted.map(|(stream, peer)| Accepted::Tcp(stream, peer))
                }
            };
            let accepted = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(
                        reason = "ControlPlaneAcceptFailed",
                        error = %error,
                        "accepting a control-plane connection failed"
                    );
                    if is_resource_exhaustion(&error) {
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                    continue;
                }
            };
            // Connections that ended since the last turn give their place back first.
            while let Some(joined) = connections.try_join_next_with_id() {
                report_join(joined, &mut live);
            }
            if live.len() >= limits.max_connections {
                if live.reclaim_one() {
                    reclaimed += 1;
                    if reclaimed == 1 {
                        tracing::warn!(
                            reason = "ControlPlaneConnectionCapReached",
                            max_connections = limits.max_connections,
                            "control-plane connection cap reached; closing idle and slow connections to make room"
                        );
                    }
                } else {
                    // Dropping the stream closes it: the client sees the connection end
                    // at once instead of waiting in a queue.
                    drop(accepted);
                    rejected += 1;
                    if rejected == 1 {
                        tracing::warn!(
                            reason = "ControlPlaneConnectionRejected",
                            max_connections = limits.max_connections,
                            "control-plane connection cap reached with every connection busy in a handler; closing new connections until some end"
                        );
                    }
                    continue;
                }
            } else if rejected > 0 || reclaimed > 0 {
                tracing::info!(
                    reason = "ControlPlaneConnectionCapCleared",
                    rejected,
                    reclaimed,
                    "control-plane connections below the cap again"
                );
                rejected = 0;
                reclaimed = 0;
            }
            let clock = Arc::new(ConnClock::new(epoch, &limits));
            let close = drain.child_token();
            let (app, task_clock, task_close) = (app.clone(), clock.clone(), close.clone());
            let task = match accepted {
                Accepted::Unix(stream) => {
                    // The kernel recorded the peer's credentials at `connect`: they cannot
                    // be forged, and the mutating routes are authorized by them.
                    let peer = Peer::Unix(Credentials::of(&stream));
                    connections.spawn(async move {
                        conn::serve(stream, peer, app, task_clock, task_close).await;
                    })
                }
                Accepted::Tcp(stream, peer) => {
                    // Responses are written whole; waiting for more data to coalesce
                    // would only add latency.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(async move {
                        conn::serve(stream, Peer::Tcp(peer), app, task_clock, task_close).await;
                    })
                }
            };
            live.insert(task.id(), clock, close);
        }

        // Closing the listeners makes new connections fail at once (ECONNREFUSED) rather
        // than wait in a backlog nobody reads.
        drop(unix);
        drop(tcp);
        tracing::info!(
            reason = "ControlPlaneStopping",
            connections = connections.len(),
            grace = ?limits.shutdown_grace,
            "control plane stopping: no new connections, finishing requests in flight"
        );
        drain.cancel();
        let drained = tokio::time::timeout(limits.shutdown_grace, async {
            while let Some(joined) = connections.join_next_with_id().await {
                report_join(joined, &mut live);
            }
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                reason = "ControlPlaneShutdownDeadline",
                connections = connections.len(),
                grace = ?limits.shutdown_grace,
                "requests still in flight after the shutdown grace; closing their connections"
            );
            connections.abort_all();
        }
        drop(connections);

        let removed = match socket_file {
            Some(mut file) => Some(file.remove()?),
            None => None,
        };
        if removed == Some(false) {
            tracing::warn!(
                reason = "ControlPlaneSocketLeft",
                socket = %socket_path.display(),
                "the control socket path now holds another file (a newer instance?); left it in place"
            );
        }
        tracing::info!(
            reason = "ControlPlaneStopped",
            socket = %socket_path.display(),
            tcp = ?tcp_addr,
            socket_removed = removed.unwrap_or(false),
            "control plane stopped"
        );
        Ok(())
    }
}

async fn accept_tcp(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Errors after which accepting again at once would fail the same way.
fn is_resource_exhaustion(error: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(error),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

fn report_join(joined: Result<(Id, ()), JoinError>, live: &mut Live) {
    match joined {
        Ok((id, ())) => live.remove(id),
        Err(error) => {
            live.remove(error.id());
            if error.is_panic() {
                tracing::error!(
                    reason = "ControlPlaneHandlerPanicked",
                    error = %error,
                    "a control-plane request handler panicked; its connection was closed"
                );
            }
        }
    }
}

// ===== Live =====

/// The open connections, for the cap: each one's clock (to choose which to reclaim) and
/// close token.
/// Keyed by the id of the connection's task, which a panicked task's `JoinError` still
/// tells.
#[derive(Default)]
struct Live {
    conns: HashMap<Id, (Arc<ConnClock>, CancellationToken)>,
}

impl Live {
    fn len(&self) -> usize {
        self.conns.len()
    }

    fn insert(&mut self, id: Id, clock: Arc<ConnClock>, close: CancellationToken) {
        self.conns.insert(id, (clock, close));
    }

    fn remove(&mut self, id: Id) {
        self.conns.remove(&id);
    }

    /// Closes the connection most worth closing (see [`ConnClock::reclaim_rank`]) and
    /// forgets it at once, so the new connection takes its place while it closes.
    /// Returns false when every connection is busy in a handler.
    ///
    /// A scan of every connection, done only at the cap: a few microseconds for a
    /// thousand, and nothing to maintain on the request path.
    fn reclaim_one(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter_map(|(id, (clock, _))| clock.reclaim_rank().map(|rank| (rank, *id)))
            .min();
        let Some((_, id)) = victim else {
            return false;
        };
        if let Some((clock, close)) = self.conns.remove(&id) {
            clock.reclaim();
            close.cancel();
        }
        true
    }
}
