//! The Daemon runner: everything wired in the right order, in a few lines.
//!
//! [`DaemonBuilder::build`] checks every piece of configuration first — monitor names,
//! policies, control-plane settings, and the environment systemd set (`NOTIFY_SOCKET`,
//! `WATCHDOG_USEC`/`WATCHDOG_PID`, `LISTEN_FDS`) — so a mistake is found before anything
//! runs or any file is touched, and ends the process with 78. [`Daemon::run`] then does,
//! in order:
//!
//! 1. catch SIGINT and SIGTERM (and SIGHUP for the reload hook);
//! 2. claim the control socket (or take the listener systemd passed) and serve it, so
//!    a second instance fails here ([`Exit::SocketInUse`], 75) before any monitor runs,
//!    and an operator can ask `/status` while prerequisites are checked;
//! 3. run the start-up probes (those given with [`DaemonBuilder::probe`] and every
//!    monitor's [`prerequisite`](crate::Monitor::prerequisite)); a failure ends the run
//!    with the probe's reason and resolution ([`Exit::ProbeFailed`], 69), also sent to
//!    systemd as `STATUS=`;
//! 4. start the monitors under the supervisor;
//! 5. start the watchdog keepalive when systemd enabled it;
//! 6. send `READY=1` — only now, once the socket accepts connections and work has begun;
//! 7. on SIGHUP: `RELOADING=1`, the reload hook, `READY=1`;
//! 8. on SIGINT/SIGTERM: `STOPPING=1`, cancel everything, wait up to the shutdown
//!    timeout and name every monitor that did not stop in time.
//!
//! [`Daemon::run_main`] builds the runtime too and bounds the whole process: it exits
//! within the shutdown timeout plus [`SHUTDOWN_MARGIN`] of SIGTERM even when a monitor
//! blocks its thread or `spawn_blocking` work hangs. The [`Exit`] says how it ended and
//! converts into the process exit code.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::boxed::{BoxError, BoxFuture};
use crate::monitor::{self, Monitor};
use crate::probe::{Composite, Probe, ProbeError};
use crate::server::{ControlPlane, ControlPlaneBuilder};
use crate::stall::StallDetector;
use crate::status::{StatusTracker, monitors_ready};
use crate::supervisor::{RestartPolicy, Supervisor};
use crate::systemd::{ListenFds, Notifier, Watchdog};
use crate::{Error, ErrorKind, panic, paths};

type ReloadFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;
type AliveFn = Arc<dyn Fn() -> bool + Send + Sync>;
type ReadyHook = Box<dyn FnOnce() + Send>;

/// How long past the shutdown timeout [`Daemon::run_main`] lets the process live before
/// it exits regardless: time for the runtime to drop its tasks and for log lines to be
/// written.
pub const SHUTDOWN_MARGIN: Duration = Duration::from_millis(200);

// ===== DaemonBuilder =====

/// Configures a [`Daemon`]; see [`Daemon::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct DaemonBuilder {
    name: String,
    policy: RestartPolicy,
    monitors: Vec<(Arc<dyn Monitor>, Option<RestartPolicy>)>,
    probes: Vec<Arc<dyn Probe>>,
    tracker: StatusTracker,
    control_plane: ControlPlaneBuilder,
    shutdown_timeout: Duration,
    reload: Option<ReloadFn>,
    alive: Option<AliveFn>,
    notifier: Option<Notifier>,
}

