//! [`MonitorControl`]: an operator's restart, stop and start of one supervised monitor.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What an operator asked of one monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// Cancel the current run (or back-off) and start it again at once, with the back-off
    /// and crash streak reset.
    Restart,
    /// Cancel the current run and keep the monitor stopped until [`Command::Start`].
    Stop,
    /// Start a monitor that is stopped (by [`Command::Stop`] or a clean exit).
    Start,
}

impl Command {
    /// The command's name, as in the control plane's `/monitors/<name>/<command>`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Restart => "restart",
            Command::Stop => "stop",
            Command::Start => "start",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a [`MonitorControl`] command was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// The monitor's supervisor has not started (its component waits for its
    /// prerequisites) or has shut down.
    NotSupervised,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotSupervised => f.write_str(
                "the monitor is not supervised right now (its component has not started, or the daemon is stopping)",
            ),
        }
    }
}

/// The shared state between a [`MonitorControl`] and the supervise loop.
///
/// While the monitor runs, a command cancels the run's token itself (the loop does not
/// wait on `notify` beside every run: an idle monitor's task stays small); while it
/// backs off or is stopped, the loop waits on `notify`.
#[derive(Default)]
pub(crate) struct Shared {
    notify: Notify,
    state: Mutex<Pending>,
    supervised: AtomicBool,
}

#[derive(Default)]
struct Pending {
    /// The command not yet carried out, and who sent it.
    command: Option<(Command, Arc<str>)>,
    /// The token of the run in progress, if one is.
    run: Option<CancellationToken>,
}

impl Shared {
    /// Waits for the next command and who sent it. No command is lost: `Notify` keeps a
    /// permit when nobody waits, and the command itself sits in `pending`.
    pub(crate) async fn next(&self) -> (Command, Arc<str>) {
        loop {
            if let Some(command) = self.take() {
                return command;
            }
            self.notify.notified().await;
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Only assignments and a token's cancel (which runs no user code) happen under
        // this lock.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn take(&self) -> Option<(Command, Arc<str>)> {
        self.pending().command.take()
    }

    /// Marks `run` as the run in progress: a command sent from now on cancels it, and
    /// one already waiting cancels it at once.
    pub(crate) fn arm(&self, run: &CancellationToken) {
        let mut pending = self.pending();
        if pending.command.is_some() {
            run.cancel();
        }
        pending.run = Some(run.clone());
    }

    /// Ends the run in progress; the command that cut it short, if one did (or arrived
    /// as it ended).
    pub(crate) fn disarm(&self) -> Option<(Command, Arc<str>)> {
        let mut pending = self.pending();
        pending.run = None;
        pending.command.take()
    }

    /// Records a command: cancels the run in progress, if any, and wakes a waiting loop.
    fn send(&self, command: Command, by: &str) {
        let mut pending = self.pending();
        pending.command = Some((command, Arc::from(by)));
        if let Some(run) = &pending.run {
            run.cancel();
        }
        drop(pending);
        self.notify.notify_one();
    }

    pub(crate) fn set_supervised(&self, supervised: bool) {
        self.supervised.store(supervised, Ordering::SeqCst);
        if !supervised {
            // A command nobody will carry out is dropped, not left for a later start.
            self.take();
        }
    }
}

/// An operator's handle on one supervised monitor: restart it, stop it, start it again,
/// without touching the other monitors. From [`Supervisor::control`](super::Supervisor::control)
/// or [`Running::control`](super::Running::control); cheap to clone.
///
/// A command is carried out by the monitor's supervise loop: a restart cancels the
/// current run (waiting for it to return, as at shutdown) and starts the monitor again at
/// once, with its back-off and crash streak reset; a stop cancels it and keeps it stopped;
/// a start starts a stopped monitor. The latest command wins if several arrive before the
/// loop takes them. Logged with reason `MonitorRestartRequested`,
/// `MonitorStopRequested` or `MonitorStartRequested` and who asked.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::{monitor_fn, MonitorState, Supervisor};
/// use daemonkit::supervisor::Command;
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let idle = monitor_fn("idle", |cancel| async move {
///     cancel.cancelled().await;
///     Ok(())
/// });
/// let supervisor = Supervisor::builder().monitor(idle).build().unwrap();
/// let control = supervisor.control("idle").unwrap();
/// let tracker = supervisor.tracker().clone();
/// let running = supervisor.start(&CancellationToken::new());
/// while tracker.get("idle").unwrap().state != MonitorState::Running {
///     tokio::task::yield_now().await;
/// }
/// control.send(Command::Stop, "uid 0").unwrap();
/// while tracker.get("idle").unwrap().state != MonitorState::Stopped {
///     tokio::task::yield_now().await;
/// }
/// assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
/// # }
/// ```
#[derive(Clone)]
pub struct MonitorControl {
    pub(crate) name: Arc<str>,
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for MonitorControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorControl")
            .field("monitor", &self.name)
            .finish()
    }
}

impl MonitorControl {
    /// The monitor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the monitor's supervise loop to carry out `command`; `by` says who asked (a
    /// peer's uid, an operator's name), for the log.
    ///
    /// # Errors
    ///
    /// [`Refused::NotSupervised`] when no supervise loop runs the monitor right now.
    pub fn send(&self, command: Command, by: &str) -> Result<(), Refused> {
        if !self.shared.supervised.load(Ordering::SeqCst) {
            return Err(Refused::NotSupervised);
        }
        self.shared.send(command, by);
        Ok(())
    }
}
