//! The loop that keeps one monitor alive: run, catch, back off, run again.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::RestartPolicy;
use super::control::{Command, Shared};
use crate::boxed::BoxError;
use crate::duration::go_duration;
use crate::monitor::Monitor;
use crate::panic;
use crate::status::{MonitorHandle, MonitorState, StatusError};

/// Runs `monitor` until `cancel` is cancelled or it exits cleanly, restarting it after
/// every crash, and writes every transition through `handle`.
///
/// Never panics on the monitor's behalf: `run` (its synchronous part and its future) and
/// the connectivity check are behind the panic barrier.
///
/// This future is what every idle monitor costs (it is the task tokio keeps), so it is
/// kept small: the arguments live once, in a [`Supervised`] the loop borrows; waiting
/// for a start and backing off are boxed (on the heap only while they last); and a
/// running monitor waits on its own run and heartbeat only, an operator's command
/// cancelling the run's token itself.
pub(crate) fn supervise(
    monitor: Arc<dyn Monitor>,
    handle: MonitorHandle,
    policy: Arc<RestartPolicy>,
    control: Arc<Shared>,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let mut supervised = Supervised {
        monitor,
        handle,
        policy,
        control,
        cancel,
        streak: Streak::default(),
        rng: RandomState::new().build_hasher().finish() | 1,
    };
    async move {
        supervised.run().await;
        supervised.control.set_supervised(false);
    }
}

/// What the loop does after an operator's command cut a run or a back-off short.
enum Next {
    /// Start again at once, with the streak reset.
    Restart,
    /// Stay stopped until a start or the daemon's cancellation.
    Stop,
}

/// Logs an operator's command, and what it means for the loop.
fn requested(name: &str, command: Command, by: &str) -> Next {
    let reason = match command {
        Command::Restart => "MonitorRestartRequested",
        Command::Stop => "MonitorStopRequested",
        Command::Start => "MonitorStartRequested",
    };
    tracing::info!(reason, monitor = %name, by = %by, command = %command, "operator command");
    match command {
        Command::Stop => Next::Stop,
        Command::Restart | Command::Start => Next::Restart,
    }
}

/// One supervised monitor and everything its loop keeps between runs.
struct Supervised {
    monitor: Arc<dyn Monitor>,
    handle: MonitorHandle,
    policy: Arc<RestartPolicy>,
    control: Arc<Shared>,
    cancel: CancellationToken,
    streak: Streak,
    /// The jitter's random state.
    rng: u64,
}

/// What `run` returned (`Err` carries a panic's message).
type RunResult = Result<Result<(), BoxError>, String>;

/// What the loop does after a run ended (or a back-off was cut short).
enum Step {
    /// Start the monitor again now.
    Run,
    /// Back off this long, then start it again.
    BackOff(Duration),
    /// Stay stopped until an operator's start (or the daemon's end).
    Hold,
    /// The daemon is stopping: the monitor is stopped for good.
    Return,
}

impl Supervised {
    /// The loop: every await is one of three small futures (a run with its heartbeat, a
    /// boxed back-off, a boxed hold), and everything kept across them lives in `self`, so
    /// the task of an idle monitor holds little more than its run (384 bytes of future,
    /// the heartbeat's timer included, a 512-byte task, where the loop written as one
    /// `async fn` made a 1,152-byte one and an `Interval` boxed its timer apart).
    async fn run(&mut self) {
        let mut step = Step::Run;
        loop {
            step = match step {
                Step::Return => {
                    stopped(&self.handle);
                    return;
                }
                Step::Run => {
                    let Some(token) = self.start() else {
                        step = Step::Return;
                        continue;
                    };
                    let (result, started) = self.run_once(token).await;
                    self.after_run(result, started)
                }
                Step::BackOff(backoff) => self.back_off(backoff).await,
                Step::Hold => {
                    // Boxed: on the heap only while a monitor is held.
                    if !Box::pin(self.wait_for_start()).await {
                        // Left as it was held: stopped, or failed after giving up.
                        return;
                    }
                    self.streak = Streak::default();
                    Step::Run
                }
            };
        }
    }

    /// Marks the monitor running and makes the run's token; `None` when the daemon is
    /// stopping.
    fn start(&self) -> Option<CancellationToken> {
        if self.cancel.is_cancelled() {
            return None;
        }
        let heartbeat = self.policy.heartbeat();
        self.handle.update(|status| {
            status.state = MonitorState::Running;
            status.error = None;
            status.next_start = None;
            status.heartbeat_every = heartbeat;
        });
        tracing::info!(reason = "MonitorStarted", monitor = %self.handle.name(), "monitor started");
        let token = self.cancel.child_token();
        // An operator's command cancels the run's own token and waits for it to return,
        // as shutdown does: the monitor finishes what it was doing.
        self.control.arm(&token);
        Some(token)
    }

