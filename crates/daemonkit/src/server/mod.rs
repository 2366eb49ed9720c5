//! The control plane: HTTP/1.1 on a Unix socket, so an operator (or `daemonctl`) can ask
//! a running daemon what it is doing, and Prometheus can scrape it — optionally over TCP
//! as well ([`ControlPlaneBuilder::tcp`]), for Kubernetes probes and remote scrapes.
//!
//! | route | answer |
//! |---|---|
//! | `GET /health` | `200 {"status":"ok"}` whenever the process serves (pure liveness) |
//! | `GET /status` | `200` and the JSON of the daemon's status function, verbatim (`{}` when none is set) |
//! | `GET /ready` | `200 {"status":"ready"}`, or `503 {"status":"not ready","errors":[…]}` with [`StatusError`]s |
//! | `GET /metrics` | the Prometheus text exposition (see [`ControlPlaneBuilder::metrics`]) |
//! | `/<component>/…` | a component's own routes (see [`ControlPlaneBuilder::component`]) |
//!
//! JSON answers carry `Content-Type: application/json` and end with a newline, as the Go
//! daemonkit's do; an unknown path is a 404 and a wrong method a 405, both with a JSON
//! body `{"error":"…"}`.
//!
//! Start-up is in two steps, so a daemon can tell systemd it is ready only once the
//! socket accepts connections: [`ControlPlaneBuilder::bind`] creates and listens on the
//! socket, [`BoundControlPlane::serve`] answers requests until cancelled.
//!
//! # The socket
//!
//! Binding never steals a live daemon's socket (another copy of the daemon fails with
//! [`Error::SocketInUse`]), never removes anything that is not a socket
//! ([`Error::SocketPathOccupied`]), and replaces a stale socket left by a crashed process.
//! The file has mode 0660 from the moment it appears at its path; its directory is created
//! with mode 0750 when missing. On shutdown it is removed only if it is still the file this
//! server created. A listener passed by systemd socket activation
//! ([`ControlPlaneBuilder::listener`]) is served as it is and never removed.
//!
//! # Hardening
//!
//! Every limit has a safe default and a builder method: a client must send a complete
//! request head within the header read timeout (5 s, against slowloris); a keep-alive
//! connection with no request for the idle timeout (60 s) is closed; at most 1024
//! connections are open at once — one more is closed as soon as it is accepted, never
//! queued; request bodies over 1 MiB get 413 and request heads over 16 KiB get 431.
//! On cancellation the server stops accepting, closes idle connections and those that
//! have not sent a complete request yet, lets requests in flight finish for up to 5 s,
//! then closes what is left and removes the socket.

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{Error, MonitorState, StatusError, StatusTracker};

mod conn;
mod metrics;
mod routes;
mod socket;

use conn::Peer;
use routes::{App, ReadyFn, StatusFn};
use socket::SocketFile;

/// The paths the built-in routes use; no component may take one as its name.
const RESERVED: [&str; 4] = ["health", "status", "ready", "metrics"];

/// How long the accept loop pauses after running out of file descriptors or memory, so it
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

// ===== ControlPlane =====

/// The control plane of a daemon: where [`ControlPlaneBuilder`]s come from.
///
/// See the [module documentation](self) for the routes and the guarantees.
#[derive(Debug)]
pub struct ControlPlane {
    _private: (),
}

