//! The Daemon runner: everything wired in the right order, in a few lines.
//!
//! [`DaemonBuilder::build`] checks every piece of configuration first — daemon, component
//! and monitor names, policies, control-plane settings, and the environment systemd set
//! (`NOTIFY_SOCKET`, `WATCHDOG_USEC`/`WATCHDOG_PID`, `LISTEN_FDS`) — so a mistake is found
//! before anything runs or any file is touched, and ends the process with 78. A daemon
//! hosts [`Component`]s (or, in the simplest case, monitors added directly, which form one
//! implicit component). [`Daemon::run`] then does, in order:
//!
//! 1. catch SIGINT and SIGTERM (and SIGHUP for the reload hook);
//! 2. claim the control socket (or take the listener systemd passed) and serve it, so
//!    a second instance fails here ([`Exit::SocketInUse`], 75) before any monitor runs,
//!    and an operator can ask `/status` from now on;
//! 3. run the fatal start-up probes, if any ([`DaemonBuilder::startup_probe`]): a
//!    failure ends the run with the probe's reason and resolution
//!    ([`Exit::ProbeFailed`], 69), also sent to systemd as `STATUS=`;
//! 4. start the monitors of every component without a prerequisite probe (and of those
//!    set to [`StartMonitors::AtOnce`]);
//! 5. start the watchdog keepalive when systemd enabled it;
//! 6. send `READY=1` — without waiting for the components' prerequisites;
//! 7. check each component's prerequisites in the background, every probe interval:
//!    failures show in `/status`, `/ready` and `STATUS=`; the component's monitors start
//!    when its probe first passes (see [`component`](crate::component));
//! 8. on SIGHUP: `RELOADING=1`, the reload hook, `READY=1`;
//! 9. on SIGINT/SIGTERM: `STOPPING=1`, cancel everything, wait up to the shutdown
//!    timeout and name every monitor that did not stop in time.
//!
//! [`Daemon::run_main`] builds the runtime too and bounds the whole process: it exits
//! within the shutdown timeout plus [`SHUTDOWN_MARGIN`] of SIGTERM even when a monitor
//! blocks its thread or `spawn_blocking` work hangs. The [`Exit`] says how it ended and
//! converts into the process exit code.
//!
//! Log records of the component lifecycle, each with its `reason`: `ComponentProbeFailed`
//! (warn; the first failure of a streak, or a new reason), `ComponentProbePassed` (info;
//! the first pass, or a pass after failures), `ComponentStarted` (info; its monitors
//! started).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::boxed::{BoxError, BoxFuture};
use crate::component::{Component, StartMonitors};
use crate::duration::go_duration;
use crate::monitor::{self, Monitor};
use crate::probe::{Composite, Probe, ProbeError, reason as probe_reason};
use crate::server::{ActionError, ControlPlane, ControlPlaneBuilder};
use crate::stall::{StallDetector, StallStats};
use crate::status::{
    ComponentStatus, ComponentsStatus, StatusError, StatusTracker, monitors_ready,
};
use crate::supervisor::{RestartPolicy, Running, ShutdownReport, Supervisor};
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
    components: Vec<Component>,
    startup_probes: Vec<Arc<dyn Probe>>,
    tracker: StatusTracker,
    control_plane: ControlPlaneBuilder,
    shutdown_timeout: Duration,
    probe_interval: Duration,
    probe_timeout: Duration,
    reload: Option<ReloadFn>,
    alive: Option<AliveFn>,
    notifier: Option<Notifier>,
    exit_on_give_up: bool,
}

impl fmt::Debug for DaemonBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaemonBuilder")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("monitors", &self.monitors.len())
            .field("components", &self.components)
            .field("startup_probes", &self.startup_probes.len())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("probe_interval", &self.probe_interval)
            .finish_non_exhaustive()
    }
}

impl DaemonBuilder {
    /// Adds a monitor to the daemon's implicit component (a daemon without
    /// [`component`](Self::component)s), under the daemon's restart policy.
    pub fn monitor(mut self, monitor: Arc<dyn Monitor>) -> Self {
        self.monitors.push((monitor, None));
        self
    }

