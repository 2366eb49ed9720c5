//! The Daemon runner: everything wired in the right order, in a few lines.
//!
//! [`DaemonBuilder::run`] does, in order:
//!
//! 1. catch SIGINT and SIGTERM (and SIGHUP for the reload hook);
//! 2. run the start-up probes (those given with [`DaemonBuilder::probe`] and every
//!    monitor's [`prerequisite`](crate::Monitor::prerequisite)); a failure ends the run
//!    with the probe's reason and resolution, sent to systemd as `STATUS=`;
//! 3. start the monitors under the supervisor;
//! 4. start the control plane, serving the listener systemd passed (`LISTEN_FDS`) when
//!    there is one, binding its own socket otherwise;
//! 5. start the watchdog keepalive when systemd enabled it (`WATCHDOG_USEC`);
//! 6. send `READY=1` — only now, once the socket accepts connections;
//! 7. on SIGHUP: `RELOADING=1`, the reload hook, `READY=1`;
//! 8. on SIGINT/SIGTERM: `STOPPING=1`, cancel everything, wait up to the shutdown
//!    deadline and name every monitor that did not stop in time.
//!
//! The [`Exit`] it returns says how it ended, and converts into a process exit code.

use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::activation::ListenFds;
use crate::monitor::{BoxError, BoxFuture, Monitor};
use crate::notify::Notifier;
use crate::probe::{Composite, Probe, ProbeError};
use crate::server::{BoundControlPlane, ControlPlane, ControlPlaneBuilder, monitors_ready};
use crate::status::StatusTracker;
use crate::supervisor::{RestartPolicy, Supervisor};
use crate::watchdog::Watchdog;
use crate::{Error, paths};

type ReloadFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;
type AliveFn = Arc<dyn Fn() -> bool + Send + Sync>;

/// A daemon: monitors, start-up probes, a control plane and systemd integration, run in
/// the right order by [`DaemonBuilder::run`].
///
/// # Examples
///
/// ```no_run
/// use daemonkit::{Daemon, monitor_fn};
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     let exit = Daemon::builder("inventory-agent")
///         .monitor(monitor_fn("scanner", |cancel| async move {
///             cancel.cancelled().await;
///             Ok(())
///         }))
///         .run()
///         .await;
///     if !matches!(exit, daemonkit::daemon::Exit::Clean) {
///         eprintln!("inventory-agent: {exit}");
///     }
///     exit.into()
/// }
/// ```
pub struct Daemon {
    _private: (),
}

impl Daemon {
    /// A builder for a daemon called `name`. Its control socket defaults to
    /// [`paths::default_socket_path(name)`](paths::default_socket_path).
    pub fn builder(name: impl Into<String>) -> DaemonBuilder {
        let name = name.into();
        DaemonBuilder {
            control_plane: ControlPlane::builder(paths::default_socket_path(&name)),
            name,
            policy: RestartPolicy::default(),
            monitors: Vec::new(),
            probes: Vec::new(),
            tracker: StatusTracker::new(),
            shutdown_deadline: Duration::from_secs(10),
            reload: None,
            alive: None,
            notifier: None,
        }
    }
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Daemon")
    }
}

/// Configures a [`Daemon`]; see [`Daemon::builder`].
pub struct DaemonBuilder {
    name: String,
    policy: RestartPolicy,
    monitors: Vec<Arc<dyn Monitor>>,
    probes: Vec<Arc<dyn Probe>>,
    tracker: StatusTracker,
    control_plane: ControlPlaneBuilder,
    shutdown_deadline: Duration,
    reload: Option<ReloadFn>,
    alive: Option<AliveFn>,
    notifier: Option<Notifier>,
}

impl fmt::Debug for DaemonBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaemonBuilder")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("monitors", &self.monitors)
            .field("probes", &self.probes.len())
            .field("shutdown_deadline", &self.shutdown_deadline)
            .finish_non_exhaustive()
    }
}

impl DaemonBuilder {
    /// Adds a monitor. Names are checked when the daemon runs: an empty or duplicate name
    /// ends the run with [`Exit::Config`].
    pub fn monitor(mut self, monitor: Arc<dyn Monitor>) -> Self {
        self.monitors.push(monitor);
        self
    }

    /// The restart policy of every monitor (default: [`RestartPolicy::default`]).
    pub fn policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Adds a start-up probe, run (concurrently with the others) before any monitor
    /// starts. Wrap it in [`Retry`](crate::probe::Retry) to wait for a prerequisite.
    pub fn probe(mut self, probe: impl Probe) -> Self {
        self.probes.push(Arc::new(probe));
        self
    }