impl ControlPlane {
    /// A builder for a control plane serving on the Unix socket at `socket_path`, with
    /// the default limits, no status function (`/status` answers `{}`), always ready,
    /// no components and no TCP listener.
    ///
    /// # Examples
    ///
    /// Bind, ask `/health` over the socket, and shut down:
    ///
    /// ```
    /// use daemonkit::server::ControlPlane;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use tokio_util::sync::CancellationToken;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("run").join("control.sock");
    ///
    /// let bound = ControlPlane::builder(&path)
    ///     .status(|| serde_json::json!({"jobs": 3}))
    ///     .bind()
    ///     .await?;
    /// // The socket accepts from here on: a daemon would send READY=1 now.
    /// let cancel = CancellationToken::new();
    /// let server = tokio::spawn(bound.serve(cancel.clone()));
    ///
    /// let mut conn = tokio::net::UnixStream::connect(&path).await?;
    /// conn.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    /// let mut response = String::new();
    /// conn.read_to_string(&mut response).await?;
    /// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(response.contains("content-type: application/json\r\n"));
    /// assert!(response.ends_with("\r\n\r\n{\"status\":\"ok\"}\n"));
    ///
    /// cancel.cancel();
    /// server.await??;
    /// assert!(!path.exists(), "the socket is removed on shutdown");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(socket_path: impl Into<PathBuf>) -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            socket_path: socket_path.into(),
            listener: None,
            tcp: None,
            status: None,
            ready: None,
            components: Vec::new(),
            tracker: None,
            registry: None,
            limits: Limits::default(),
            invalid: None,
        }
    }
}

// ===== Limits =====

/// The hardening limits, with the documented defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) body_limit: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            body_limit: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), Error> {
        let invalid = |setting, problem: &str| {
            Err(Error::InvalidServerConfig {
                setting,
                problem: problem.to_owned(),
            })
        };
        if self.header_read_timeout.is_zero() {
            return invalid(
                "header_read_timeout",
                "must be longer than zero (zero would close every connection at once)",
            );
        }
        if self.idle_timeout.is_zero() {
            return invalid(
                "idle_timeout",
                "must be longer than zero (zero would close every connection after its first response)",
            );
        }
        if self.max_connections == 0 || self.max_connections > Semaphore::MAX_PERMITS {
            return invalid(
                "max_connections",
                "must be at least 1 (and below 2^61); the default is 1024",
            );
        }
        if self.max_header_bytes < 1024 {
            return invalid(
                "max_header_bytes",
                "must be at least 1024 bytes, or ordinary requests would be refused; the default is 16 KiB",
            );
        }
        Ok(())
    }
}

// ===== ControlPlaneBuilder =====

/// Configures a control plane; [`bind`](Self::bind) checks the configuration and starts
/// listening.
///
/// Created by [`ControlPlane::builder`]. Every method has a default, so
/// `ControlPlane::builder(path).bind()` alone gives a working, hardened server.
///
/// Configuration mistakes (a bad component name, a zero timeout) are reported by `bind`,
/// before anything is created on disk.
pub struct ControlPlaneBuilder {
    socket_path: PathBuf,
    listener: Option<StdUnixListener>,
    tcp: Option<TcpSource>,
    status: Option<StatusFn>,
    ready: Option<ReadyFn>,
    components: Vec<(String, Router)>,
    tracker: Option<StatusTracker>,
    registry: Option<Registry>,
    limits: Limits,
    /// The first configuration mistake, reported by `bind`.
    invalid: Option<Error>,
}

enum TcpSource {
    Addr(SocketAddr),
    Listener(std::net::TcpListener),
}