    /// One run of the monitor behind the panic barrier, with heartbeats alongside it on
    /// the same task (no extra task per monitor keeps 10,000 idle monitors cheap).
    /// Returns the run's result and when it started.
    async fn run_once(&self, token: CancellationToken) -> (RunResult, Instant) {
        let started = Instant::now();
        // The synchronous part of `run` (before it returns its future) is user code too.
        let run = match panic::call(|| self.monitor.run(token)) {
            Ok(run) => panic::catch_async(run),
            Err(message) => return (Err(message), started),
        };
        let result = match self.policy.heartbeat() {
            None => run.await,
            Some(every) => {
                // A `Sleep` in this future, reset after each beat, rather than an
                // `Interval`, which keeps its `Sleep` in a box of its own: 112 bytes and
                // an allocation less per idle monitor, in a task no larger (512 bytes).
                let beat = tokio::time::sleep_until(started + every);
                let mut beat = std::pin::pin!(beat);
                let mut run = std::pin::pin!(run);
                loop {
                    tokio::select! {
                        result = &mut run => break result,
                        () = &mut beat => {
                            heartbeat(&self.handle, started.elapsed());
                            let next = next_beat(beat.deadline(), Instant::now(), every);
                            beat.as_mut().reset(next);
                        }
                    }
                }
            }
        };
        (result, started)
    }

    /// Decides what follows a run: an operator's command, a clean exit, giving up, or a
    /// back-off after a crash.
    fn after_run(&mut self, result: RunResult, started: Instant) -> Step {
        let name = self.handle.name();
        let command = self
            .control
            .disarm()
            .map(|(command, by)| requested(name, command, &by));
        if self.cancel.is_cancelled() {
            return Step::Return;
        }
        match command {
            Some(Next::Restart) => {
                self.streak.restart(&self.handle);
                return Step::Run;
            }
            Some(Next::Stop) => {
                stopped(&self.handle);
                return Step::Hold;
            }
            None => {}
        }
        let message = match result {
            Ok(Ok(())) => {
                self.handle.set_state(MonitorState::Stopped);
                tracing::info!(reason = "MonitorExited", monitor = %name, "monitor exited cleanly; not restarting");
                // Stopped, but still supervised: an operator may start it again.
                return Step::Hold;
            }
            Ok(Err(err)) => err.to_string(),
            Err(message) => {
                tracing::error!(reason = "MonitorPanic", monitor = %name, panic = %message, "monitor panicked");
                format!("panic: {message}")
            }
        };
        let policy = &*self.policy;
        let streak = &mut self.streak;

        // A run that lasted the stable threshold ends the previous streak before this
        // crash is counted, so this crash is #1 of a new streak.
        if started.elapsed() >= policy.stable_after() {
            streak.count = 0;
            streak.crash_since = None;
        }
        streak.count = streak.count.saturating_add(1);
        let count = streak.count;
        if let Some((max, within)) = policy.give_up_after() {
            let now = Instant::now();
            let recent = streak.recent.get_or_insert_default();
            recent.push_back(now);
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > within)
            {
                recent.pop_front();
            }
            if recent.len() > max as usize {
                give_up(&self.handle, count, max, within, message);
                // Failed, but still supervised: an operator's start runs it again, with a
                // fresh streak and window (the failure was looked at).
                return Step::Hold;
            }
        }
        let backoff = policy.jittered(policy.delay_for(count), &mut self.rng);
        tracing::error!(
            reason = "MonitorCrash",
            monitor = %name,
            error = %message,
            consecutive_crashes = count,
            backoff = %go_duration(backoff),
            "monitor crashed; restarting after back-off"
        );
        if count.is_multiple_of(policy.degraded_every()) {
            // `current_backoff` as the Go daemonkit's record carries it.
            tracing::error!(
                reason = "MonitorDegraded",
                monitor = %name,
                consecutive_crashes = count,
                current_backoff = %go_duration(backoff),
                error = %message,
                "monitor keeps crashing"
            );
        }
        let degraded = count >= policy.degraded_every();
        let reason = if degraded {
            "MonitorDegraded"
        } else {
            "MonitorCrash"
        };
        let since = match streak.crash_since {
            Some((seen, since)) if seen == degraded => since,
            _ => {
                let now = Timestamp::now();
                streak.crash_since = Some((degraded, now));
                now
            }
        };
        let next_start = jiff::SignedDuration::try_from(backoff)
            .ok()
            .and_then(|after| Timestamp::now().checked_add(after).ok());
        self.handle.update(|status| {
            status.state = MonitorState::Backoff(backoff);
            status.next_start = next_start;
            status.consecutive_crashes = count;
            status.error = Some(
                StatusError::new(reason, format!("crash {count} in a row: {message}"))
                    .with_since(since),
            );
            status.last_error = Some(message);
        });
        Step::BackOff(backoff)
    }

    /// Backs off before the next start; an operator's command or the daemon's end cuts
    /// it short.
    async fn back_off(&mut self, backoff: Duration) -> Step {
        let name = self.handle.name();
        // Boxed: the timer lives on the heap only while backing off.
        let woken = Box::pin(async {
            tokio::select! {
                _ = self.cancel.cancelled() => None,
                _ = tokio::time::sleep(backoff) => Some(None),
                (cmd, by) = self.control.next() => Some(Some(requested(name, cmd, &by))),
            }
        })
        .await;
        match woken {
            None => Step::Return,
            Some(None) => {
                self.handle.update(|status| status.restarts += 1);
                Step::Run
            }
            Some(Some(Next::Restart)) => {
                self.streak.restart(&self.handle);
                Step::Run
            }
            Some(Some(Next::Stop)) => {
                stopped(&self.handle);
                Step::Hold
            }
        }
    }

    /// Waits, stopped, for a start command; `false` when the daemon is cancelled first.
    async fn wait_for_start(&self) -> bool {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return false,
                (command, by) = self.control.next() => {
                    if let Next::Restart = requested(self.handle.name(), command, &by) {
                        return true;
                    }
                }
            }
        }
    }
}