    /// Configures the control plane: socket path, TCP listener, components, limits,
    /// extra metrics. The daemon sets its `/status` (the tracker snapshot), `/ready` and
    /// `/metrics`, and serves a listener passed by systemd in place of the socket path.
    pub fn control_plane(mut self, control_plane: ControlPlaneBuilder) -> Self {
        self.control_plane = control_plane;
        self
    }

    /// How long shutdown waits for monitors to return after cancellation (default 10 s).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
        self
    }

    /// Runs `reload` on SIGHUP, between `RELOADING=1` and `READY=1` (for systemd's
    /// `Type=notify-reload`). Without a hook, SIGHUP is logged and ignored.
    pub fn on_reload<F, Fut>(mut self, reload: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.reload = Some(Arc::new(move || Box::pin(reload())));
        self
    }

    /// Withholds the systemd watchdog ping while `alive` returns false, so systemd
    /// restarts a daemon that is running but stuck.
    pub fn watchdog_alive(mut self, alive: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.alive = Some(Arc::new(alive));
        self
    }

    /// Where to send sd_notify messages (default: [`Notifier::from_env`]).
    pub fn notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// The tracker the monitors will report to, for watching transitions
    /// ([`StatusTracker::on_transition`]) before the daemon runs.
    pub fn tracker(&self) -> &StatusTracker {
        &self.tracker
    }

    /// Runs the daemon until SIGINT or SIGTERM (or a start-up failure) and says how it
    /// ended. Must be called inside a tokio runtime with I/O, time and signals enabled.
    pub async fn run(self) -> Exit {
        let notifier = match self.notifier.clone().map_or_else(Notifier::from_env, Ok) {
            Ok(notifier) => notifier,
            Err(err) => return Exit::Config(err),
        };
        let exit = self.run_with(&notifier).await;
        match &exit {
            Exit::Clean => {}
            Exit::ProbeFailed(err) => {
                let _ = notifier.status(&format!("start-up probe failed: {err}"));
            }
            other => {
                let _ = notifier.status(&other.to_string());
            }
        }
        exit
    }

    async fn run_with(self, notifier: &Notifier) -> Exit {
        // 1. Signals first, so a signal during start-up is not lost to the default action.
        let signals = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        );
        let (mut int, mut term, mut hup) = match signals {
            (Ok(int), Ok(term), Ok(hup)) => (int, term, hup),
            (Err(source), _, _) | (_, Err(source), _) | (_, _, Err(source)) => {
                return Exit::Failed(Error::Signal { source });
            }
        };

        let tracker = self.tracker.clone();
        let mut supervisor = Supervisor::with_tracker(self.policy, tracker.clone());
        for monitor in &self.monitors {
            if let Err(err) = supervisor.add(monitor.clone()) {
                return Exit::Config(err);
            }
        }

        // 2. Start-up probes: the daemon's own and the monitors' prerequisites.
        let mut probes = Composite::from_probes(self.name.clone(), self.probes);
        if let Some(prerequisites) = Composite::from_monitors("monitors", &self.monitors) {
            probes.push(Arc::new(prerequisites));
        }
        if !probes.probes().is_empty() {
            let _ = notifier.status("checking prerequisites");
            tokio::select! {
                result = probes.check() => if let Err(err) = result {
                    tracing::error!(
                        reason = "StartupProbeFailed",
                        probe_reason = %err.reason,
                        error = %err.message,
                        resolution = %err.resolution,
                        "start-up probe failed; not starting"
                    );
                    return Exit::ProbeFailed(err);
                },
                _ = int.recv() => return Exit::Clean,
                _ = term.recv() => return Exit::Clean,
            }
        }

        // 3. Monitors.
        let cancel = CancellationToken::new();
        let running = supervisor.start(&cancel);

        // 4. Control plane, on systemd's listener when one was passed.
        let ready_tracker = tracker.clone();
        let status_tracker = tracker.clone();
        let mut control_plane = self
            .control_plane
            .status(move || status_tracker.snapshot())
            .ready(move || monitors_ready(&ready_tracker))
            .metrics(&tracker);
        match ListenFds::from_env().and_then(|mut fds| fds.take_unix_listener(None)) {
            Ok(Some(listener)) => control_plane = control_plane.listener(listener),
            Ok(None) => {}
            Err(err) => return stop_early(cancel, running, Exit::Config(err)).await,
        }
        let bound: BoundControlPlane = match control_plane.bind().await {
            Ok(bound) => bound,
            Err(err) => return stop_early(cancel, running, Exit::Failed(err)).await,
        };
        let socket = bound.socket_path().to_path_buf();
        let server = tokio::spawn(bound.serve(cancel.clone()));

        // 5. Watchdog keepalive, when systemd asked for one.
        let watchdog = match Watchdog::from_env(notifier.clone()) {
            Ok(watchdog) => watchdog,
            Err(err) => return stop_early(cancel, running, Exit::Config(err)).await,
        };
        let watchdog = match self.alive {
            Some(alive) => watchdog.with_is_alive(move || alive()),
            None => watchdog,
        };
        let watchdog = tokio::spawn(watchdog.run(cancel.clone()));

        // 6. READY=1: the socket is listening, so a client started now is answered.
        let running_status = format!(
            "running {} monitors; control socket {}",
            self.monitors.len(),
            socket.display()
        );
        if let Err(err) = notifier
            .ready()
            .and_then(|()| notifier.status(&running_status))
        {
            tracing::warn!(reason = "NotifyFailed", error = %err, "cannot tell systemd we are ready");
        }
        tracing::info!(reason = "DaemonReady", daemon = %self.name, socket = %socket.display(), "daemon ready");

        // 7. Serve until told to stop; reload on SIGHUP.
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = hup.recv() => reload(notifier, self.reload.as_ref(), &running_status).await,
            }
        }

        // 8. Stop.
        tracing::info!(reason = "DaemonStopping", daemon = %self.name, "stopping");
        if let Err(err) = notifier.stopping() {
            tracing::warn!(reason = "NotifyFailed", error = %err, "cannot tell systemd we are stopping");
        }
        cancel.cancel();
        let report = running.shutdown(self.shutdown_deadline).await;
        let _ = watchdog.await;
        let served = match server.await {
            Ok(result) => result,
            Err(join) => Err(Error::TaskPanicked {
                task: "control-plane".into(),
                message: join.to_string(),
            }),
        };
        if !report.late.is_empty() {
            return Exit::ShutdownTimedOut(report.late);
        }
        if let Err(err) = served {
            return Exit::Failed(err);
        }
        tracing::info!(reason = "DaemonStopped", daemon = %self.name, "stopped cleanly");
        Exit::Clean
    }
}