    /// Adds a monitor to the implicit component with a restart policy of its own.
    pub fn monitor_with_policy(mut self, monitor: Arc<dyn Monitor>, policy: RestartPolicy) -> Self {
        self.monitors.push((monitor, Some(policy)));
        self
    }

    /// Hosts a component. A daemon with components serves the nested `/status`
    /// document and takes every monitor in a component (monitors added with
    /// [`monitor`](Self::monitor) as well are a configuration error).
    pub fn component(mut self, component: Component) -> Self {
        self.components.push(component);
        self
    }

    /// The restart policy of every monitor added without its own (default:
    /// [`RestartPolicy::default`]).
    pub fn policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Adds a **fatal** start-up probe: run (concurrently with the others) after the
    /// socket is bound and before any monitor starts; a failure ends the process with
    /// exit 69. Only for what the daemon truly cannot run without: under
    /// `Restart=always` a host missing it restarts the daemon in a loop. Prerequisites an
    /// operator fixes while the daemon serves belong to a component's probe (see
    /// [`component`](crate::component)).
    pub fn startup_probe(mut self, probe: impl Probe) -> Self {
        self.startup_probes.push(Arc::new(probe));
        self
    }

    /// How often a failing (or not yet passed) component probe is retried, the first
    /// round at once (default 30 s). Must be non-zero.
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// How long one round of a component's probe may take before it counts as failed
    /// with reason `ComponentProbeTimeout` (default 10 s). Must be non-zero.
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// Configures the control plane: socket path, TCP listener, routes of components
    /// without monitors, limits, extra metrics. The daemon sets its `/status`, `/ready`
    /// and `/metrics`, mounts its components' routes, and serves a listener passed by
    /// systemd in place of the socket path.
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

    /// Ends the daemon when a monitor gives up (its policy's
    /// [`give_up_after`](crate::supervisor::RestartPolicyBuilder::give_up_after) was
    /// exceeded): the daemon shuts down as on SIGTERM and exits with
    /// [`Exit::MonitorGaveUp`] (code 70, `EX_SOFTWARE`), so systemd's `Restart=` and
    /// `StartLimitIntervalSec=`/`StartLimitBurst=` decide what happens next — the
    /// escalation an Erlang/OTP supervisor makes to its parent. Default: off, the daemon
    /// carries on without the failed monitor, whose `failed` state `/ready` (503) and
    /// `daemonctl status` show.
    pub fn exit_on_give_up(mut self) -> Self {
        self.exit_on_give_up = true;
        self
    }

    /// Where to send sd_notify messages (default: [`Notifier::from_env`]).
    pub fn notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// The tracker of the implicit component's monitors (those added with
    /// [`monitor`](Self::monitor)), for watching transitions before the daemon runs. A
    /// component's tracker is [`Component::tracker`].
    pub fn tracker(&self) -> &StatusTracker {
        &self.tracker
    }

