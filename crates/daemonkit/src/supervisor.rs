//! Supervision: keep monitors running, restart crashed ones with back-off, and say so.
//!
//! [`supervise`] runs one monitor until cancelled; [`Supervisor`] runs a set of them and
//! reports which did not stop in time at shutdown. Both never return an error: a crash is
//! something to restart and report (through `tracing` and the [`StatusTracker`]), not
//! something to hand back to the caller.
//!
//! Log records, each with a stable `reason` field:
//!
//! | reason              | level | when |
//! |---------------------|-------|------|
//! | `MonitorStarted`    | info  | a run begins (first or restart) |
//! | `MonitorCrash`      | error | a run returned `Err`, with the error, streak and back-off |
//! | `MonitorPanic`      | error | a run panicked, with the panic message (then handled as a crash) |
//! | `MonitorDegraded`   | error | every `degraded_every`-th consecutive crash |
//! | `MonitorExited`     | info  | a run returned `Ok(())`: stopped, no restart |
//! | `MonitorStopped`    | info  | cancelled during a run or a back-off |
//! | `MonitorHeartbeat`  | info  | every heartbeat interval while running, if enabled |

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::backoff::Backoff;
use crate::monitor::Monitor;
use crate::status::{MonitorState, StatusError, StatusTracker, go_duration};
use crate::task::panic_message;

// ===== RestartPolicy =====

/// How a monitor is restarted after crashes, and how often it reports a heartbeat.
///
/// `RestartPolicy::default()` is the Go daemonkit's: back-off starts at 5 s and doubles
/// per consecutive crash up to 5 min; a run that lasted 60 s resets the streak; every 5th
/// consecutive crash logs `MonitorDegraded`; no jitter; no heartbeat. Build another with
/// [`RestartPolicy::builder`], which rejects values that cannot work.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::RestartPolicy;
///
/// let policy = RestartPolicy::builder()
///     .initial(Duration::from_millis(50))
///     .cap(Duration::from_secs(2))
///     .jitter(0.2)
///     .heartbeat(Duration::from_secs(30))
///     .build()
///     .unwrap();
/// assert_eq!(policy.backoff_for(1), Duration::from_millis(50));
/// assert_eq!(policy.backoff_for(3), Duration::from_millis(200));
///
/// let err = RestartPolicy::builder().multiplier(0.5).build().unwrap_err();
/// assert!(err.to_string().contains("multiplier"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    backoff: Backoff,
    stable_after: Duration,
    degraded_every: u32,
    jitter: f64,
    heartbeat: Option<Duration>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff: Backoff {
                initial: Duration::from_secs(5),
                multiplier: 2.0,
                cap: Duration::from_secs(300),
            },
            stable_after: Duration::from_secs(60),
            degraded_every: 5,
            jitter: 0.0,
            heartbeat: None,
        }
    }
}

impl RestartPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> RestartPolicyBuilder {
        RestartPolicyBuilder {
            policy: RestartPolicy::default(),
        }
    }

    /// The back-off before the first restart.
    pub fn initial(&self) -> Duration {
        self.backoff.initial
    }

    /// Every `degraded_every`-th consecutive crash is reported as `MonitorDegraded`.
    pub fn degraded_every(&self) -> u32 {
        self.degraded_every
    }

    /// A run lasting at least this long resets the back-off and the crash streak.
    pub fn stable_after(&self) -> Duration {
        self.stable_after
    }

    /// The heartbeat interval, if heartbeats are on.
    pub fn heartbeat(&self) -> Option<Duration> {
        self.heartbeat
    }

    /// The back-off after the `streak`-th consecutive crash (1-based), before jitter:
    /// `initial × multiplier^(streak−1)`, capped.
    pub fn backoff_for(&self, streak: u32) -> Duration {
        self.backoff.delay_for(streak)
    }

    /// Applies jitter to a back-off: with jitter `j`, a duration drawn uniformly from
    /// `[d × (1 − j), d]`, so it never exceeds the cap.
    fn jittered(&self, d: Duration, rng: &mut u64) -> Duration {
        if self.jitter == 0.0 {
            return d;
        }
        // xorshift64*: plenty for spreading restarts; not for anything secret.
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        let unit = (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(1.0 - self.jitter * unit)
    }
}

/// Builds a validated [`RestartPolicy`]; see [`RestartPolicy::builder`].
#[derive(Debug, Clone)]
pub struct RestartPolicyBuilder {
    policy: RestartPolicy,
}