/// Cancels monitors that were already started when start-up fails later on.
async fn stop_early(cancel: CancellationToken, running: crate::Running, exit: Exit) -> Exit {
    cancel.cancel();
    let _ = running.shutdown(Duration::from_secs(1)).await;
    exit
}

async fn reload(notifier: &Notifier, hook: Option<&ReloadFn>, running_status: &str) {
    let Some(hook) = hook else {
        tracing::info!(
            reason = "ReloadIgnored",
            "SIGHUP received; no reload hook set"
        );
        return;
    };
    if let Err(err) = notifier.reloading() {
        tracing::warn!(reason = "NotifyFailed", error = %err, "cannot tell systemd we are reloading");
    }
    match hook().await {
        Ok(()) => tracing::info!(reason = "Reloaded", "configuration reloaded"),
        Err(err) => {
            tracing::error!(reason = "ReloadFailed", error = %err, "reload failed; keeping the running configuration")
        }
    }
    if let Err(err) = notifier
        .ready()
        .and_then(|()| notifier.status(running_status))
    {
        tracing::warn!(reason = "NotifyFailed", error = %err, "cannot tell systemd we are ready again");
    }
}

// ===== Exit =====

/// How a [`DaemonBuilder::run`] ended. Converts into the process exit code.
#[derive(Debug)]
pub enum Exit {
    /// Stopped on SIGINT/SIGTERM, every monitor in time: exit code 0.
    Clean,
    /// A start-up probe failed: exit code 69 (`EX_UNAVAILABLE`), nothing was started.
    ProbeFailed(ProbeError),
    /// The configuration cannot work (monitor names, systemd environment): exit code 78
    /// (`EX_CONFIG`).
    Config(Error),
    /// These monitors did not stop before the shutdown deadline: exit code 1.
    ShutdownTimedOut(Vec<String>),
    /// Something failed at run time (the control socket, signals): exit code 1.
    Failed(Error),
}

impl Exit {
    /// The process exit code: 0, 1, 69 or 78 (see the variants).
    pub fn code(&self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::ShutdownTimedOut(_) | Exit::Failed(_) => 1,
            Exit::ProbeFailed(_) => 69,
            Exit::Config(_) => 78,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Clean => f.write_str("stopped cleanly"),
            Exit::ProbeFailed(err) => {
                write!(f, "start-up probe failed: {}: {}", err.reason, err.message)?;
                if !err.resolution.is_empty() {
                    write!(f, "\nresolution: {}", err.resolution)?;
                }
                Ok(())
            }
            Exit::Config(err) => write!(f, "invalid configuration: {err}"),
            Exit::ShutdownTimedOut(late) => write!(
                f,
                "monitors did not stop before the shutdown deadline: {}",
                late.join(", ")
            ),
            Exit::Failed(err) => write!(f, "daemon failed: {err}"),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
