//! [`Periodic`] and [`every`]: a monitor that runs one tick of work every period.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Connectivity, Monitor};
use crate::boxed::{BoxError, BoxFuture};
use crate::probe::ProbeError;
use crate::status::StatusError;

/// The shortest period a [`Periodic`] runs at; a shorter one (zero) is raised to it, so
/// a misconfigured period cannot spin a runtime thread.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

// ===== FirstTick =====

/// When a [`Periodic`] monitor runs its first tick, after each (re)start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FirstTick {
    /// At once, so the monitor's first report is not a period late (default).
    #[default]
    Immediately,
    /// One period after the start, for work that has just been done by someone else
    /// (a start-up probe) or that must not run in a burst at boot.
    AfterPeriod,
}

// ===== OnError =====

/// What a tick that returns `Err` means to a [`Periodic`] monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnError {
    /// The run loop ends with the error: a crash, restarted by the supervisor after its
    /// back-off (default). For errors that a fresh start may cure: a lost connection
    /// held across ticks, state the tick cannot trust any more.
    #[default]
    Crash,
    /// The monitor stays running and is reported `degraded` with the error until a later
    /// tick returns `Ok`. For conditions outside the daemon that it can only watch: a
    /// disk filling up, a peer not answering. The error's reason is the
    /// [`StatusError`]'s or [`ProbeError`]'s when the tick returns one, else `TickFailed`.
    Degrade,
}

// ===== Periodic =====

/// A [`Monitor`] that runs one tick of work every period until cancelled: the
/// `interval` + `select!` loop an author would otherwise write by hand.
///
/// Build one with [`every`]. The choices a hand-written loop makes silently are named
/// methods with documented defaults:
///
/// | choice | method | default |
/// |---|---|---|
/// | first tick | [`first_tick`](Self::first_tick) | [`FirstTick::Immediately`] |
/// | a tick that overruns the period | [`missed_ticks`](Self::missed_ticks) | [`MissedTickBehavior::Delay`]: one late tick at once, then every period from there; never a burst |
/// | a tick's `Err` | [`on_error`](Self::on_error) | [`OnError::Crash`]: restart after back-off |
///
/// Ticks never overlap: the next waits for the current one to finish.
///
/// # Cancel safety
///
/// On shutdown the tick in progress is dropped at its next `.await` and the monitor
/// returns `Ok(())` (a clean stop). Work handed to [`tokio::task::spawn_blocking`] runs
/// on to its end; anything a tick must not leave half-done belongs in such blocking work
/// or in a drop guard, not after an `.await`.
///
/// # Examples
///
/// A free-space watch that reports `degraded` while less than the minimum is free and
/// recovers by itself:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use daemonkit::monitor::{every, OnError};
/// use daemonkit::probe::{FreeSpace, Probe};
/// use daemonkit::{MonitorState, Supervisor};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let probe = FreeSpace::min_bytes(dir.path(), u64::MAX); // never enough
/// let disk = every("disk", Duration::from_millis(10), move || {
///     let probe = probe.clone();
///     async move { Ok(probe.check().await?) }
/// })
/// .on_error(OnError::Degrade);
///
/// let supervisor = Supervisor::builder().monitor(Arc::new(disk)).build().unwrap();
/// let tracker = supervisor.tracker().clone();
/// let running = supervisor.start(&CancellationToken::new());
/// while tracker.snapshot()["disk"].state != MonitorState::Degraded {
///     tokio::time::sleep(Duration::from_millis(5)).await;
/// }
/// let status = &tracker.snapshot()["disk"];
/// assert_eq!(status.error.as_ref().unwrap().reason, "InsufficientSpace");
/// assert_eq!(status.restarts, 0); // degraded, not crashed
/// assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
/// # }
/// ```
pub struct Periodic<F> {
    name: String,
    period: Duration,
    first_tick: FirstTick,
    missed_ticks: MissedTickBehavior,
    on_error: OnError,
    tick: F,
    /// The error of the last failed tick under [`OnError::Degrade`]; `None` while healthy.
    failing: Mutex<Option<StatusError>>,
}