impl RestartPolicyBuilder {
    /// The back-off before the first restart (default 5 s). Must be non-zero.
    pub fn initial(mut self, initial: Duration) -> Self {
        self.policy.backoff.initial = initial;
        self
    }

    /// The factor applied per consecutive crash (default 2). Must be at least 1.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.policy.backoff.multiplier = multiplier;
        self
    }

    /// The longest back-off (default 5 min). Must be at least `initial`.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.policy.backoff.cap = cap;
        self
    }

    /// A run lasting at least this long before crashing resets the back-off and the
    /// crash streak (default 60 s).
    pub fn stable_after(mut self, stable_after: Duration) -> Self {
        self.policy.stable_after = stable_after;
        self
    }

    /// Report `MonitorDegraded` at every `n`-th consecutive crash (default 5). Must be
    /// non-zero.
    pub fn degraded_every(mut self, n: u32) -> Self {
        self.policy.degraded_every = n;
        self
    }

    /// Randomise each back-off downwards by up to this fraction, from 0 (default, off)
    /// to 1, so a fleet of hosts does not restart in lockstep.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.policy.jitter = fraction;
        self
    }

    /// Log a `MonitorHeartbeat` record at this interval while running (default: off).
    /// Must be non-zero.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.policy.heartbeat = Some(interval);
        self
    }

    /// Checks every field and returns the policy.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPolicy`] naming the first field that cannot work: a zero
    /// `initial`, a `cap` below `initial`, a `multiplier` below 1 (or not a number), a
    /// zero `degraded_every`, a `jitter` outside 0..=1, or a zero `heartbeat`.
    pub fn build(self) -> Result<RestartPolicy, Error> {
        let p = self.policy;
        let invalid = |field, problem: String| Err(Error::InvalidPolicy { field, problem });
        p.backoff.validate()?;
        if p.degraded_every == 0 {
            return invalid("degraded_every", "must be greater than zero".into());
        }
        if !(0.0..=1.0).contains(&p.jitter) {
            return invalid("jitter", format!("({}) must be between 0 and 1", p.jitter));
        }
        if p.heartbeat.is_some_and(|h| h.is_zero()) {
            return invalid("heartbeat", "must be greater than zero".into());
        }
        Ok(p)
    }
}

// ===== supervise =====

/// Runs `monitor` until `cancel` is cancelled, restarting it after every crash.
///
/// Never returns an error: crashes (an `Err` or a panic from [`Monitor::run`]) are logged
/// and restarted after the policy's back-off; `Ok(())` stops it for good (`MonitorExited`);
/// cancellation stops it at once, whether it is running or backing off
/// (`MonitorStopped`). When cancelled during a run, `supervise` waits for the run to
/// return, so the monitor can finish what it was doing; bound that wait from outside
/// (as [`Running::shutdown`] does).
///
/// Every transition is written to `tracker`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use daemonkit::{monitor_fn, supervise, RestartPolicy, StatusTracker};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let runs = Arc::new(AtomicU32::new(0));
/// let counter = runs.clone();
/// // Crashes twice, then exits cleanly.
/// let flaky = monitor_fn("flaky", move |_cancel| {
///     let n = counter.fetch_add(1, Ordering::SeqCst);
///     async move { if n < 2 { Err("boom".into()) } else { Ok(()) } }
/// });
/// let policy = RestartPolicy::builder().initial(Duration::from_millis(1)).build().unwrap();
/// let tracker = StatusTracker::new();
/// supervise(flaky, tracker.clone(), policy, CancellationToken::new()).await;
/// assert_eq!(runs.load(Ordering::SeqCst), 3);
/// assert_eq!(tracker.snapshot()["flaky"].restarts, 2);
/// # }
/// ```
pub async fn supervise(
    monitor: Arc<dyn Monitor>,
    tracker: StatusTracker,
    policy: RestartPolicy,
    cancel: CancellationToken,
) {
    supervise_shared(monitor, tracker, Arc::new(policy), cancel).await
}