impl fmt::Debug for ControlPlaneBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlaneBuilder")
            .field("socket_path", &self.socket_path)
            .field("listener", &self.listener)
            .field(
                "tcp",
                &self.tcp.as_ref().map(|tcp| match tcp {
                    TcpSource::Addr(addr) => format!("bind {addr}"),
                    TcpSource::Listener(l) => format!("listener {:?}", l.local_addr().ok()),
                }),
            )
            .field("status", &self.status.is_some())
            .field("ready", &self.ready.is_some())
            .field(
                "components",
                &self.components.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("metrics", &self.tracker.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ControlPlaneBuilder {
    /// Sets the function whose value `GET /status` returns, serialised to JSON as it is.
    ///
    /// It is called once per request, on the connection's task: keep it quick and
    /// non-blocking (a snapshot of in-memory state, typically
    /// `move || tracker.snapshot()`). A panic in it, or a value that cannot be serialised,
    /// is answered with a 500 and logged with reason `ControlPlaneStatusFailed`.
    ///
    /// Without one, `/status` answers `{}`.
    pub fn status<T, F>(mut self, status: F) -> Self
    where
        F: Fn() -> T + Send + Sync + 'static,
        T: Serialize,
    {
        self.status = Some(Arc::new(move |buf: &mut Vec<u8>| {
            serde_json::to_writer(&mut *buf, &status())
        }));
        self
    }

    /// Sets the readiness check behind `GET /ready`: `Ok(())` answers 200
    /// `{"status":"ready"}`, `Err(errors)` answers 503
    /// `{"status":"not ready","errors":[…]}` with the errors as [`StatusError`] JSON.
    ///
    /// Without one, `/ready` always answers 200. Like the status function, it runs on
    /// every request and must be quick; `/health` never calls it. [`monitors_ready`]
    /// checks that every monitor of a tracker is running.
    pub fn ready<F>(mut self, ready: F) -> Self
    where
        F: Fn() -> Result<(), Vec<StatusError>> + Send + Sync + 'static,
    {
        self.ready = Some(Arc::new(ready));
        self
    }

    /// Mounts a component's routes under `/<name>/`: a route `/jobs` of component
    /// `backup` answers at `/backup/jobs` (the router sees the path without the prefix).
    ///
    /// Because every component gets its own prefix, no component can answer
    /// `/health`, `/status`, `/ready`, `/metrics` or another component's paths. The
    /// router's state must already be applied (`Router<()>`). Request bodies are capped by
    /// [`body_limit`](Self::body_limit) for component routes too.
    ///
    /// # Errors
    ///
    /// [`bind`](Self::bind) fails with [`Error::InvalidName`] when `name` is empty, longer
    /// than 64 bytes, has a character other than `a-z`, `0-9`, `_` and `-`, is one of the
    /// reserved names `health`, `status`, `ready`, `metrics`, or was mounted already.
    pub fn component(mut self, name: impl Into<String>, routes: Router) -> Self {
        let name = name.into();
        match self.check_component_name(&name) {
            Ok(()) => self.components.push((name, routes)),
            Err(problem) => {
                self.invalid
                    .get_or_insert(Error::InvalidName { name, problem });
            }
        }
        self
    }

    fn check_component_name(&self, name: &str) -> Result<(), &'static str> {
        if name.is_empty() {
            return Err("a component name must not be empty");
        }
        if name.len() > 64 {
            return Err("a component name must be at most 64 bytes long");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(
                "a component name may contain only lower-case letters a-z, digits, `_` and `-`",
            );
        }
        if RESERVED.contains(&name) {
            return Err(
                "this name is a built-in route (health, status, ready, metrics); choose another component name",
            );
        }
        if self.components.iter().any(|(taken, _)| taken == name) {
            return Err("a component with this name is already mounted");
        }
        Ok(())
    }

    /// Exposes the monitors of `tracker` on `GET /metrics`, read at scrape time:
    ///
    /// - `daemonkit_monitor_restarts_total{monitor}` (counter): restarts after a crash;
    /// - `daemonkit_monitor_consecutive_crashes{monitor}` (gauge): the current crash streak;
    /// - `daemonkit_monitor_state{monitor,state}` (gauge): 1 for the current state
    ///   (`running`, `degraded`, `backoff`, `stopped`), 0 for the other three;
    /// - `daemonkit_monitor_uptime_seconds{monitor}` (gauge): time since the current run
    ///   began, 0 when not running.
    ///
    /// `daemonkit_build_info{version}` is always exposed, with or without a tracker.
    pub fn metrics(mut self, tracker: &StatusTracker) -> Self {
        self.tracker = Some(tracker.clone());
        self
    }

    /// Adds the daemon's own metrics to `GET /metrics`: everything registered in
    /// `registry` is encoded after the kit's metrics.
    ///
    /// Register the metrics first and keep handles to them (prometheus-client metrics
    /// are cheap to clone and share their value); update them while the server runs.
    /// The kit's metrics are encoded from a separate registry, so a prefix or labels on
    /// this one do not rename them.
    ///
    /// ```
    /// use prometheus_client::metrics::counter::Counter;
    /// use prometheus_client::registry::Registry;
    /// use daemonkit::server::ControlPlane;
    ///
    /// let jobs: Counter = Counter::default();
    /// let mut registry = Registry::default();
    /// registry.register("backup_jobs", "Backup jobs completed", jobs.clone());
    /// let builder = ControlPlane::builder("/run/backupd/control.sock").registry(registry);
    /// jobs.inc(); // appears as `backup_jobs_total 1` on the next scrape
    /// # drop(builder);
    /// ```
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Serves `listener` (typically passed by systemd socket activation, see
    /// [`crate::activation`]) instead of binding the socket path.
    ///
    /// The socket file belongs to whoever created it: it is neither checked, nor chmod-ed,
    /// nor removed on shutdown.
    pub fn listener(mut self, listener: StdUnixListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Also serves the same routes over TCP on `addr` (e.g. `127.0.0.1:9464`), for
    /// Kubernetes `httpGet` probes and Prometheus scrapes. Off unless set.
    ///
    /// Port 0 picks a free port; [`BoundControlPlane::tcp_addr`] tells which. TCP
    /// connections share the connection cap with the Unix socket.
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp = Some(TcpSource::Addr(addr));
        self
    }

    /// Also serves the same routes on an already listening TCP socket (e.g. one passed
    /// by systemd socket activation).
    pub fn tcp_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.tcp = Some(TcpSource::Listener(listener));
        self
    }

    /// How long a client has to send a complete request head, counted from the connection
    /// or from the first byte after an idle period. Default 5 s.
    ///
    /// This is the defence against slowloris: a client trickling a request head is closed
    /// when it runs out, however slowly it sends.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// How long a keep-alive connection may wait for its next request before it is closed.
    /// Default 60 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = timeout;
        self
    }

    /// The most connections open at once, Unix and TCP together. Default 1024.
    ///
    /// A connection beyond the cap is accepted and closed at once (logged once per burst
    /// with reason `ControlPlaneConnectionRejected`), so excess clients fail fast instead
    /// of waiting in an unbounded queue.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.limits.max_connections = max;
        self
    }

    /// The largest request body accepted, in bytes; a larger one is answered with 413.
    /// Default 1 MiB.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.limits.body_limit = bytes;
        self
    }

    /// The largest request head (request line and headers) accepted, in bytes; a larger
    /// one is answered with 431 and the connection closed. Default 16 KiB, at least 1 KiB.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_header_bytes = bytes;
        self
    }

    /// How long requests in flight may take to finish after cancellation before their
    /// connections are closed. Default 5 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.limits.shutdown_grace = grace;
        self
    }

    /// Checks the configuration and starts listening: once this returns, connections are
    /// accepted by the kernel and wait until [`BoundControlPlane::serve`] answers them.
    ///
    /// The file-system work (a few `stat`s, `mkdir`, `bind`, `chmod`, `rename`) is done
    /// inline: it takes microseconds on a local file system.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidName`] for a bad or duplicate component name and
    ///   [`Error::InvalidServerConfig`] for a limit that cannot work — both before anything
    ///   is touched on disk;
    /// - [`Error::SocketInUse`] when a live process accepts on the socket path;
    /// - [`Error::SocketPathOccupied`] when something other than a socket is there;
    /// - [`Error::SocketPathTooLong`] when the path does not fit in a socket address;
    /// - [`Error::Io`] when the directory, socket or rename fails;
    /// - [`Error::TcpIo`] when the TCP listener cannot be bound.
    ///
    /// On error nothing this call created is left behind.
    pub async fn bind(self) -> Result<BoundControlPlane, Error> {
        if let Some(invalid) = self.invalid {
            return Err(invalid);
        }
        self.limits.validate()?;

        let mut components = Router::new();
        for (name, routes) in self.components {
            // Cannot panic: the name was checked to be a non-empty, slash-free, unique
            // segment, so the prefix is valid and overlaps no other route.
            components = components.nest(
                &format!("/{name}"),
                routes.layer(DefaultBodyLimit::max(self.limits.body_limit)),
            );
        }
        let components = components
            .fallback(routes::not_found)
            .method_not_allowed_fallback(routes::wrong_method);
        let metrics = metrics::Metrics::new(self.tracker, self.registry);
        let app = Arc::new(App::new(
            self.limits,
            self.status,
            self.ready,
            metrics,
            components,
        ));

        let activated = self.listener.is_some();
        let (unix, socket_path, socket_file) = match self.listener {
            Some(listener) => {
                let path = listener
                    .local_addr()
                    .ok()
                    .and_then(|addr| addr.as_pathname().map(Path::to_owned))
                    .unwrap_or(self.socket_path);
                (unix_to_tokio(listener, &path)?, path, None)
            }
            None => {
                let (listener, file) = socket::bind(&self.socket_path)?;
                let path = self.socket_path;
                (unix_to_tokio(listener, &path)?, path, Some(file))
            }
        };

        let (tcp, tcp_addr) = match self.tcp {
            Some(source) => {
                let (listener, addr) = bind_tcp(source).await?;
                (Some(listener), Some(addr))
            }
            None => (None, None),
        };

        tracing::info!(
            reason = "ControlPlaneListening",
            socket = %socket_path.display(),
            tcp = ?tcp_addr,
            activated,
            "control plane listening"
        );
        Ok(BoundControlPlane {
            app,
            unix,
            tcp,
            socket_path,
            socket_file,
            tcp_addr,
        })
    }
}

