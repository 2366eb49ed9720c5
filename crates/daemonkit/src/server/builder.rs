//! [`ControlPlaneBuilder`]: every setting of the control plane, checked by
//! [`build`](ControlPlaneBuilder::build).

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use prometheus_client::registry::Registry;
use serde::Serialize;

#[cfg(feature = "daemon")]
use super::actions::MonitorActions;
use super::actions::{Actions, LogLevel};
pub(crate) use super::limits::Limits;
use super::routes::{self, App, ReadyFn, StatusSource};
use super::{ControlPlane, metrics};
use crate::stall::StallDetector;
use crate::{Error, StatusError, StatusTracker};

// ===== ControlPlaneBuilder =====

/// Configures a control plane; [`build`](Self::build) checks the configuration and
/// [`ControlPlane::bind`] starts listening.
///
/// Created by [`ControlPlane::builder`]. Every method has a default, so
/// `ControlPlane::builder(path).build()?.bind()` alone gives a working, hardened server.
///
/// Configuration mistakes (a bad component name, a zero timeout) are reported by `build`,
/// before anything is created on disk.
pub struct ControlPlaneBuilder {
    pub(super) socket_path: PathBuf,
    pub(super) listener: Option<StdUnixListener>,
    pub(super) tcp: Option<TcpSource>,
    pub(super) status: Option<StatusSource>,
    pub(super) ready: Option<ReadyFn>,
    pub(super) components: Vec<(String, Router)>,
    pub(super) trackers: Vec<(Option<String>, StatusTracker)>,
    pub(super) registry: Option<Registry>,
    /// Exposed on `/metrics`; the `Daemon` runner also runs it.
    pub(crate) stall: Option<StallDetector>,
    pub(super) limits: Limits,
    pub(super) actions: Actions,
    pub(super) mutating: Vec<String>,
    /// The first configuration mistake, reported by `bind`.
    pub(super) invalid: Option<Error>,
}