/// [`supervise`] with a policy shared by many monitors: one allocation, not one each.
async fn supervise_shared(
    monitor: Arc<dyn Monitor>,
    tracker: StatusTracker,
    policy: Arc<RestartPolicy>,
    cancel: CancellationToken,
) {
    let name = tracker.register(monitor.clone());
    let mut streak: u32 = 0;
    let mut rng = RandomState::new().build_hasher().finish() | 1;

    loop {
        if cancel.is_cancelled() {
            stopped(&tracker, &name);
            return;
        }
        tracker.set_state(&name, MonitorState::Running);
        tracing::info!(reason = "MonitorStarted", monitor = %name, "monitor started");
        let started = Instant::now();
        let outcome = run_once(
            monitor.as_ref(),
            &name,
            &policy,
            cancel.child_token(),
            started,
        )
        .await;

        if cancel.is_cancelled() {
            stopped(&tracker, &name);
            return;
        }
        let message = match outcome {
            Outcome::Exited => {
                tracker.set_state(&name, MonitorState::Stopped);
                tracing::info!(reason = "MonitorExited", monitor = %name, "monitor exited cleanly; not restarting");
                return;
            }
            Outcome::Crashed(message) => message,
        };

        // A run that lasted the stable threshold ends the previous streak before this
        // crash is counted, so this crash is #1 of a new streak.
        if started.elapsed() >= policy.stable_after {
            streak = 0;
        }
        streak = streak.saturating_add(1);
        let backoff = policy.jittered(policy.backoff_for(streak), &mut rng);
        let degraded = streak.is_multiple_of(policy.degraded_every);
        tracing::error!(
            reason = "MonitorCrash",
            monitor = %name,
            error = %message,
            consecutive_crashes = streak,
            backoff = %go_duration(backoff),
            "monitor crashed; restarting after back-off"
        );
        if degraded {
            tracing::error!(
                reason = "MonitorDegraded",
                monitor = %name,
                consecutive_crashes = streak,
                error = %message,
                "monitor keeps crashing"
            );
        }
        let reached_degraded = streak >= policy.degraded_every;
        tracker.update(&name, |status| {
            status.state = MonitorState::Backoff(backoff);
            status.consecutive_crashes = streak;
            status.error = Some(StatusError::new(
                if reached_degraded {
                    "MonitorDegraded"
                } else {
                    "MonitorCrash"
                },
                format!("crash {streak} in a row: {message}"),
            ));
            status.last_error = Some(message);
        });

        // Boxed: the timer lives on the heap only while backing off, which keeps the
        // state of an idle, running monitor's task small.
        let cancelled = Box::pin(async {
            tokio::select! {
                _ = cancel.cancelled() => true,
                _ = tokio::time::sleep(backoff) => false,
            }
        })
        .await;
        if cancelled {
            stopped(&tracker, &name);
            return;
        }
        tracker.update(&name, |status| status.restarts += 1);
    }
}

fn stopped(tracker: &StatusTracker, name: &str) {
    tracker.set_state(name, MonitorState::Stopped);
    tracing::info!(reason = "MonitorStopped", monitor = %name, "monitor stopped");
}

enum Outcome {
    Exited,
    Crashed(String),
}

/// One run of the monitor behind a panic barrier, with heartbeats alongside it on the
/// same task (no extra task per monitor keeps 10,000 idle monitors cheap).
async fn run_once(
    monitor: &dyn Monitor,
    name: &str,
    policy: &RestartPolicy,
    token: CancellationToken,
    started: Instant,
) -> Outcome {
    let run = AssertUnwindSafe(monitor.run(token)).catch_unwind();
    let result = match policy.heartbeat {
        None => run.await,
        Some(every) => {
            let mut ticks = tokio::time::interval_at(started + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut run = std::pin::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    _ = ticks.tick() => heartbeat(monitor, name, started.elapsed()),
                }
            }
        }
    };
    match result {
        Ok(Ok(())) => Outcome::Exited,
        Ok(Err(err)) => Outcome::Crashed(err.to_string()),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            tracing::error!(reason = "MonitorPanic", monitor = %name, panic = %message, "monitor panicked");
            Outcome::Crashed(format!("panic: {message}"))
        }
    }
}

fn heartbeat(monitor: &dyn Monitor, name: &str, uptime: Duration) {
    let uptime = go_duration(Duration::from_secs(uptime.as_secs()));
    if !monitor.reports_connectivity() {
        tracing::info!(reason = "MonitorHeartbeat", monitor = %name, uptime = %uptime, "monitor alive");
        return;
    }
    match monitor.connectivity_error() {
        None => tracing::info!(
            reason = "MonitorHeartbeat",
            monitor = %name,
            uptime = %uptime,
            healthy = true,
            "monitor alive"
        ),
        Some(err) => tracing::info!(
            reason = "MonitorHeartbeat",
            monitor = %name,
            uptime = %uptime,
            healthy = false,
            connectivity_reason = %err.reason,
            connectivity_error = %err.message,
            "monitor alive but failing"
        ),
    }
}

