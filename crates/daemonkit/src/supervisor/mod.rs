//! Supervision: keep monitors running, restart crashed ones with back-off, and say so.
//!
//! A [`Supervisor`] is built once ([`Supervisor::builder`], where names and policies are
//! checked), [`start`](Supervisor::start)ed once (which consumes it), and the [`Running`]
//! set it returns is shut down once ([`Running::shutdown`], which cancels and waits).
//! The types make the lifecycle impossible to get wrong: nothing can be started twice,
//! and nothing can be waited for without being cancelled first. Supervision never returns
//! an error: a crash is something to restart and report (through `tracing` and the
//! [`StatusTracker`]), not something to hand back to the caller.
//!
//! | module part | what it holds |
//! |---|---|
//! | [`RestartPolicy`] | back-off, stable threshold, degraded threshold, jitter, heartbeat, restart intensity |
//! | [`Supervisor`], [`SupervisorBuilder`] | the monitors and their policies |
//! | [`Running`], [`ShutdownReport`] | the started set and how it stopped |
//!
//! Log records, each with a stable `reason` field:
//!
//! | reason              | level | when |
//! |---------------------|-------|------|
//! | `MonitorStarted`    | info  | a run begins (first or restart) |
//! | `MonitorCrash`      | error | a run returned `Err`, with the error, streak and back-off |
//! | `MonitorPanic`      | error | a run panicked, with the panic message (then handled as a crash) |
//! | `MonitorDegraded`   | error | every `degraded_every`-th consecutive crash, with `current_backoff` |
//! | `MonitorExited`     | info  | a run returned `Ok(())`: stopped, no restart |
//! | `MonitorStopped`    | info  | cancelled during a run or a back-off |
//! | `MonitorHeartbeat`  | info  | every heartbeat interval while running, if enabled |
//! | `MonitorGaveUp`     | error | more crashes within the window than the policy's [`give_up_after`](RestartPolicyBuilder::give_up_after) allows: `failed`, not restarted |
//! | `MonitorShutdownTimeout` | error | a monitor did not return within the shutdown timeout |
//! | `SupervisorTaskPanicked` | error | a supervise task itself died (a bug or a panicking subscriber) |

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::duration::go_duration;
use crate::monitor::Monitor;
use crate::panic::panic_message;
use crate::status::{CheckFn, MonitorHandle, StatusTracker};

pub(crate) mod backoff;
mod control;
mod policy;
mod supervise;

pub use control::{Command, MonitorControl, Refused};
pub use policy::{RestartPolicy, RestartPolicyBuilder};

// ===== SupervisorBuilder =====

/// Configures a [`Supervisor`]; see [`Supervisor::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct SupervisorBuilder {
    policy: RestartPolicy,
    tracker: Option<StatusTracker>,
    monitors: Vec<(Arc<dyn Monitor>, Option<RestartPolicy>)>,
}

impl fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("policy", &self.policy)
            .field("monitors", &self.monitors.len())
            .finish_non_exhaustive()
    }
}