pub(super) enum TcpSource {
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
            .field("metrics", &self.trackers.len())
            .field("stall_detector", &self.stall)
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
        self.status = Some(StatusSource {
            write: Arc::new(move |buf: &mut Vec<u8>| serde_json::to_writer(&mut *buf, &status())),
            version: None,
        });
        self
    }

    /// Like [`status`](Self::status), with a version that lets the server keep the
    /// serialised body and serve it again, without calling `status`, while `version`
    /// returns the same `Some(v)`.
    ///
    /// The contract: whenever `status()` would return a different document, `version()`
    /// returns a different value (a counter bumped on every change, as
    /// [`StatusTracker::version`] is); and `None` while the document is computed on
    /// read and so may change without a bump — the body is then built for each request.
    /// The version is read before `status` is called, so a change racing with a request
    /// makes the next request rebuild. Both functions run on the connection's task.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use daemonkit::server::ControlPlane;
    ///
    /// let jobs = Arc::new(AtomicU64::new(3));
    /// let (a, b) = (jobs.clone(), jobs.clone());
    /// let builder = ControlPlane::builder("/run/demo/control.sock").status_versioned(
    ///     move || Some(a.load(Ordering::Acquire)),
    ///     move || serde_json::json!({"jobs": b.load(Ordering::Acquire)}),
    /// );
    /// # drop(builder);
    /// ```
    pub fn status_versioned<T, F, V>(mut self, version: V, status: F) -> Self
    where
        V: Fn() -> Option<u64> + Send + Sync + 'static,
        F: Fn() -> T + Send + Sync + 'static,
        T: Serialize,
    {
        self.status = Some(StatusSource {
            write: Arc::new(move |buf: &mut Vec<u8>| serde_json::to_writer(&mut *buf, &status())),
            version: Some(Arc::new(version)),
        });
        self
    }

    /// Serves `tracker`'s [`snapshot`](StatusTracker::snapshot) on `GET /status`, from a
    /// cached body rebuilt only when the tracker's [`version`](StatusTracker::version)
    /// moved: a write, or a running monitor's connectivity check answering otherwise
    /// than at its last read (each request calls those checks once, for the version).
    ///
    /// The same document as `.status(move || tracker.snapshot())`, at the cost of
    /// `/health` plus one lock while nothing changes.
    pub fn tracker_status(self, tracker: &StatusTracker) -> Self {
        let (versioned, snapshot) = (tracker.clone(), tracker.clone());
        self.status_versioned(move || versioned.version(), move || snapshot.snapshot())
    }

    /// Sets the readiness check behind `GET /ready`: `Ok(())` answers 200
    /// `{"status":"ready"}`, `Err(errors)` answers 503
    /// `{"status":"not ready","errors":[…]}` with the errors as [`StatusError`] JSON.
    ///
    /// Without one, `/ready` always answers 200. Like the status function, it runs on
    /// every request and must be quick; `/health` never calls it. [`monitors_ready`](crate::status::monitors_ready)
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
    /// [`build`](Self::build) fails with [`Error::InvalidName`] when `name` is empty, longer
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
        super::check_component_name(name)?;
        if self.components.iter().any(|(taken, _)| taken == name) {
            return Err("a component with this name is already mounted");
        }
        Ok(())
    }

    /// Mounts a component's routes under `/<name>/`, as [`component`](Self::component),
    /// and declares them **mutating**: a request other than `GET` or `HEAD` to them is
    /// authorized by the peer's credentials like the kit's own mutating routes (root, the
    /// daemon's uid, [`allow_uid`](Self::allow_uid), [`allow_gid`](Self::allow_gid)),
    /// else answered 403.
    pub fn mutating_component(mut self, name: impl Into<String>, routes: Router) -> Self {
        let name = name.into();
        self.mutating.push(name.clone());
        self.component(name, routes)
    }

    /// Also allows the user `uid` to use the mutating routes (`/monitors/…`, `PUT
    /// /log-level`, mutating components). Root and the daemon's own user always may.
    pub fn allow_uid(mut self, uid: u32) -> Self {
        self.actions.uids.push(uid);
        self
    }

    /// Also allows peers whose primary group is `gid` to use the mutating routes.
    pub fn allow_gid(mut self, gid: u32) -> Self {
        self.actions.gids.push(gid);
        self
    }

    /// Serves the mutating routes over the TCP listener too (default: off, since TCP
    /// carries no credentials to authorize by). Turn it on only behind an authenticating
    /// proxy.
    pub fn tcp_mutations(mut self, enabled: bool) -> Self {
        self.actions.tcp_mutations = enabled;
        self
    }

    /// The daemon's log filter, read by `GET /log-level` and replaced by `PUT /log-level`
    /// (body: the filter; `?revert_after=10m` brings the previous one back after that
    /// long). Without one, `/log-level` answers 404.
    pub fn log_level(mut self, hook: impl LogLevel) -> Self {
        self.actions.log_level = Some(Arc::new(hook));
        self
    }

    /// The handler behind `POST /monitors/…` (set by the Daemon runner).
    #[cfg(feature = "daemon")]
    pub(crate) fn monitor_actions(mut self, actions: MonitorActions) -> Self {
        self.actions.monitors = Some(actions);
        self
    }

    /// Exposes the monitors of `tracker` on `GET /metrics`, read at scrape time:
    ///
    /// - `daemonkit_monitor_restarts_total{monitor}` (counter): restarts after a crash;
    /// - `daemonkit_monitor_consecutive_crashes{monitor}` (gauge): the current crash streak;
    /// - `daemonkit_monitor_state{monitor,state}` (gauge): 1 for the current state
    ///   (`running`, `degraded`, `backoff`, `stopped`), 0 for the other three;
    /// - `daemonkit_monitor_uptime_seconds{monitor}` (gauge): time since the current run
    ///   began, 0 when not running;
    /// - `daemonkit_monitor_backoff_seconds{monitor}` (gauge): the delay before the next
    ///   start while backing off after a crash, 0 otherwise.
    ///
    /// `contrib/prometheus/daemonkit.rules.yml` alerts on these (see the user guide's
    /// "Alerting" section).
    ///
    /// `daemonkit_build_info{version}` is always exposed, with or without a tracker.
    pub fn metrics(mut self, tracker: &StatusTracker) -> Self {
        self.trackers.push((None, tracker.clone()));
        self
    }

    /// Exposes the monitors of a component's `tracker` on `GET /metrics`, as
    /// [`metrics`](Self::metrics) does, with a `component="<component>"` label on every
    /// sample. Call it once per component of a daemon of several.
    pub fn component_metrics(
        mut self,
        component: impl Into<String>,
        tracker: &StatusTracker,
    ) -> Self {
        self.trackers
            .push((Some(component.into()), tracker.clone()));
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

    /// Exposes the runtime stall measurements of `detector` on `GET /metrics`:
    ///
    /// - `daemonkit_runtime_stall_seconds_max` (gauge): the largest timer delay in the
    ///   last one to two windows of the detector (60 s each by default), so it falls back
    ///   after a stall;
    /// - `daemonkit_runtime_stalls_total` (counter): ticks delayed by at least the
    ///   detector's threshold.
    ///
    /// The detector measures only once its [`run`](StallDetector::run) is spawned on the
    /// runtime to watch; the `Daemon` runner does that with the detector set here (or a
    /// default one when none is set).
    pub fn stall_detector(mut self, detector: &StallDetector) -> Self {
        self.stall = Some(detector.clone());
        self
    }

    /// Serves `listener` (typically passed by systemd socket activation, see
    /// [`crate::systemd::activation`]) instead of binding the socket path.
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
    /// Port 0 picks a free port; [`BoundControlPlane::tcp_addr`](super::BoundControlPlane::tcp_addr) tells which. TCP
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

    /// How long a client has to send a request body, counted from the end of the request
    /// head until the handler has read the whole body. Default 10 s.
    ///
    /// It is a total time, not a time between bytes: a client trickling its body a byte
    /// at a time is closed when it runs out, however slowly it sends. With the default
    /// [`body_limit`](Self::body_limit) of 1 MiB it asks for at least about 100 KiB/s, far
    /// below what a local socket carries. Only component routes read bodies; the time the
    /// handler then takes is not limited.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.body_read_timeout = timeout;
        self
    }

    /// How long a response may take to be written to the client, counted from when it is
    /// ready until the last byte has been handed to the socket. Default 10 s.
    ///
    /// A client that asks and then does not read (or reads a byte at a time) is closed
    /// when it runs out, so it cannot hold its connection and the response's memory.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.limits.write_timeout = timeout;
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
    /// When a new connection arrives at the cap, the server makes room by closing, in
    /// this order (as nginx reuses keep-alive connections):
    ///
    /// 1. the connection idle (between requests) for the longest;
    /// 2. else the connection that has been waiting on its client for the longest: still
    ///    sending its request head or body, or not reading its response.
    ///
    /// A connection whose handler is running is never closed for room: only those count
    /// fully against the cap. So idle keep-alive clients and slow senders cannot keep a
    /// health check out; the newcomer is refused only when every connection is busy in a
    /// handler. Each such close is logged at debug level with reason
    /// `ControlPlaneConnectionReclaimed`; a refused connection is accepted and closed at
    /// once (logged once per burst with reason `ControlPlaneConnectionRejected`), so
    /// excess clients fail fast instead of waiting in an unbounded queue.
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

    /// Checks the configuration: component names and limits. Nothing is touched on disk;
    /// [`ControlPlane::bind`] does that.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad or duplicate component name and
    /// [`Error::InvalidServerConfig`] for a limit that cannot work (both of kind
    /// [`Config`](crate::ErrorKind::Config)).
    pub fn build(self) -> Result<ControlPlane, Error> {
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
        let mut metrics = metrics::Metrics::new(self.trackers, self.registry);
        if let Some(detector) = self.stall {
            metrics = metrics.with_stall_detector(detector);
        }
        let app = Arc::new(App::new(
            self.limits,
            self.status,
            self.ready,
            metrics,
            components,
            self.actions,
            self.mutating,
        ));
        Ok(ControlPlane {
            app,
            socket_path: self.socket_path,
            listener: self.listener,
            tcp: self.tcp,
        })
    }
}
