//! The monitor contract: a named, long-running async work loop the supervisor keeps alive.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::probe::Probe;
use crate::status::StatusError;

/// The error a monitor's run loop returns when it crashes: any error type will do.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed, sendable future, which keeps [`Monitor`] object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A long-running async work loop with a stable name, kept alive by
/// [`supervise`](crate::supervise).
///
/// The contract of [`run`](Self::run):
/// - `Ok(())` is a clean exit: the monitor is marked `stopped` and not restarted;
/// - `Err(e)` is a crash: the supervisor restarts it after a back-off;
/// - a panic is a crash too, caught by the supervisor, never a process abort;
/// - cancellation of the token means shutdown: return promptly (within the daemon's
///   shutdown deadline) whatever you were doing.
///
/// The trait is object-safe so monitors of different types live in one
/// `Vec<Arc<dyn Monitor>>`. Optional capabilities are default methods: override
/// [`connectivity_error`](Self::connectivity_error) (and
/// [`reports_connectivity`](Self::reports_connectivity)) for a monitor that can be alive but
/// failing, and [`prerequisite`](Self::prerequisite) to declare a probe that must pass before
/// it starts.
///
/// For a monitor that is just a closure, see [`monitor_fn`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use daemonkit::{BoxError, BoxFuture, Monitor};
/// use tokio_util::sync::CancellationToken;
///
/// struct Ticker;
///
/// impl Monitor for Ticker {
///     fn name(&self) -> &str {
///         "ticker"
///     }
///
///     fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
///         Box::pin(async move {
///             // Real work would loop here until cancelled.
///             cancel.cancelled().await;
///             Ok(())
///         })
///     }
/// }
///
/// let monitors: Vec<Arc<dyn Monitor>> = vec![Arc::new(Ticker)];
/// assert_eq!(monitors[0].name(), "ticker");
/// ```
pub trait Monitor: Send + Sync + 'static {
    /// The monitor's stable, non-empty name: the key in status reports, logs and metrics.
    fn name(&self) -> &str;

    /// Runs the work loop until it fails, finishes, or `cancel` is cancelled.
    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>>;

    /// Whether this monitor reports connectivity through
    /// [`connectivity_error`](Self::connectivity_error). Return `true` when you override it,
    /// so heartbeats carry `healthy=true` while it is `None`, and status snapshots consult
    /// it. Read once when the monitor is registered: it must not change afterwards.
    fn reports_connectivity(&self) -> bool {
        false
    }

    /// A problem the monitor is living with while its run loop keeps going (for example,
    /// stuck retrying a broken connection). While `Some`, a running monitor shows as
    /// `degraded` with this error. Called from status reads: keep it cheap and non-blocking.
    fn connectivity_error(&self) -> Option<StatusError> {
        None
    }

    /// A prerequisite probe that must pass before the monitor's component is ready
    /// (see [`probe`](crate::probe)). `None`, the default, means no prerequisite.
    fn prerequisite(&self) -> Option<Arc<dyn Probe>> {
        None
    }
}

impl fmt::Debug for dyn Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("name", &self.name())
            .finish()
    }
}

/// A [`Monitor`] built from a name and a closure; see [`monitor_fn`].
pub struct FnMonitor<F> {
    name: String,
    run: F,
}

impl<F> fmt::Debug for FnMonitor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnMonitor")
            .field("name", &self.name)
            .finish()
    }
}

/// Makes a monitor from a name and a closure that returns the run loop's future.
///
/// # Examples
///
/// ```
/// use daemonkit::monitor_fn;
///
/// let heartbeat = monitor_fn("heartbeat", |cancel| async move {
///     cancel.cancelled().await;
///     Ok(())
/// });
/// # use daemonkit::Monitor;
/// assert_eq!(heartbeat.name(), "heartbeat");
/// ```
pub fn monitor_fn<F, Fut>(name: impl Into<String>, run: F) -> Arc<FnMonitor<F>>
where
    F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    Arc::new(FnMonitor {
        name: name.into(),
        run,
    })
}

impl<F, Fut> Monitor for FnMonitor<F>
where
    F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin((self.run)(cancel))
    }
}