impl SupervisorBuilder {
    /// The policy of every monitor added without one of its own (default:
    /// [`RestartPolicy::default`], the Go daemonkit's).
    pub fn policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The tracker the monitors report to (default: a new one), e.g. one shared with a
    /// control plane set up first.
    pub fn tracker(mut self, tracker: StatusTracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// Adds a monitor, under the supervisor's policy.
    pub fn monitor(mut self, monitor: Arc<dyn Monitor>) -> Self {
        self.monitors.push((monitor, None));
        self
    }

    /// Adds a monitor with a policy of its own (its own back-off or heartbeat).
    pub fn monitor_with_policy(mut self, monitor: Arc<dyn Monitor>, policy: RestartPolicy) -> Self {
        self.monitors.push((monitor, Some(policy)));
        self
    }

    /// Checks the monitors' names and registers each with the tracker.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] (kind [`Config`](crate::ErrorKind::Config)) for the first
    /// name that is empty, too long, has `/` or a control character, or is taken (by
    /// another monitor here, or already in the tracker). On error nothing stays
    /// registered.
    pub fn build(self) -> Result<Supervisor, Error> {
        let tracker = self.tracker.unwrap_or_default();
        let shared = Arc::new(self.policy);
        let mut entries: Vec<Entry> = Vec::with_capacity(self.monitors.len());
        for (monitor, policy) in self.monitors {
            let check: Option<CheckFn> =
                match crate::panic::call(|| monitor.connectivity().is_some()) {
                    Ok(true) => {
                        let reporter = monitor.clone();
                        Some(Arc::new(move || {
                            reporter.connectivity().map_or(Ok(()), |c| c.check())
                        }))
                    }
                    Ok(false) => None,
                    Err(message) => Some(Arc::new(move || {
                        Err(crate::StatusError::new(
                            "MonitorPanic",
                            format!("the connectivity report panicked: {message}"),
                        ))
                    })),
                };
            let subtasks = crate::panic::call(|| monitor.subtasks().cloned()).unwrap_or_else(|message| {
                tracing::error!(reason = "MonitorPanic", monitor = %monitor.name(), panic = %message, "the monitor's subtasks() panicked; its sub-tasks are not shown");
                None
            });
            let handle = match tracker.register_with(monitor.name(), check, subtasks) {
                Ok(handle) => handle,
                Err(err) => {
                    for entry in &entries {
                        tracker.unregister(entry.handle.name());
                    }
                    return Err(err);
                }
            };
            let policy = policy.map_or_else(|| shared.clone(), Arc::new);
            entries.push(Entry {
                monitor,
                handle,
                policy,
                control: Arc::default(),
            });
        }
        Ok(Supervisor { tracker, entries })
    }
}

// ===== Supervisor =====

/// A set of monitors supervised together, each under its restart policy, all reporting
/// to one tracker.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::{monitor_fn, Supervisor};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let idle = || monitor_fn("idle", |cancel| async move {
///     cancel.cancelled().await;
///     Ok(())
/// });
/// // Names are checked when the supervisor is built.
/// assert!(Supervisor::builder().monitor(idle()).monitor(idle()).build().is_err());
///
/// let supervisor = Supervisor::builder().monitor(idle()).build().unwrap();
/// let running = supervisor.start(&CancellationToken::new());
/// // `shutdown` cancels the monitors itself, then waits for them.
/// let report = running.shutdown(Duration::from_secs(1)).await;
/// assert!(report.is_clean());
/// # }
/// ```
pub struct Supervisor {
    tracker: StatusTracker,
    entries: Vec<Entry>,
}

struct Entry {
    monitor: Arc<dyn Monitor>,
    handle: MonitorHandle,
    policy: Arc<RestartPolicy>,
    control: Arc<control::Shared>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field(
                "monitors",
                &self
                    .entries
                    .iter()
                    .map(|e| e.handle.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Supervisor {
    /// A builder with the default policy, a new tracker and no monitors.
    pub fn builder() -> SupervisorBuilder {
        SupervisorBuilder {
            policy: RestartPolicy::default(),
            tracker: None,
            monitors: Vec::new(),
        }
    }

    /// The tracker every monitor of this supervisor reports to.
    pub fn tracker(&self) -> &StatusTracker {
        &self.tracker
    }

    /// The monitors' names, in the order they were added.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|e| e.handle.name())
    }

    /// The operator's handle on the monitor called `name` (restart, stop, start), valid
    /// before and after [`start`](Self::start); commands are refused until the monitor's
    /// supervise loop runs. `None` when there is no such monitor.
    pub fn control(&self, name: &str) -> Option<MonitorControl> {
        self.entries
            .iter()
            .find(|e| e.handle.name() == name)
            .map(|e| MonitorControl {
                name: e.handle.shared_name().clone(),
                shared: e.control.clone(),
            })
    }

    /// Every monitor's [`MonitorControl`], in the order they were added.
    pub fn controls(&self) -> Vec<MonitorControl> {
        self.entries
            .iter()
            .map(|e| MonitorControl {
                name: e.handle.shared_name().clone(),
                shared: e.control.clone(),
            })
            .collect()
    }

    /// Spawns one supervise task per monitor on the current tokio runtime and returns
    /// them as a [`Running`] set, whose own token is a child of `parent`: cancelling
    /// `parent` stops them too.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`tokio::spawn`]).
    pub fn start(self, parent: &CancellationToken) -> Running {
        let token = parent.child_token();
        let tasks = self
            .entries
            .into_iter()
            .map(|entry| {
                let name = entry.handle.shared_name().clone();
                // Marked supervised before the task runs, so a command sent right after
                // `start` returns is not refused.
                entry.control.set_supervised(true);
                let control = MonitorControl {
                    name,
                    shared: entry.control.clone(),
                };
                let task = tokio::spawn(supervise::supervise(
                    entry.monitor,
                    entry.handle,
                    entry.policy,
                    entry.control,
                    token.clone(),
                ));
                (task, control)
            })
            .collect();
        Running {
            token,
            tasks,
            tracker: self.tracker,
        }
    }
}

// ===== Running =====

/// The supervise tasks started by [`Supervisor::start`].
///
/// Shut it down with [`shutdown`](Self::shutdown), which cancels the monitors and waits
/// for them up to a timeout. Dropping it instead cancels the monitors without waiting.
#[must_use = "dropping a Running cancels its monitors at once; call `shutdown` to wait for them"]
pub struct Running {
    token: CancellationToken,
    /// Each monitor's task, and its control (which also names it).
    tasks: Vec<(JoinHandle<()>, MonitorControl)>,
    tracker: StatusTracker,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("monitors", &self.tasks.len())
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}

/// What [`Running::shutdown`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Monitors whose run loop had not returned when the timeout passed, by name.
    pub late: Vec<String>,
    /// Monitors whose supervise task itself died, with the panic message (a panic inside
    /// the kit or a tracing subscriber; the monitor's own panics are caught and restarted).
    pub panicked: Vec<(String, String)>,
}

impl ShutdownReport {
    /// True when every monitor stopped in time and no supervise task died.
    pub fn is_clean(&self) -> bool {
        self.late.is_empty() && self.panicked.is_empty()
    }
}

impl Running {
    /// The tracker the monitors report to.
    pub fn tracker(&self) -> &StatusTracker {
        &self.tracker
    }