impl fmt::Debug for DaemonBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaemonBuilder")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("monitors", &self.monitors.len())
            .field("probes", &self.probes.len())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl DaemonBuilder {
    /// Adds a monitor, under the daemon's restart policy.
    pub fn monitor(mut self, monitor: Arc<dyn Monitor>) -> Self {
        self.monitors.push((monitor, None));
        self
    }

    /// Adds a monitor with a restart policy of its own.
    pub fn monitor_with_policy(mut self, monitor: Arc<dyn Monitor>, policy: RestartPolicy) -> Self {
        self.monitors.push((monitor, Some(policy)));
        self
    }

    /// The restart policy of every monitor added without its own (default:
    /// [`RestartPolicy::default`]).
    pub fn policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Adds a start-up probe, run (concurrently with the others) before any monitor
    /// starts; a failure ends the run with exit 69. Wrap it in
    /// [`Retry`](crate::probe::Retry) to wait for a prerequisite.
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
    /// With [`Daemon::run_main`] the process exits by this plus [`SHUTDOWN_MARGIN`] after
    /// SIGTERM, whatever its threads are doing: keep it below systemd's `TimeoutStopSec`.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Runs `reload` on SIGHUP, between `RELOADING=1` and `READY=1` (for systemd's
    /// `Type=notify-reload`). Without a hook, SIGHUP is logged and ignored. A panicking
    /// hook is logged as a failed reload (`ReloadFailed`); the daemon keeps running.
    pub fn on_reload<F, Fut>(mut self, reload: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.reload = Some(Arc::new(move || Box::pin(reload())));
        self
    }

    /// Withholds the systemd watchdog ping while `alive` returns false (or panics), so
    /// systemd restarts a daemon that is running but stuck.
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

    /// Checks every piece of configuration and the environment systemd set, and claims
    /// the sockets systemd passed. Nothing runs and nothing is touched on disk.
    ///
    /// # Errors
    ///
    /// An [`Error`] of kind [`Config`](ErrorKind::Config): a bad daemon, monitor or
    /// component name, a control-plane limit that cannot work, or a malformed
    /// `NOTIFY_SOCKET`, `WATCHDOG_USEC`/`WATCHDOG_PID` or `LISTEN_FDS`.
    pub fn build(self) -> Result<Daemon, Error> {
        check_daemon_name(&self.name)?;
        let mut supervisor = Supervisor::builder()
            .policy(self.policy)
            .tracker(self.tracker.clone());
        let monitors: Vec<Arc<dyn Monitor>> =
            self.monitors.iter().map(|(m, _)| m.clone()).collect();
        for (monitor, policy) in self.monitors {
            supervisor = match policy {
                Some(policy) => supervisor.monitor_with_policy(monitor, policy),
                None => supervisor.monitor(monitor),
            };
        }
        let supervisor = supervisor.build()?;

        let notifier = match self.notifier {
            Some(notifier) => notifier,
            None => Notifier::from_env()?,
        };
        let mut watchdog = Watchdog::from_env(notifier.clone())?;
        if let Some(alive) = self.alive {
            watchdog = watchdog.with_is_alive(move || {
                panic::call(|| alive()).unwrap_or_else(|message| {
                    tracing::error!(reason = "WatchdogAlivePanicked", panic = %message, "the watchdog is-alive check panicked; withholding the keepalive");
                    false
                })
            });
        }

        let ready_tracker = self.tracker.clone();
        let status_tracker = self.tracker.clone();
        // Stalls of the runtime show on /metrics and through `Daemon::stall_detector`.
        let stall = self.control_plane.stall.clone().unwrap_or_default();
        let mut control_plane = self
            .control_plane
            .stall_detector(&stall)
            .status(move || status_tracker.snapshot())
            .ready(move || monitors_ready(&ready_tracker))
            .metrics(&self.tracker);
        if let Some(listener) = ListenFds::from_env()?.take_unix_listener(None)? {
            control_plane = control_plane.listener(listener);
        }
        let control_plane = control_plane.build()?;

        let mut probes = Composite::from_probes(self.name.clone(), self.probes);
        if let Some(prerequisites) = monitor::prerequisites("monitors", &monitors) {
            probes.push(Arc::new(prerequisites));
        }
        let probes = (!probes.probes().is_empty()).then_some(probes);

        Ok(Daemon {
            name: self.name,
            monitors: monitors.len(),
            supervisor,
            control_plane,
            probes,
            watchdog,
            notifier,
            reload: self.reload,
            on_ready: None,
            shutdown_timeout: self.shutdown_timeout,
            stall,
        })
    }
}

fn check_daemon_name(name: &str) -> Result<(), Error> {
    let problem = if name.is_empty() {
        "a daemon name must not be empty"
    } else if name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        "a daemon name names its runtime directory: no `/`, no control characters, not `.` or `..`"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        problem,
    })
}

// ===== Daemon =====