/// Makes a [`Periodic`] monitor called `name` that calls `tick` every `period`.
///
/// `tick` returns the future of one tick: `Ok(())` when the work went well, `Err` for a
/// crash or a `degraded` report depending on [`Periodic::on_error`]. A period shorter
/// than [`MIN_PERIOD`] is raised to it. The result is a monitor once wrapped in an
/// `Arc`: `Arc::new(every(…))`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::monitor::{every, FirstTick};
/// use daemonkit::Monitor;
///
/// let sweep = every("sweep", Duration::from_secs(60), || async {
///     // one pass of the work
///     Ok(())
/// })
/// .first_tick(FirstTick::AfterPeriod);
/// assert_eq!(sweep.name(), "sweep");
/// assert_eq!(sweep.period(), Duration::from_secs(60));
/// ```
pub fn every<F, Fut>(name: impl Into<String>, period: Duration, tick: F) -> Periodic<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    Periodic {
        name: name.into(),
        period: period.max(MIN_PERIOD),
        first_tick: FirstTick::default(),
        missed_ticks: MissedTickBehavior::Delay,
        on_error: OnError::default(),
        tick,
        failing: Mutex::new(None),
    }
}

impl<F> fmt::Debug for Periodic<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Periodic")
            .field("name", &self.name)
            .field("period", &self.period)
            .field("first_tick", &self.first_tick)
            .field("missed_ticks", &self.missed_ticks)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

impl<F> Periodic<F> {
    /// When the first tick runs after each (re)start (default
    /// [`FirstTick::Immediately`]).
    #[must_use]
    pub fn first_tick(mut self, first_tick: FirstTick) -> Self {
        self.first_tick = first_tick;
        self
    }

    /// What happens when a tick overran one or more periods (default
    /// [`MissedTickBehavior::Delay`]: one late tick runs as soon as the slow one ended
    /// and the schedule restarts from then; `Skip` drops the missed ticks and keeps the
    /// original schedule; `Burst` runs every missed tick back to back, which is rarely
    /// what a monitor wants).
    #[must_use]
    pub fn missed_ticks(mut self, behavior: MissedTickBehavior) -> Self {
        self.missed_ticks = behavior;
        self
    }

    /// What a tick's `Err` means (default [`OnError::Crash`]).
    #[must_use]
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    fn failing(&self) -> MutexGuard<'_, Option<StatusError>> {
        // Only assignments happen under this lock; a poisoned value is still whole.
        self.failing
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Records a tick's outcome under [`OnError::Degrade`], logging only the changes
    /// (a lasting failure is one record, not one per tick).
    fn record(&self, outcome: Result<(), BoxError>) {
        let mut failing = self.failing();
        match outcome {
            Ok(()) => {
                if let Some(previous) = failing.take() {
                    tracing::info!(
                        reason = "MonitorTickRecovered",
                        monitor = %self.name,
                        previous_reason = %previous.reason,
                        "periodic monitor's tick passes again"
                    );
                }
            }
            Err(err) => {
                let error = status_error(err);
                let changed = failing.as_ref().is_none_or(|f| f.reason != error.reason);
                if changed {
                    tracing::warn!(
                        reason = "MonitorTickFailed",
                        monitor = %self.name,
                        tick_reason = %error.reason,
                        error = %error.message,
                        "periodic monitor's tick failed; reported as degraded"
                    );
                }
                *failing = Some(error);
            }
        }
    }
}

/// The operator-facing form of a tick's error: its own reason when it carries one.
fn status_error(err: BoxError) -> StatusError {
    let err = match err.downcast::<StatusError>() {
        Ok(status) => return *status,
        Err(err) => err,
    };
    match err.downcast::<ProbeError>() {
        Ok(probe) => probe.to_status_error(),
        Err(err) => StatusError::new("TickFailed", err.to_string()),
    }
}

impl<F, Fut> Monitor for Periodic<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            // A restarted run starts healthy: the last run's failure is history.
            *self.failing() = None;
            let start = match self.first_tick {
                FirstTick::Immediately => Instant::now(),
                FirstTick::AfterPeriod => Instant::now() + self.period,
            };
            let mut ticks = tokio::time::interval_at(start, self.period);
            ticks.set_missed_tick_behavior(self.missed_ticks);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = ticks.tick() => {}
                }
                // Cancellation drops the tick at its next await (see "Cancel safety").
                let outcome = tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    outcome = (self.tick)() => outcome,
                };
                match self.on_error {
                    OnError::Crash => outcome?,
                    OnError::Degrade => self.record(outcome),
                }
            }
        })
    }

    fn connectivity(&self) -> Option<&dyn Connectivity> {
        match self.on_error {
            OnError::Degrade => Some(self),
            OnError::Crash => None,
        }
    }
}

impl<F: Send + Sync> Connectivity for Periodic<F> {
    fn check(&self) -> Result<(), StatusError> {
        match self.failing().as_ref() {
            None => Ok(()),
            Some(error) => Err(error.clone()),
        }
    }
}