    /// Checks every piece of configuration and the environment systemd set, and claims
    /// the sockets systemd passed. Nothing runs and nothing is touched on disk.
    ///
    /// # Errors
    ///
    /// An [`Error`] of kind [`Config`](ErrorKind::Config): a bad daemon, component or
    /// monitor name, monitors both in components and added directly, a zero probe
    /// interval or timeout, a control-plane limit that cannot work, or a malformed
    /// `NOTIFY_SOCKET`, `WATCHDOG_USEC`/`WATCHDOG_PID` or `LISTEN_FDS`.
    pub fn build(self) -> Result<Daemon, Error> {
        check_daemon_name(&self.name)?;
        for (setting, value) in [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::InvalidDaemonConfig {
                    setting,
                    problem: "must be longer than zero".into(),
                });
            }
        }
        let nested = !self.components.is_empty();
        if nested && !self.monitors.is_empty() {
            return Err(Error::InvalidDaemonConfig {
                setting: "monitor",
                problem: "a daemon with components takes its monitors in components: add these \
                          monitors to a Component"
                    .into(),
            });
        }
        let components = if nested {
            self.components
        } else {
            let mut implicit = Component::new(self.name.clone());
            implicit.monitors = self.monitors;
            implicit.tracker = self.tracker.clone();
            vec![implicit]
        };

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

        let gave_up = self.exit_on_give_up.then(|| {
            let gave_up = GaveUp::default();
            for component in &components {
                gave_up.watch(&component.tracker);
            }
            gave_up
        });

        let board = Arc::new(ProbeBoard::default());
        // Stalls of the runtime show on /metrics and through `Daemon::stall_detector`.
        let stall = self.control_plane.stall.clone().unwrap_or_default();
        let mut control_plane = self.control_plane.stall_detector(&stall);
        let mut runs = Vec::with_capacity(components.len());
        let mut names = BTreeSet::new();
        let mut trackers = Vec::with_capacity(components.len());
        let mut monitor_count = 0;
        let mut controls = BTreeMap::new();
        for component in components {
            if nested {
                crate::server::check_component_name(&component.name).map_err(|problem| {
                    Error::InvalidName {
                        name: component.name.clone(),
                        problem,
                    }
                })?;
                if !names.insert(component.name.clone()) {
                    return Err(Error::InvalidName {
                        name: component.name,
                        problem: "another component already has this name",
                    });
                }
            }
            let monitors: Vec<Arc<dyn Monitor>> =
                component.monitors.iter().map(|(m, _)| m.clone()).collect();
            monitor_count += monitors.len();
            let mut supervisor = Supervisor::builder()
                .policy(component.policy.unwrap_or_else(|| self.policy.clone()))
                .tracker(component.tracker.clone());
            for (monitor, policy) in component.monitors {
                supervisor = match policy {
                    Some(policy) => supervisor.monitor_with_policy(monitor, policy),
                    None => supervisor.monitor(monitor),
                };
            }
            let supervisor = supervisor.build()?;

            let mut probe = Composite::from_probes(component.name.clone(), component.probes);
            if let Some(prerequisites) = monitor::prerequisites(component.name.clone(), &monitors) {
                probe.push(Arc::new(prerequisites));
            }
            let probe = (!probe.probes().is_empty()).then_some(probe);
            if probe.is_some() {
                board.watch(&component.name);
            }
            if let Some(routes) = component.routes {
                control_plane = control_plane.component(component.name.clone(), routes);
            }
            control_plane = if nested {
                control_plane.component_metrics(component.name.clone(), &component.tracker)
            } else {
                control_plane.metrics(&component.tracker)
            };
            trackers.push((component.name.clone(), component.tracker));
            for control in supervisor.controls() {
                let path = if nested {
                    format!("{}/{}", component.name, control.name())
                } else {
                    control.name().to_owned()
                };
                controls.insert(path, control);
            }
            runs.push(ComponentRun {
                name: component.name,
                supervisor,
                probe,
                start: component.start,
            });
        }

        let trackers = Arc::new(trackers);
        control_plane = if nested {
            let version = NestedVersion {
                trackers: trackers.clone(),
                board: board.clone(),
                stall: stall.clone(),
                runtime: Mutex::default(),
            };
            let (trackers, board, stall) = (trackers.clone(), board.clone(), stall.clone());
            control_plane.status_versioned(
                move || version.get(),
                move || {
                    let mut doc = components_status(&trackers, &board);
                    doc.runtime = Some(stall.stats());
                    doc
                },
            )
        } else {
            control_plane.tracker_status(&trackers[0].1)
        };
        let ready_board = board.clone();
        control_plane = control_plane.ready(move || ready(&trackers, &ready_board, nested));
        // `POST /monitors/[<component>/]<monitor>/<command>`, authorized by the server.
        control_plane =
            control_plane.monitor_actions(Arc::new(move |path: &str, command, by: &str| {
                let control = controls.get(path).ok_or(ActionError::NoSuchMonitor)?;
                control.send(command, by).map_err(ActionError::Refused)
            }));
        if let Some(listener) = ListenFds::from_env()?.take_unix_listener(None)? {
            control_plane = control_plane.listener(listener);
        }
        let control_plane = control_plane.build()?;

        let startup = Composite::from_probes(self.name.clone(), self.startup_probes);
        let startup = (!startup.probes().is_empty()).then_some(startup);

        Ok(Daemon {
            name: self.name,
            monitors: monitor_count,
            components: runs,
            board,
            control_plane,
            startup,
            watchdog,
            notifier,
            reload: self.reload,
            on_ready: None,
            shutdown_timeout: self.shutdown_timeout,
            probe_interval: self.probe_interval,
            probe_timeout: self.probe_timeout,
            stall,
            gave_up,
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

/// The nested `/status` document: every component's monitors and failing probes.
fn components_status(trackers: &[(String, StatusTracker)], board: &ProbeBoard) -> ComponentsStatus {
    let mut doc = ComponentsStatus::default();
    for (name, tracker) in trackers {
        doc.components
            .insert(name.clone(), ComponentStatus::new(tracker.snapshot()));
    }
    doc.probe_errors = board.errors();
    doc
}

/// The version of the nested `/status` document, which keys its cached body: the sum of
/// what each part's own counter says (every tracker's version, the probe board's
/// generation, and a count of the changes seen in the runtime's stall figures). Each
/// counter only goes up, so the sum moves whenever one part changes; `None` (do not
/// cache) if a tracker's version is.
struct NestedVersion {
    trackers: Arc<Vec<(String, StatusTracker)>>,
    board: Arc<ProbeBoard>,
    stall: StallDetector,
    /// The stall figures last seen, and how many times they changed.
    runtime: Mutex<Option<(StallStats, u64)>>,
}

impl NestedVersion {
    fn get(&self) -> Option<u64> {
        let board = self.board.generation();
        let stats = self.stall.stats();
        let runtime = {
            // Only assignments happen under this lock; a poisoned value is still sound.
            let mut seen = self
                .runtime
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            match &mut *seen {
                Some((last, changes)) if *last != stats => {
                    *last = stats;
                    *changes += 1;
                    *changes
                }
                Some((_, changes)) => *changes,
                None => {
                    *seen = Some((stats, 0));
                    0
                }
            }
        };
        self.trackers
            .iter()
            .try_fold(board.wrapping_add(runtime), |sum, (_, tracker)| {
                Some(sum.wrapping_add(tracker.version()?))
            })
    }
}

/// `/ready`: every component's probe passes and every monitor runs.
fn ready(
    trackers: &[(String, StatusTracker)],
    board: &ProbeBoard,
    nested: bool,
) -> Result<(), Vec<StatusError>> {
    let mut errors = board.not_ready();
    for (component, tracker) in trackers {
        if let Err(monitors) = monitors_ready(tracker) {
            errors.extend(monitors.into_iter().map(|mut err| {
                if nested {
                    err.message = format!("component {component}: {}", err.message);
                }
                err
            }));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

// ===== ProbeBoard =====

/// What each component's background probe last found, shared by the probe loops, the
/// status document, `/ready` and `STATUS=`.
#[derive(Default)]
struct ProbeBoard {
    states: Mutex<BTreeMap<String, ProbeState>>,
    /// Bumped, under the `states` lock, by every change to `states`.
    generation: AtomicU64,
}

#[derive(Debug, Clone, Default)]
struct ProbeState {
    /// The failure of the current streak, `since` its first round.
    error: Option<StatusError>,
    /// Whether a round has finished yet.
    checked: bool,
}

/// What one probe round changed, for the log.
enum Round {
    FirstFailure,
    NewReason,
    StillFailing,
    Passed,
    StillPassing,
}

impl ProbeBoard {
    fn states(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ProbeState>> {
        // Only assignments happen under this lock; a poisoned map is still sound.
        self.states
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn watch(&self, component: &str) {
        let mut states = self.states();
        states.insert(component.to_owned(), ProbeState::default());
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A counter bumped by every change to what the board shows; never goes down.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records a round's result; keeps `since` across the rounds of a failing streak.
    fn record(
        &self,
        component: &str,
        result: Result<(), ProbeError>,
    ) -> (Round, Option<StatusError>) {
        let mut states = self.states();
        // Every round may change what the board shows (a first round, a new error or
        // message, a pass); a round every few seconds at most costs one rebuild each.
        self.generation.fetch_add(1, Ordering::Release);
        let state = states.entry(component.to_owned()).or_default();
        let first_round = !state.checked;
        state.checked = true;
        match result {
            Ok(()) => {
                let round = if state.error.take().is_some() || first_round {
                    Round::Passed
                } else {
                    Round::StillPassing
                };
                (round, None)
            }
            Err(err) => {
                let reason = if err.reason == probe_reason::PROBE_FAILED {
                    "ComponentProbeError".to_owned()
                } else {
                    err.reason
                };
                let (round, since) = match &state.error {
                    None => (Round::FirstFailure, Timestamp::now()),
                    Some(previous) => (
                        if previous.reason == reason {
                            Round::StillFailing
                        } else {
                            Round::NewReason
                        },
                        previous.since.unwrap_or_else(Timestamp::now),
                    ),
                };
                let error = StatusError::new(reason, err.message)
                    .with_resolution(err.resolution)
                    .with_since(since);
                state.error = Some(error.clone());
                (round, Some(error))
            }
        }
    }

    fn errors(&self) -> BTreeMap<String, StatusError> {
        self.states()
            .iter()
            .filter_map(|(name, state)| state.error.clone().map(|err| (name.clone(), err)))
            .collect()
    }

    /// One error per component whose probe has not passed, for `/ready`.
    fn not_ready(&self) -> Vec<StatusError> {
        self.states()
            .iter()
            .filter_map(|(name, state)| match (&state.error, state.checked) {
                (Some(err), _) => Some(StatusError {
                    message: format!("component {name}: {}", err.message),
                    ..err.clone()
                }),
                (None, false) => Some(StatusError::new(
                    "ComponentProbePending",
                    format!("component {name}: prerequisites not checked yet"),
                )),
                (None, true) => None,
            })
            .collect()
    }

    /// The `STATUS=` line: the failing prerequisites, or `running` when none fails.
    fn summary(&self, running: &str) -> String {
        let failing: Vec<String> = self
            .states()
            .iter()
            .filter_map(|(name, state)| {
                state
                    .error
                    .as_ref()
                    .map(|err| format!("{name} ({})", err.reason))
            })
            .collect();
        if failing.is_empty() {
            running.to_owned()
        } else {
            format!("waiting for prerequisites: {}", failing.join(", "))
        }
    }
}

// ===== Daemon =====

/// A daemon: components of monitors, probes, a control plane and systemd integration,
/// checked by [`DaemonBuilder::build`] and run in the right order by
/// [`Daemon::run_main`] (or [`Daemon::run`] inside a runtime of your own).
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
    components: Vec<ComponentRun>,
    board: Arc<ProbeBoard>,
    control_plane: ControlPlane,
    startup: Option<Composite>,
    watchdog: Watchdog,
    notifier: Notifier,
    reload: Option<ReloadFn>,
    on_ready: Option<ReadyHook>,
    shutdown_timeout: Duration,
    probe_interval: Duration,
    probe_timeout: Duration,
    stall: StallDetector,
    gave_up: Option<GaveUp>,
}

/// A component as the daemon runs it.
struct ComponentRun {
    name: String,
    supervisor: Supervisor,
    probe: Option<Composite>,
    start: StartMonitors,
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("name", &self.name)
            .field(
                "components",
                &self.components.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
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
            components: Vec::new(),
            startup_probes: Vec::new(),
            tracker: StatusTracker::new(),
            shutdown_timeout: Duration::from_secs(10),
            probe_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(10),
            reload: None,
            alive: None,
            notifier: None,
            exit_on_give_up: false,
        }
    }

    /// The tracker of the first component's monitors: the implicit component's, for a
    /// daemon built without components.
    pub fn tracker(&self) -> &StatusTracker {
        self.components[0].supervisor.tracker()
    }

    /// The tracker of the component called `name`; `None` when there is none.
    pub fn component_tracker(&self, name: &str) -> Option<&StatusTracker> {
        self.components
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.supervisor.tracker())
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

    /// Runs `hook` once, right after `READY=1`: the place for "the daemon started"
    /// records, so a run that never got ready (a second instance, a failed probe) leaves
    /// none. Set here rather than on the builder because such a hook usually holds
    /// values made on the daemon's runtime (see [`run_main_with`](Self::run_main_with)).
    /// A panic in it is logged (`ReadyHookPanicked`); the daemon keeps running.
    pub fn on_ready(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_ready = Some(Box::new(hook));
        self
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
            components,
            board,
            control_plane,
            startup,
            watchdog,
            notifier,
            reload,
            on_ready,
            shutdown_timeout,
            probe_interval,
            probe_timeout,
            stall,
            gave_up,
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

        // 3. Fatal start-up probes, when the daemon has any.
        if let Some(startup) = startup {
            let _ = notifier.status("checking prerequisites");
            let failed = tokio::select! {
                result = crate::probe::check_caught(&startup) => result.err(),
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

        // 4. The monitors of components with nothing to wait for.
        let mut running: Vec<Running> = Vec::new();
        let mut waiting = Vec::new();
        for component in components {
            match component.probe {
                None => running.push(start_component(
                    &component.name,
                    component.supervisor,
                    &cancel,
                )),
                Some(probe) => {
                    waiting.push((component.name, component.supervisor, probe, component.start))
                }
            }
        }

        // 5. Watchdog keepalive, when systemd asked for one.
        let watchdog = tokio::spawn(watchdog.run(cancel.clone()));

        // 6. READY=1: the socket is listening; prerequisites are checked from now on.
        let running_status: Arc<str> = Arc::from(format!(
            "running {monitors} monitors; control socket {}",
            socket.display()
        ));
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

        // 7. Each component's prerequisites, in the background.
        let loops: Vec<JoinHandle<Option<Running>>> = waiting
            .into_iter()
            .map(|(component, supervisor, probe, start)| {
                tokio::spawn(
                    ProbeLoop {
                        component,
                        probe,
                        start,
                        board: board.clone(),
                        interval: probe_interval,
                        timeout: probe_timeout,
                        notifier: notifier.clone(),
                        running_status: running_status.clone(),
                    }
                    .run(supervisor, cancel.clone()),
                )
            })
            .collect();

        // 8. Serve until told to stop (or a monitor gave up, when that ends the daemon);
        // reload on SIGHUP.
        let gave_up_token = gave_up
            .as_ref()
            .map(|g| g.token.clone())
            .unwrap_or_default();
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                () = gave_up_token.cancelled() => break,
                _ = hup.recv() => reload_once(&notifier, reload.as_ref(), &board.summary(&running_status)).await,
            }
        }

        // 9. Stop, bounded by the shutdown timeout.
        tracing::info!(reason = "DaemonStopping", daemon = %name, "stopping");
        if let Err(err) = notifier.stopping() {
            tracing::warn!(reason = "NotifyFailed", error = %err, "cannot tell systemd we are stopping");
        }
        cancel.cancel();
        // A probe loop returns at once when cancelled, with its monitors if it started them.
        for joined in futures_util::future::join_all(loops).await {
            match joined {
                Ok(Some(started)) => running.push(started),
                Ok(None) => {}
                Err(join) => {
                    tracing::error!(reason = "ComponentProbeLoopPanicked", error = %join, "a component's probe loop died")
                }
            }
        }
        let shutdowns = futures_util::future::join_all(
            running
                .into_iter()
                .map(|set| set.shutdown(shutdown_timeout)),
        );
        let (reports, served, _) = tokio::join!(
            shutdowns,
            tokio::time::timeout(shutdown_timeout, server),
            tokio::time::timeout(shutdown_timeout, watchdog),
        );
        let mut report = ShutdownReport::default();
        for part in reports {
            report.late.extend(part.late);
            report.panicked.extend(part.panicked);
        }
        report.late.sort();
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
        if let Some(monitor) = gave_up.and_then(|g| g.monitor()) {
            tracing::error!(reason = "DaemonGaveUp", daemon = %name, monitor = %monitor, "stopped because a monitor gave up");
            return Exit::MonitorGaveUp(monitor);
        }
        tracing::info!(reason = "DaemonStopped", daemon = %name, "stopped cleanly");
        Exit::Clean
    }
}

// ===== GaveUp =====

/// The first monitor that gave up, for a daemon that ends when one does
/// ([`DaemonBuilder::exit_on_give_up`]): a tracker listener records it and cancels the
/// token the serve loop waits on.
#[derive(Default)]
struct GaveUp {
    token: CancellationToken,
    monitor: Arc<std::sync::Mutex<Option<String>>>,
}

impl GaveUp {
    fn watch(&self, tracker: &StatusTracker) {
        let (token, monitor) = (self.token.clone(), self.monitor.clone());
        tracker.on_transition(move |t| {
            if t.status.state == crate::MonitorState::Failed && t.from != t.status.state {
                let mut first = monitor.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| t.monitor.to_string());
                token.cancel();
            }
        });
    }

    fn monitor(&self) -> Option<String> {
        self.monitor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Starts a component's monitors and says so.
fn start_component(component: &str, supervisor: Supervisor, cancel: &CancellationToken) -> Running {
    let monitors = supervisor.names().len();
    let running = supervisor.start(cancel);
    tracing::info!(reason = "ComponentStarted", component = %component, monitors, "component's monitors started");
    running
}

// ===== ProbeLoop =====

/// One component's prerequisites, checked every interval until cancelled; starts the
/// component's monitors when the probe first passes (or at once).
struct ProbeLoop {
    component: String,
    probe: Composite,
    start: StartMonitors,
    board: Arc<ProbeBoard>,
    interval: Duration,
    timeout: Duration,
    notifier: Notifier,
    running_status: Arc<str>,
}

impl ProbeLoop {
    /// Returns the component's running monitors (if started) when cancelled.
    async fn run(self, supervisor: Supervisor, cancel: CancellationToken) -> Option<Running> {
        let mut supervisor = Some(supervisor);
        let mut running = None;
        if self.start == StartMonitors::AtOnce {
            running = supervisor
                .take()
                .map(|s| start_component(&self.component, s, &cancel));
        }
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_summary = String::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return running,
                _ = ticks.tick() => {}
            }
            let outcome = tokio::select! {
                () = cancel.cancelled() => return running,
                outcome = tokio::time::timeout(self.timeout, self.probe.check_quiet()) => outcome,
            };
            let result = outcome.unwrap_or_else(|_elapsed| {
                Err(ProbeError::new(
                    "ComponentProbeTimeout",
                    format!(
                        "the prerequisites of component {} did not finish within {}",
                        self.component,
                        go_duration(self.timeout)
                    ),
                ))
            });
            let passed = result.is_ok();
            let (round, error) = self.board.record(&self.component, result);
            self.log(&round, error.as_ref());
            if passed && let Some(supervisor) = supervisor.take() {
                running = Some(start_component(&self.component, supervisor, &cancel));
            }
            let summary = self.board.summary(&self.running_status);
            if summary != last_summary {
                if let Err(err) = self.notifier.status(&summary) {
                    tracing::warn!(reason = "NotifyFailed", error = %err, "cannot update systemd's STATUS=");
                }
                last_summary = summary;
            }
        }
    }

    fn log(&self, round: &Round, error: Option<&StatusError>) {
        let component = &self.component;
        match (round, error) {
            (Round::Passed, _) => tracing::info!(
                reason = "ComponentProbePassed",
                component = %component,
                "component prerequisites passed"
            ),
            (Round::FirstFailure | Round::NewReason, Some(err)) => tracing::warn!(
                reason = "ComponentProbeFailed",
                component = %component,
                probe_reason = %err.reason,
                resolution = %err.resolution,
                retry_in = %go_duration(self.interval),
                "component prerequisite failed: {}",
                err.message
            ),
            (Round::StillFailing, Some(err)) => tracing::debug!(
                reason = "ComponentProbeFailed",
                component = %component,
                probe_reason = %err.reason,
                "component prerequisite still failing"
            ),
            _ => {}
        }
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
/// | [`MonitorGaveUp`](Exit::MonitorGaveUp) | 70 (`EX_SOFTWARE`) | restart, within `StartLimitBurst=` |
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
    /// This monitor crashed more often than its restart policy allows, and the daemon
    /// was built with [`DaemonBuilder::exit_on_give_up`]: exit code 70 (`EX_SOFTWARE`),
    /// after a shutdown of the other monitors as on SIGTERM.
    MonitorGaveUp(String),
}

impl Exit {
    /// The exit code of [`Exit::ShutdownTimedOut`], also used when the process is ended
    /// by the shutdown bound of [`Daemon::run_main`].
    pub const SHUTDOWN_TIMED_OUT: u8 = 1;

    /// The exit code of [`Exit::MonitorGaveUp`] (`EX_SOFTWARE`).
    pub const MONITOR_GAVE_UP: u8 = 70;

    /// The process exit code: 0, 1, 69, 70, 75 or 78 (see the type's table).
    pub fn code(&self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::ShutdownTimedOut(_) => Self::SHUTDOWN_TIMED_OUT,
            Exit::Failed(_) => 1,
            Exit::ProbeFailed(_) => 69,
            Exit::MonitorGaveUp(_) => Self::MONITOR_GAVE_UP,
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
            Exit::MonitorGaveUp(monitor) => write!(
                f,
                "monitor {monitor} crashed more often than its restart policy allows; stopped"
            ),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MonitorState;

    fn version(
        trackers: &[&StatusTracker],
        board: &Arc<ProbeBoard>,
        stall: &StallDetector,
    ) -> NestedVersion {
        NestedVersion {
            trackers: Arc::new(
                trackers
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("c{i}"), (*t).clone()))
                    .collect(),
            ),
            board: board.clone(),
            stall: stall.clone(),
            runtime: Mutex::default(),
        }
    }

    #[test]
    fn the_nested_version_holds_until_a_part_changes() {
        let (a, b) = (StatusTracker::new(), StatusTracker::new());
        let board = Arc::new(ProbeBoard::default());
        let stall = StallDetector::new();
        let version = version(&[&a, &b], &board, &stall);
        let job = a.register("job").unwrap();
        let v0 = version.get().expect("nothing computed on read");
        assert_eq!(version.get(), Some(v0), "reads change nothing");

        job.set_state(MonitorState::Running);
        let v1 = version.get().unwrap();
        assert_ne!(v1, v0, "a transition in one component");

        board.watch("c1");
        let v2 = version.get().unwrap();
        assert_ne!(v2, v1, "a component's probe is watched");
        board.record("c1", Err(ProbeError::new("DirMissing", "no /data")));
        let v3 = version.get().unwrap();
        assert_ne!(v3, v2, "a probe round");
        assert_eq!(version.get(), Some(v3));

        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let answer = up.clone();
        let link = b
            .register_reporting("link", move || {
                if answer.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err(StatusError::new("LinkDown", "no carrier"))
                }
            })
            .unwrap();
        link.set_state(MonitorState::Running);
        let v4 = version.get().unwrap();
        assert_eq!(version.get(), Some(v4), "a steady check");
        up.store(false, Ordering::SeqCst);
        assert_ne!(version.get(), Some(v4), "a check's answer changed");
    }

    #[test]
    fn the_nested_version_moves_with_the_runtime_figures() {
        let tracker = StatusTracker::new();
        let board = Arc::new(ProbeBoard::default());
        let stall = StallDetector::builder()
            .interval(Duration::from_millis(5))
            .threshold(Duration::from_millis(20))
            .build()
            .unwrap();
        let version = version(&[&tracker], &board, &stall);
        let before = version.get().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let cancel = CancellationToken::new();
            let detector = tokio::spawn(stall.clone().run(cancel.clone()));
            tokio::time::sleep(Duration::from_millis(20)).await;
            // Block the only thread: the detector's next tick is late, a stall.
            std::thread::sleep(Duration::from_millis(60));
            while stall.stats().stalls == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cancel.cancel();
            detector.await.unwrap();
        });
        let after = version.get().unwrap();
        assert_ne!(after, before, "the stall figures changed");
        assert_eq!(version.get(), Some(after));
    }
}