/// A daemon: monitors, start-up probes, a control plane and systemd integration, checked
/// by [`DaemonBuilder::build`] and run in the right order by [`Daemon::run_main`] (or
/// [`Daemon::run`] inside a runtime of your own).
///
/// # Examples
///
/// ```no_run
/// use std::process::ExitCode;
/// use daemonkit::{Daemon, Exit, monitor_fn};
///
/// fn main() -> ExitCode {
///     let exit = Daemon::builder("inventory-agent")
///         .monitor(monitor_fn("scanner", |cancel| async move {
///             cancel.cancelled().await;
///             Ok(())
///         }))
///         .build()
///         .map_or_else(Exit::from, |daemon| daemon.run_main());
///     if !exit.is_clean() {
///         eprintln!("inventory-agent: {exit}");
///     }
///     exit.into()
/// }
/// ```
pub struct Daemon {
    name: String,
    monitors: usize,
    supervisor: Supervisor,
    control_plane: ControlPlane,
    probes: Option<Composite>,
    watchdog: Watchdog,
    notifier: Notifier,
    reload: Option<ReloadFn>,
    on_ready: Option<ReadyHook>,
    shutdown_timeout: Duration,
    stall: StallDetector,
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("name", &self.name)
            .field("supervisor", &self.supervisor)
            .field("control_plane", &self.control_plane)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
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
            shutdown_timeout: Duration::from_secs(10),
            reload: None,
            alive: None,
            notifier: None,
        }
    }

    /// The tracker the monitors report to.
    pub fn tracker(&self) -> &StatusTracker {
        self.supervisor.tracker()
    }

    /// Runs `hook` once, right after `READY=1`: the place for "the daemon started"
    /// records, so a run that never got ready (a second instance, a failed probe) leaves
    /// none. Set here rather than on the builder because such a hook usually holds
    /// values made on the daemon's runtime (see [`run_main_with`](Self::run_main_with)).
    /// A panic in it is logged (`ReadyHookPanicked`); the daemon keeps running.
    pub fn on_ready(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_ready = Some(Box::new(hook));
        self
    }

    /// The runtime stall detector the daemon runs from start-up (the one given to the
    /// control plane with [`ControlPlaneBuilder::stall_detector`], else a default one):
    /// its [`stats`](StallDetector::stats) are cheap to read, e.g. for a status document.
    pub fn stall_detector(&self) -> &StallDetector {
        &self.stall
    }

    /// The control socket the daemon will serve.
    pub fn socket_path(&self) -> &Path {
        self.control_plane.socket_path()
    }

    /// Builds a current-thread tokio runtime, runs the daemon on it until SIGINT or
    /// SIGTERM (or a start-up failure), and says how it ended.
    ///
    /// The process is bounded: from the first SIGINT/SIGTERM it lives at most the
    /// shutdown timeout plus [`SHUTDOWN_MARGIN`]. A monitor that ignores cancellation is
    /// named and abandoned at the timeout; `spawn_blocking` work still running is
    /// abandoned by the runtime's bounded shutdown; and a monitor that blocks the
    /// runtime's thread — which no code on that thread can interrupt — is handled by a
    /// last-resort thread that exits the process with [`Exit::ShutdownTimedOut`]'s code
    /// (1), logging `ShutdownForced`.
    pub fn run_main(self) -> Exit {
        self.run_main_with(Daemon::run)
    }

    /// [`run_main`](Self::run_main) with work of your own around the run, on the same
    /// runtime and under the same bound: `main` receives the daemon and returns its exit,
    /// typically after setting something up, awaiting [`Daemon::run`], and finishing
    /// (flushing an event log).
    ///
    /// ```no_run
    /// # use daemonkit::{Daemon, Exit};
    /// # let daemon = Daemon::builder("agent").build().unwrap();
    /// let exit = daemon.run_main_with(|daemon| async move {
    ///     // open files, start writers…
    ///     let exit = daemon.run().await;
    ///     // flush, record the stop…
    ///     exit
    /// });
    /// ```
    pub fn run_main_with<F, Fut>(self, main: F) -> Exit
    where
        F: FnOnce(Daemon) -> Fut,
        Fut: Future<Output = Exit>,
    {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(source) => return Exit::Failed(Error::RuntimeStart { source }),
        };
        if let Err(source) = arm_last_resort(
            self.shutdown_timeout + SHUTDOWN_MARGIN,
            self.notifier.clone(),
        ) {
            return Exit::Failed(Error::Signal { source });
        }
        let exit = runtime.block_on(main(self));
        // A quarter of the margin for blocking work still running (a last fsync); the
        // rest keeps this path ahead of the last-resort exit, so the caller still
        // reports `exit` itself.
        runtime.shutdown_timeout(SHUTDOWN_MARGIN / 4);
        exit
    }

    /// Runs the daemon until SIGINT or SIGTERM (or a start-up failure) and says how it
    /// ended. Prefer [`run_main`](Self::run_main), which also bounds the process.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O, time and signals enabled.
    pub async fn run(self) -> Exit {
        let notifier = self.notifier.clone();
        let exit = self.run_inner().await;
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

    async fn run_inner(self) -> Exit {
        let Daemon {
            name,
            monitors,
            supervisor,
            control_plane,
            probes,
            watchdog,
            notifier,
            reload,
            on_ready,
            shutdown_timeout,
            stall,
        } = self;

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

        // 2. The control socket: a second instance fails here, before any monitor runs.
        let bound = match control_plane.bind().await {
            Ok(bound) => bound,
            Err(err) => return Exit::from(err),
        };
        let socket = bound.socket_path().to_path_buf();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(bound.serve(cancel.clone()));
        tokio::spawn(stall.run(cancel.clone()));

        // 3. Start-up probes, gating the daemon.
        if let Some(probes) = probes {
            let _ = notifier.status("checking prerequisites");
            let failed = tokio::select! {
                result = crate::probe::check_caught(&probes) => result.err(),
                _ = int.recv() => return stop_server(cancel, server, Exit::Clean).await,
                _ = term.recv() => return stop_server(cancel, server, Exit::Clean).await,
            };
            if let Some(err) = failed {
                tracing::error!(
                    reason = "StartupProbeFailed",
                    probe_reason = %err.reason,
                    error = %err.message,
                    resolution = %err.resolution,
                    "start-up probe failed; not starting"
                );
                return stop_server(cancel, server, Exit::ProbeFailed(err)).await;
            }
        }

        // 4. Monitors.
        let running = supervisor.start(&cancel);

        // 5. Watchdog keepalive, when systemd asked for one.
        let watchdog = tokio::spawn(watchdog.run(cancel.clone()));

        // 6. READY=1: the socket is listening and the monitors have started.
        let running_status = format!(
            "running {monitors} monitors; control socket {}",
            socket.display()
        );
        if let Err(err) = notifier
            .ready()
            .and_then(|()| notifier.status(&running_status))
        {
            tracing::warn!(reason = "NotifyFailed", error = %err, "cannot tell systemd we are ready");
        }
        tracing::info!(reason = "DaemonReady", daemon = %name, socket = %socket.display(), "daemon ready");
        if let Some(hook) = on_ready
            && let Err(message) = panic::call(hook)
        {
            tracing::error!(reason = "ReadyHookPanicked", panic = %message, "the ready hook panicked");
        }

        // 7. Serve until told to stop; reload on SIGHUP.
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = hup.recv() => reload_once(&notifier, reload.as_ref(), &running_status).await,
            }
        }

        // 8. Stop, bounded by the shutdown timeout.
        tracing::info!(reason = "DaemonStopping", daemon = %name, "stopping");
        if let Err(err) = notifier.stopping() {
            tracing::warn!(reason = "NotifyFailed", error = %err, "cannot tell systemd we are stopping");
        }
        cancel.cancel();
        let (report, served, _) = tokio::join!(
            running.shutdown(shutdown_timeout),
            tokio::time::timeout(shutdown_timeout, server),
            tokio::time::timeout(shutdown_timeout, watchdog),
        );
        if !report.late.is_empty() {
            return Exit::ShutdownTimedOut(report.late);
        }
        if let Some((monitor, message)) = report.panicked.into_iter().next() {
            return Exit::Failed(Error::TaskPanicked {
                task: format!("supervisor of {monitor}"),
                message,
            });
        }
        match served {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => return Exit::Failed(err),
            Ok(Err(join)) => {
                return Exit::Failed(Error::TaskPanicked {
                    task: "control-plane".into(),
                    message: join.to_string(),
                });
            }
            Err(_elapsed) => return Exit::ShutdownTimedOut(vec!["control-plane".into()]),
        }
        tracing::info!(reason = "DaemonStopped", daemon = %name, "stopped cleanly");
        Exit::Clean
    }
}