// ===== Supervisor =====

/// A set of monitors supervised together under one policy and one tracker.
///
/// Names are checked as monitors are added: empty or duplicate names are rejected, since
/// the name is the key of every status report, log record and metric.
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
/// let mut supervisor = Supervisor::new(Default::default());
/// supervisor.add(monitor_fn("idle", |cancel| async move {
///     cancel.cancelled().await;
///     Ok(())
/// })).unwrap();
/// assert!(supervisor.add(monitor_fn("idle", |_| async { Ok(()) })).is_err());
///
/// let cancel = CancellationToken::new();
/// let running = supervisor.start(&cancel);
/// cancel.cancel();
/// let report = running.shutdown(Duration::from_secs(1)).await;
/// assert!(report.late.is_empty());
/// # }
/// ```
pub struct Supervisor {
    policy: Arc<RestartPolicy>,
    tracker: StatusTracker,
    monitors: Vec<Arc<dyn Monitor>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("policy", &self.policy)
            .field("monitors", &self.monitors)
            .finish()
    }
}

impl Supervisor {
    /// A supervisor with no monitors, its own tracker, and `policy` for every monitor.
    pub fn new(policy: RestartPolicy) -> Self {
        Self::with_tracker(policy, StatusTracker::new())
    }

    /// A supervisor that reports to `tracker` (shared with, say, a control plane that
    /// was set up first).
    pub fn with_tracker(policy: RestartPolicy, tracker: StatusTracker) -> Self {
        Supervisor {
            policy: Arc::new(policy),
            tracker,
            monitors: Vec::new(),
        }
    }

    /// Adds a monitor.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] when its name is empty or already taken.
    pub fn add(&mut self, monitor: Arc<dyn Monitor>) -> Result<&mut Self, Error> {
        let name = monitor.name();
        if name.trim().is_empty() {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                problem: "a monitor name must not be empty",
            });
        }
        if self.tracker.contains(name) {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                problem: "another monitor already has this name",
            });
        }
        self.tracker.register(monitor.clone());
        self.monitors.push(monitor);
        Ok(self)
    }

    /// The tracker every monitor of this supervisor reports to.
    pub fn tracker(&self) -> &StatusTracker {
        &self.tracker
    }

    /// The monitors added so far.
    pub fn monitors(&self) -> &[Arc<dyn Monitor>] {
        &self.monitors
    }

    /// Spawns one [`supervise`] task per monitor on the current tokio runtime; they stop
    /// when `cancel` is cancelled.
    pub fn start(&self, cancel: &CancellationToken) -> Running {
        let tasks = self
            .monitors
            .iter()
            .map(|monitor| {
                let task = tokio::spawn(supervise_shared(
                    monitor.clone(),
                    self.tracker.clone(),
                    self.policy.clone(),
                    cancel.clone(),
                ));
                (self.tracker.register(monitor.clone()), task)
            })
            .collect();
        Running { tasks }
    }
}

/// The supervise tasks started by [`Supervisor::start`].
#[derive(Debug)]
pub struct Running {
    tasks: Vec<(Arc<str>, JoinHandle<()>)>,
}

/// What [`Running::shutdown`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Monitors whose run loop had not returned when the deadline passed, by name.
    pub late: Vec<String>,
}

impl Running {
    /// Waits until every supervise task has finished (after cancellation), or until
    /// `deadline` has passed; then aborts the stragglers and names them, each with a
    /// `MonitorShutdownTimeout` error record.
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let wait_all = async {
            for (_, task) in self.tasks.iter_mut() {
                // supervise never panics (it catches the monitor's panics), and nobody
                // else aborts these tasks, so the join result carries nothing to report.
                let _ = task.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait_all).await;
        let mut late: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, task)| !task.is_finished())
            .map(|(name, task)| {
                task.abort();
                name.to_string()
            })
            .collect();
        late.sort();
        for name in &late {
            tracing::error!(
                reason = "MonitorShutdownTimeout",
                monitor = %name,
                deadline = %go_duration(deadline),
                "monitor did not stop before the shutdown deadline"
            );
        }
        ShutdownReport { late }
    }
}