/// The TCP listener and its actual address (the port chosen when 0 was asked for).
async fn bind_tcp(source: TcpSource) -> Result<(TcpListener, SocketAddr), Error> {
    let (listener, asked) = match source {
        TcpSource::Addr(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::TcpIo {
                    op: "binding the control-plane TCP listener to",
                    addr,
                    source,
                })?;
            (listener, addr)
        }
        TcpSource::Listener(listener) => {
            let addr = listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
                .map_err(|source| Error::TcpIo {
                    op: "serving the passed control-plane TCP listener on",
                    addr,
                    source,
                })?;
            (listener, addr)
        }
    };
    let addr = listener.local_addr().map_err(|source| Error::TcpIo {
        op: "reading the local address of the control-plane TCP listener on",
        addr: asked,
        source,
    })?;
    Ok((listener, addr))
}

fn unix_to_tokio(listener: StdUnixListener, path: &Path) -> Result<UnixListener, Error> {
    listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(listener))
        .map_err(|source| Error::Io {
            op: "serving the control socket at",
            path: path.to_owned(),
            source,
        })
}

// ===== readiness =====

/// Whether every monitor of `tracker` is running, as a readiness check for
/// [`ControlPlaneBuilder::ready`]: `Ok(())` when all are running (or there are none),
/// otherwise one [`StatusError`] per monitor that is not.
///
/// A monitor with an error (a crash while backing off, a connectivity error while
/// degraded) contributes that error, its message prefixed with the monitor's name; one
/// without (e.g. stopped, or not started yet) contributes `MonitorNotRunning`. Combine it
/// with other checks, such as start-up probes, in the closure given to `ready`.
///
/// # Examples
///
/// ```
/// use daemonkit::server::monitors_ready;
/// use daemonkit::{MonitorState, StatusTracker};
///
/// let tracker = StatusTracker::new();
/// tracker.set_state("db", MonitorState::Running);
/// assert!(monitors_ready(&tracker).is_ok());
///
/// tracker.set_state("queue", MonitorState::Stopped);
/// let errors = monitors_ready(&tracker).unwrap_err();
/// assert_eq!(errors[0].reason, "MonitorNotRunning");
/// assert_eq!(errors[0].message, "monitor queue is stopped");
/// ```
pub fn monitors_ready(tracker: &StatusTracker) -> Result<(), Vec<StatusError>> {
    let errors: Vec<StatusError> = tracker
        .snapshot()
        .into_iter()
        .filter(|(_, status)| status.state != MonitorState::Running)
        .map(|(name, status)| match &status.error {
            Some(error) => StatusError {
                message: format!("monitor {name}: {}", error.message),
                ..error.clone()
            },
            None => StatusError::new(
                "MonitorNotRunning",
                format!("monitor {name} is {}", status.state),
            )
            .with_since(status.state_since),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

// ===== BoundControlPlane =====

/// A control plane whose socket is listening, ready to [`serve`](Self::serve).
///
/// Connections made from now on wait in the socket's backlog until `serve` answers them,
/// so this is the moment to tell the service manager the daemon is ready. Dropping it
/// without serving removes the socket file it created.
pub struct BoundControlPlane {
    app: Arc<App>,
    unix: UnixListener,
    tcp: Option<TcpListener>,
    socket_path: PathBuf,
    socket_file: Option<SocketFile>,
    tcp_addr: Option<SocketAddr>,
}

impl fmt::Debug for BoundControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundControlPlane")
            .field("socket_path", &self.socket_path)
            .field("tcp_addr", &self.tcp_addr)
            .field("owns_socket_file", &self.socket_file.is_some())
            .finish_non_exhaustive()
    }
}

/// A connection just accepted.
enum Accepted {
    Unix(UnixStream),
    Tcp(TcpStream, SocketAddr),
}

impl BoundControlPlane {
    /// The path of the Unix socket served: the configured path, or the path of the
    /// listener passed with [`ControlPlaneBuilder::listener`].
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The address of the TCP listener, when one is configured (with the actual port
    /// when port 0 was asked for).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

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
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let drain = CancellationToken::new();
        let mut connections = JoinSet::new();
        // Connections refused since the cap was last reached (logged once per burst).
        let mut rejected: u64 = 0;

        loop {
            // Not `biased`: a flood on one listener must not starve the other.
            let accepted = tokio::select! {
                () = cancel.cancelled() => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    report_join(joined);
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
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                // Dropping the stream closes it: the client sees the connection end at
                // once instead of waiting in a queue.
                drop(accepted);
                rejected += 1;
                if rejected == 1 {
                    tracing::warn!(
                        reason = "ControlPlaneConnectionRejected",
                        max_connections = limits.max_connections,
                        "control-plane connection cap reached; closing new connections until some end"
                    );
                }
                continue;
            };
            if rejected > 0 {
                tracing::info!(
                    reason = "ControlPlaneConnectionCapCleared",
                    rejected,
                    "control-plane connections accepted again after the cap was reached"
                );
                rejected = 0;
            }
            let (app, drain) = (app.clone(), drain.child_token());
            match accepted {
                Accepted::Unix(stream) => connections.spawn(async move {
                    conn::serve(stream, Peer::Unix, app, drain).await;
                    drop(permit);
                }),
                Accepted::Tcp(stream, peer) => {
                    // Responses are written whole; waiting for more data to coalesce
                    // would only add latency.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(async move {
                        conn::serve(stream, Peer::Tcp(peer), app, drain).await;
                        drop(permit);
                    })
                }
            };
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
            while let Some(joined) = connections.join_next().await {
                report_join(joined);
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

fn report_join(joined: Result<(), JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(
            reason = "ControlPlaneHandlerPanicked",
            error = %error,
            "a control-plane request handler panicked; its connection was closed"
        );
    }
}