/// Stops the control plane when start-up ends early.
async fn stop_server(
    cancel: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), Error>>,
    exit: Exit,
) -> Exit {
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    exit
}

async fn reload_once(notifier: &Notifier, hook: Option<&ReloadFn>, running_status: &str) {
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
    match panic::call_async(|| hook()).await {
        Ok(Ok(())) => tracing::info!(reason = "Reloaded", "configuration reloaded"),
        Ok(Err(err)) => {
            tracing::error!(reason = "ReloadFailed", error = %err, "reload failed; keeping the running configuration")
        }
        Err(message) => {
            tracing::error!(reason = "ReloadFailed", panic = %message, "the reload hook panicked; keeping the running configuration")
        }
    }
    if let Err(err) = notifier
        .ready()
        .and_then(|()| notifier.status(running_status))
    {
        tracing::warn!(reason = "NotifyFailed", error = %err, "cannot tell systemd we are ready again");
    }
}

/// Starts the thread that ends the process `limit` after the first SIGINT/SIGTERM, in
/// case the runtime cannot (a monitor blocks its only thread).
///
/// A thread of its own with `signal-hook`, because the runtime's own signal handling runs
/// on the runtime's thread, which is exactly what may be blocked. Both handlers are
/// registered through `signal-hook-registry`, so both see every signal.
fn arm_last_resort(limit: Duration, notifier: Notifier) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("daemonkit-shutdown-bound".into())
        .spawn(move || {
            if signals.forever().next().is_none() {
                return;
            }
            std::thread::sleep(limit);
            tracing::error!(
                reason = "ShutdownForced",
                limit_ms = limit.as_millis() as u64,
                "the daemon did not stop within the shutdown timeout; exiting now"
            );
            let _ = notifier.status("shutdown timed out; exiting");
            std::process::exit(i32::from(Exit::SHUTDOWN_TIMED_OUT));
        })?;
    Ok(())
}

