//! The loop that keeps one monitor alive: run, catch, back off, run again.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::RestartPolicy;
use super::control::{Command, Shared};
use crate::duration::go_duration;
use crate::monitor::Monitor;
use crate::panic;
use crate::status::{MonitorHandle, MonitorState, StatusError};

/// Runs `monitor` until `cancel` is cancelled or it exits cleanly, restarting it after
/// every crash, and writes every transition through `handle`.
///
/// Never panics on the monitor's behalf: `run` (its synchronous part and its future) and
/// the connectivity check are behind the panic barrier.
pub(crate) async fn supervise(
    monitor: Arc<dyn Monitor>,
    handle: MonitorHandle,
    policy: Arc<RestartPolicy>,
    control: Arc<Shared>,
    cancel: CancellationToken,
) {
    supervise_loop(monitor, &handle, &policy, &control, &cancel).await;
    control.set_supervised(false);
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

/// Waits, stopped, for a start command; `false` when the daemon is cancelled first.
async fn wait_for_start(
    handle: &MonitorHandle,
    control: &Shared,
    cancel: &CancellationToken,
) -> bool {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return false,
            (command, by) = control.next() => {
                if let Next::Restart = requested(handle.name(), command, &by) {
                    return true;
                }
            }
        }
    }
}

async fn supervise_loop(
    monitor: Arc<dyn Monitor>,
    handle: &MonitorHandle,
    policy: &RestartPolicy,
    control: &Shared,
    cancel: &CancellationToken,
) {
    let name = handle.shared_name().clone();
    let mut streak = Streak::default();
    let mut rng = RandomState::new().build_hasher().finish() | 1;

    loop {
        if cancel.is_cancelled() {
            stopped(handle);
            return;
        }
        handle.update(|status| {
            status.state = MonitorState::Running;
            status.error = None;
            status.next_start = None;
            status.heartbeat_every = policy.heartbeat();
        });
        tracing::info!(reason = "MonitorStarted", monitor = %name, "monitor started");
        let started = Instant::now();
        let token = cancel.child_token();
        let run = run_once(monitor.as_ref(), handle, policy, token.clone(), started);
        let mut run = std::pin::pin!(run);
        // An operator's command cancels the run's own token and waits for it to return,
        // as shutdown does: the monitor finishes what it was doing.
        let mut command = None;
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                (cmd, by) = control.next(), if command.is_none() => {
                    command = Some(requested(&name, cmd, &by));
                    token.cancel();
                }
            }
        };

        if cancel.is_cancelled() {
            stopped(handle);
            return;
        }
        match command {
            Some(Next::Restart) => {
                streak.restart(handle);
                continue;
            }
            Some(Next::Stop) => {
                stopped(handle);
                if wait_for_start(handle, control, cancel).await {
                    streak = Streak::default();
                    continue;
                }
                return;
            }
            None => {}
        }
        let message = match outcome {
            Outcome::Exited => {
                handle.set_state(MonitorState::Stopped);
                tracing::info!(reason = "MonitorExited", monitor = %name, "monitor exited cleanly; not restarting");
                // Stopped, but still supervised: an operator may start it again.
                if wait_for_start(handle, control, cancel).await {
                    streak = Streak::default();
                    continue;
                }
                return;
            }
            Outcome::Crashed(message) => message,
        };

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
            streak.recent.push_back(now);
            while streak
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > within)
            {
                streak.recent.pop_front();
            }
            if streak.recent.len() > max as usize {
                give_up(handle, count, max, within, message);
                // Failed, but still supervised: an operator's start runs it again, with a
                // fresh streak and window (the failure was looked at).
                if wait_for_start(handle, control, cancel).await {
                    streak = Streak::default();
                    continue;
                }
                return;
            }
        }
        let backoff = policy.jittered(policy.delay_for(count), &mut rng);
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
        let reason = if count >= policy.degraded_every() {
            "MonitorDegraded"
        } else {
            "MonitorCrash"
        };
        let since = match streak.crash_since {
            Some((seen, since)) if seen == reason => since,
            _ => {
                let now = Timestamp::now();
                streak.crash_since = Some((reason, now));
                now
            }
        };
        let next_start = jiff::SignedDuration::try_from(backoff)
            .ok()
            .and_then(|after| Timestamp::now().checked_add(after).ok());
        handle.update(|status| {
            status.state = MonitorState::Backoff(backoff);
            status.next_start = next_start;
            status.consecutive_crashes = count;
            status.error = Some(
                StatusError::new(reason, format!("crash {count} in a row: {message}"))
                    .with_since(since),
            );
            status.last_error = Some(message);
        });

        // Boxed: the timer lives on the heap only while backing off, which keeps the
        // state of an idle, running monitor's task small.
        let woken = Box::pin(async {
            tokio::select! {
                _ = cancel.cancelled() => None,
                _ = tokio::time::sleep(backoff) => Some(None),
                (cmd, by) = control.next() => Some(Some(requested(&name, cmd, &by))),
            }
        })
        .await;
        match woken {
            None => {
                stopped(handle);
                return;
            }
            Some(None) => handle.update(|status| status.restarts += 1),
            Some(Some(Next::Restart)) => streak.restart(handle),
            Some(Some(Next::Stop)) => {
                stopped(handle);
                if !wait_for_start(handle, control, cancel).await {
                    return;
                }
                streak = Streak::default();
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

enum Outcome {
    Exited,
    Crashed(String),
}

/// One run of the monitor behind the panic barrier, with heartbeats alongside it on the
/// same task (no extra task per monitor keeps 10,000 idle monitors cheap).
async fn run_once(
    monitor: &dyn Monitor,
    handle: &MonitorHandle,
    policy: &RestartPolicy,
    token: CancellationToken,
    started: Instant,
) -> Outcome {
    // The synchronous part of `run` (before it returns its future) is user code too.
    let run = panic::call_async(|| monitor.run(token));
    let result = match policy.heartbeat() {
        None => run.await,
        Some(every) => {
            let mut ticks = tokio::time::interval_at(started + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut run = std::pin::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    _ = ticks.tick() => heartbeat(handle, started.elapsed()),
                }
            }
        }
    };
    match result {
        Ok(Ok(())) => Outcome::Exited,
        Ok(Err(err)) => Outcome::Crashed(err.to_string()),
        Err(message) => {
            tracing::error!(reason = "MonitorPanic", monitor = %handle.name(), panic = %message, "monitor panicked");
            Outcome::Crashed(format!("panic: {message}"))
        }
    }
}

fn heartbeat(handle: &MonitorHandle, uptime: Duration) {
    handle.heartbeat();
    let name = handle.name();
    let uptime = go_duration(Duration::from_secs(uptime.as_secs()));
    match handle.connectivity() {
        None => {
            tracing::info!(reason = "MonitorHeartbeat", monitor = %name, uptime = %uptime, "monitor alive")
        }
        Some(Ok(())) => tracing::info!(
            reason = "MonitorHeartbeat",
            monitor = %name,
            uptime = %uptime,
            healthy = true,
            "monitor alive"
        ),
        Some(Err(err)) => tracing::info!(
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

/// A monitor's current run of crashes: how many in a row, when the error being reported
/// began, and (for restart intensity) when the recent crashes were.
#[derive(Default)]
struct Streak {
    count: u32,
    /// The reason of the crash error being reported and when it was first reported, so
    /// `since` stays put across the crashes of one streak.
    crash_since: Option<(&'static str, Timestamp)>,
    /// The crashes inside the give-up window (only `max_crashes + 1` are ever kept).
    recent: VecDeque<Instant>,
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