/// Marks the monitor failed: more than `max` crashes within `within`.
fn give_up(handle: &MonitorHandle, streak: u32, max: u32, within: Duration, message: String) {
    let within = go_duration(within);
    tracing::error!(
        reason = "MonitorGaveUp",
        monitor = %handle.name(),
        error = %message,
        consecutive_crashes = streak,
        max_crashes = max,
        within = %within,
        "monitor crashed more than its policy allows; not restarting it"
    );
    handle.update(|status| {
        status.state = MonitorState::Failed;
        status.consecutive_crashes = streak;
        status.error = Some(
            StatusError::new(
                "MonitorGaveUp",
                format!("more than {max} crashes within {within}, the last: {message}"),
            )
            .with_resolution(
                "read the monitor's MonitorCrash records, fix the cause, then restart the daemon",
            )
            .with_since(Timestamp::now()),
        );
        status.last_error = Some(message);
    });
}

fn stopped(handle: &MonitorHandle) {
    handle.set_state(MonitorState::Stopped);
    tracing::info!(reason = "MonitorStopped", monitor = %handle.name(), "monitor stopped");
}

/// When the beat after one due at `due` and run at `now` is due: a period after `due`,
/// or, when the beat ran late (the runtime was busy), a period after it ran, so a late
/// beat is not followed by a burst (as tokio's `MissedTickBehavior::Delay`, with its 5 ms
/// tolerance).
fn next_beat(due: Instant, now: Instant, every: Duration) -> Instant {
    if now > due + Duration::from_millis(5) {
        now + every
    } else {
        due + every
    }
}

fn heartbeat(handle: &MonitorHandle, uptime: Duration) {
    handle.heartbeat();
    let name = handle.name();
    // Formatted inside each record's fields, so only when the record is enabled: 10,000
    // monitors beat 10,000 times a second, and a daemon may filter these records out.
    let uptime = Duration::from_secs(uptime.as_secs());
    match handle.connectivity() {
        None => {
            tracing::info!(reason = "MonitorHeartbeat", monitor = %name, uptime = %go_duration(uptime), "monitor alive")
        }
        Some(Ok(())) => tracing::info!(
            reason = "MonitorHeartbeat",
            monitor = %name,
            uptime = %go_duration(uptime),
            healthy = true,
            "monitor alive"
        ),
        Some(Err(err)) => tracing::info!(
            reason = "MonitorHeartbeat",
            monitor = %name,
            uptime = %go_duration(uptime),
            healthy = false,
            connectivity_reason = %err.reason,
            connectivity_error = %err.message,
            "monitor alive but failing"
        ),
    }
}

/// A monitor's current run of crashes: how many in a row, when the error being reported
/// began, and (for restart intensity) when the recent crashes were.
#[derive(Default)]
struct Streak {
    count: u32,
    /// Whether the crash error being reported is `MonitorDegraded` (else `MonitorCrash`)
    /// and when it was first reported, so `since` stays put across the crashes of one
    /// streak.
    crash_since: Option<(bool, Timestamp)>,
    /// The crashes inside the give-up window (only `max_crashes + 1` are ever kept).
    /// Boxed, and only with a give-up policy: most monitors never need it, and every
    /// byte here is in every idle monitor's task (8 bytes instead of 32).
    #[expect(
        clippy::box_collection,
        reason = "a pointer is smaller than an empty VecDeque"
    )]
    recent: Option<Box<VecDeque<Instant>>>,
}

impl Streak {
    /// An operator's restart: a fresh streak and window, and no crash error shown.
    fn restart(&mut self, handle: &MonitorHandle) {
        *self = Streak::default();
        handle.update(|status| {
            status.consecutive_crashes = 0;
            status.error = None;
        });
    }
}