// ===== Exit =====

/// How a [`Daemon`] run ended. Converts into the process exit code:
///
/// | variant | code | systemd should |
/// |---|---|---|
/// | [`Clean`](Exit::Clean) | 0 | — |
/// | [`ShutdownTimedOut`](Exit::ShutdownTimedOut), [`Failed`](Exit::Failed) | 1 | restart |
/// | [`ProbeFailed`](Exit::ProbeFailed) | 69 (`EX_UNAVAILABLE`) | restart (the host may be fixed) |
/// | [`SocketInUse`](Exit::SocketInUse) | 75 (`EX_TEMPFAIL`) | restart later (the other instance may stop) |
/// | [`Config`](Exit::Config) | 78 (`EX_CONFIG`) | not restart (`RestartPreventExitStatus=78`) |
///
/// An [`Error`] converts into the `Exit` its [`kind`](Error::kind) calls for.
#[derive(Debug)]
#[non_exhaustive]
pub enum Exit {
    /// Stopped on SIGINT/SIGTERM, every monitor in time: exit code 0.
    Clean,
    /// A start-up probe failed: exit code 69 (`EX_UNAVAILABLE`); no monitor was started.
    ProbeFailed(ProbeError),
    /// The configuration cannot work (names, limits, timeouts, the systemd environment):
    /// exit code 78 (`EX_CONFIG`); nothing was started or touched.
    Config(Error),
    /// Another live process serves on the control socket: exit code 75 (`EX_TEMPFAIL`);
    /// no monitor was started and nothing of the other instance was touched.
    SocketInUse(Error),
    /// These monitors did not stop before the shutdown timeout: exit code 1.
    ShutdownTimedOut(Vec<String>),
    /// Something failed at run time (the control socket, signals): exit code 1.
    Failed(Error),
}

impl Exit {
    /// The exit code of [`Exit::ShutdownTimedOut`], also used when the process is ended
    /// by the shutdown bound of [`Daemon::run_main`].
    pub const SHUTDOWN_TIMED_OUT: u8 = 1;

    /// The process exit code: 0, 1, 69, 75 or 78 (see the type's table).
    pub fn code(&self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::ShutdownTimedOut(_) => Self::SHUTDOWN_TIMED_OUT,
            Exit::Failed(_) => 1,
            Exit::ProbeFailed(_) => 69,
            Exit::SocketInUse(_) => 75,
            Exit::Config(_) => 78,
        }
    }

    /// True for [`Exit::Clean`].
    pub fn is_clean(&self) -> bool {
        matches!(self, Exit::Clean)
    }
}

impl From<Error> for Exit {
    fn from(err: Error) -> Exit {
        match err.kind() {
            ErrorKind::Config => Exit::Config(err),
            ErrorKind::SocketInUse => Exit::SocketInUse(err),
            ErrorKind::Probe => match err {
                Error::ProbeFailed { source } => Exit::ProbeFailed(source),
                other => Exit::Failed(other),
            },
            _ => Exit::Failed(err),
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
            Exit::SocketInUse(err) => write!(f, "not starting: {err}"),
            Exit::ShutdownTimedOut(late) => write!(
                f,
                "monitors did not stop within the shutdown timeout: {}",
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