    /// The operator's handle on the running monitor called `name`; `None` when there is
    /// no such monitor.
    pub fn control(&self, name: &str) -> Option<MonitorControl> {
        self.tasks
            .iter()
            .find(|(_, control)| control.name() == name)
            .map(|(_, control)| control.clone())
    }

    /// Cancels every monitor, waits until each supervise task has finished or `timeout`
    /// has passed, then aborts the stragglers and names them (each with a
    /// `MonitorShutdownTimeout` error record), and names any supervise task that died.
    ///
    /// A monitor that blocks its thread cannot be aborted (abort takes effect at an
    /// `.await`); [`Daemon::run_main`](crate::Daemon::run_main) bounds the process for
    /// that case.
    pub async fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        self.token.cancel();
        let mut tasks = std::mem::take(&mut self.tasks);
        let mut report = ShutdownReport::default();
        let deadline = tokio::time::Instant::now() + timeout;
        for (task, control) in tasks.iter_mut() {
            let name = control.name();
            match tokio::time::timeout_at(deadline, &mut *task).await {
                Ok(Ok(())) => {}
                Ok(Err(join)) => {
                    let message = if join.is_panic() {
                        panic_message(join.into_panic().as_ref())
                    } else {
                        join.to_string()
                    };
                    tracing::error!(reason = "SupervisorTaskPanicked", monitor = %name, panic = %message, "a supervise task died");
                    report.panicked.push((name.to_string(), message));
                }
                Err(_elapsed) => {
                    task.abort();
                    report.late.push(name.to_string());
                }
            }
        }
        report.late.sort();
        for name in &report.late {
            tracing::error!(
                reason = "MonitorShutdownTimeout",
                monitor = %name,
                timeout = %go_duration(timeout),
                "monitor did not stop within the shutdown timeout"
            );
        }
        report
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
