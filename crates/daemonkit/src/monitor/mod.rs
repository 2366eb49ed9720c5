//! The monitor contract: a named, long-running async work loop the supervisor keeps alive.
//!
//! | item | what it gives you |
//! |---|---|
//! | [`Monitor`], [`Connectivity`] | the contract, and the `degraded` report of a monitor alive but failing |
//! | [`monitor_fn`] | a monitor from a closure that is the whole run loop |
//! | [`every`], [`Periodic`] | a monitor that runs one tick of work every period (the common case) |
//! | [`prerequisites`] | the probe of a component's monitors |
//!
//! The user guide's "Writing a monitor" section walks through the contract with examples.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use crate::boxed::{BoxError, BoxFuture};
use crate::probe::{Composite, Probe, ProbeError};
use crate::status::{StatusError, StatusTracker};

mod periodic;

pub use periodic::{FirstTick, MIN_PERIOD, OnError, Periodic, every};

/// A long-running async work loop with a stable name, kept alive by the
/// [`Supervisor`](crate::Supervisor).
///
/// # Writing a monitor
///
/// The contract of [`run`](Self::run):
/// - `Ok(())` is a clean exit: the monitor is marked `stopped` and not restarted;
/// - `Err(e)` is a crash: the supervisor restarts it after a back-off;
/// - a panic is a crash too — in the future or in `run` itself before it returns the
///   future — caught by the supervisor (reason `MonitorPanic`), never a process abort;
/// - cancellation of the token means shutdown: return promptly (within the daemon's
///   shutdown timeout) whatever you were doing.
///
/// **Never block the thread.** A monitor shares its runtime's threads with every other
/// monitor, the control plane and the watchdog keepalive; on a current-thread runtime
/// (the demo's) it shares the only one. A blocking call (`std::fs` on a hung NFS mount,
/// `std::thread::sleep`, a blocking client library, a long computation) stalls all of
/// them: `/health` stops answering and systemd's watchdog eventually kills the process.
/// Put blocking work in [`tokio::task::spawn_blocking`] or a thread of its own and await
/// its result; the kit reports a stalled runtime with reason `RuntimeStalled`.
///
/// The trait is object-safe so monitors of different types live in one
/// `Vec<Arc<dyn Monitor>>`. Optional capabilities are default methods: return
/// `Some(self)` from [`connectivity`](Self::connectivity) for a monitor that can be alive
/// but failing, and a probe from [`prerequisite`](Self::prerequisite) for one that needs
/// something of the host before it starts.
///
/// For a monitor that is just a closure, see [`monitor_fn`]; for one that does a tick of
/// work every period, see [`every`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use daemonkit::{BoxError, BoxFuture, Connectivity, Monitor, StatusError};
/// use tokio_util::sync::CancellationToken;
///
/// #[derive(Default)]
/// struct Uplink {
///     connected: AtomicBool,
/// }
///
/// impl Monitor for Uplink {
///     fn name(&self) -> &str {
///         "uplink"
///     }
///
///     fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
///         Box::pin(async move {
///             // Real work would (re)connect in a loop until cancelled.
///             self.connected.store(true, Ordering::Relaxed);
///             cancel.cancelled().await;
///             Ok(())
///         })
///     }
///
///     fn connectivity(&self) -> Option<&dyn Connectivity> {
///         Some(self)
///     }
/// }
///
/// impl Connectivity for Uplink {
///     fn check(&self) -> Result<(), StatusError> {
///         if self.connected.load(Ordering::Relaxed) {
///             Ok(())
///         } else {
///             Err(StatusError::new("UplinkDown", "not connected to the uplink"))
///         }
///     }
/// }
///
/// let monitors: Vec<Arc<dyn Monitor>> = vec![Arc::new(Uplink::default())];
/// assert_eq!(monitors[0].name(), "uplink");
/// assert!(monitors[0].connectivity().unwrap().check().is_err());
/// ```
pub trait Monitor: Send + Sync + 'static {
    /// The monitor's stable name: the key in status reports, logs and metrics. Non-empty,
    /// at most 128 bytes, no `/`, no control characters, no leading or trailing space.
    fn name(&self) -> &str;

    /// Runs the work loop until it fails, finishes, or `cancel` is cancelled.
    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>>;

    /// The monitor's connectivity report, if it gives one: return `Some(self)` and
    /// implement [`Connectivity`]. `None`, the default, means it reports none and is
    /// healthy whenever it runs. Read once, when the monitor is registered.
    fn connectivity(&self) -> Option<&dyn Connectivity> {
        None
    }

    /// The tracker of the sub-tasks this monitor supervises itself (with a
    /// [`Supervisor`](crate::Supervisor) of its own whose tracker this is), so their
    /// states appear under the monitor in `/status` (`"subtasks": {…}`) instead of only
    /// in its logs. `None`, the default, means no sub-tasks. Read once, when the monitor
    /// is registered.
    fn subtasks(&self) -> Option<&StatusTracker> {
        None
    }

    /// A prerequisite probe that must pass before the monitor's component is ready
    /// (see [`probe`](crate::probe)). `None`, the default, means no prerequisite.
    fn prerequisite(&self) -> Option<Arc<dyn Probe>> {
        None
    }
}

/// A monitor's report on what it depends on: a monitor can be alive (its run loop going)
/// but failing (stuck retrying a broken connection), and says so here.
///
/// While a running monitor's [`check`](Self::check) returns `Err`, it shows as `degraded`
/// with that error. Leave the error's `since` unset: the kit keeps the time it first saw
/// the reason, until the check passes or reports another reason.
pub trait Connectivity: Send + Sync {
    /// `Ok(())` while healthy; the problem while failing. Called on every status read
    /// and heartbeat: keep it cheap and non-blocking (read an atomic or a mutex-guarded
    /// value the run loop keeps up to date).
    ///
    /// # Errors
    ///
    /// The operator-facing error to show while the monitor is degraded.
    fn check(&self) -> Result<(), StatusError>;
}

impl fmt::Debug for dyn Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("name", &self.name())
            .finish()
    }
}

/// The probe of a component made of `monitors`: a [`Composite`] of every monitor's
/// [`prerequisite`](Monitor::prerequisite), in order.
///
/// Returns `None` when no monitor declares one: the component has nothing to wait for
/// and is ready at once. A `prerequisite` that panics contributes a probe that fails
/// with reason `ProbePanicked`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use daemonkit::{monitor_fn, Monitor};
///
/// let worker = monitor_fn("worker", |cancel| async move {
///     cancel.cancelled().await;
///     Ok(())
/// });
/// let monitors: Vec<Arc<dyn Monitor>> = vec![worker];
/// assert!(daemonkit::monitor::prerequisites("workers", &monitors).is_none());
/// ```
pub fn prerequisites(
    component: impl Into<String>,
    monitors: &[Arc<dyn Monitor>],
) -> Option<Composite> {
    let probes: Vec<Arc<dyn Probe>> = monitors
        .iter()
        .filter_map(|m| match crate::panic::call(|| m.prerequisite()) {
            Ok(probe) => probe,
            Err(message) => {
                let what = format!("the prerequisite of monitor {:?}", m.name());
                let probe = crate::probe::probe_fn("panicked prerequisite", move || {
                    let err = ProbeError::panicked(&what, &message);
                    async move { Err(err) }
                });
                Some(Arc::new(probe) as Arc<dyn Probe>)
            }
        })
        .collect();
    if probes.is_empty() {
        return None;
    }
    Some(Composite::from_probes(component, probes))
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
