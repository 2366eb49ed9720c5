//! What every monitor is doing right now: states, operator-facing errors and the tracker.
//!
//! The [`StatusTracker`] is written by the supervisor on every transition and read by
//! whoever reports status (the control plane's `/status`, `/metrics` and `/ready`, a
//! periodic log line). Its JSON matches the Go daemonkit's, so tooling written for one
//! reads the other:
//!
//! ```json
//! {"state": "backoff:10s", "error": {"reason": "MonitorCrash", "message": "…", "since": "…"}}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Serialize, Serializer};

use crate::monitor::Monitor;

// ===== StatusError =====

/// An operator-facing explanation of why something is not working, and how to fix it.
///
/// Serialises as `{"reason", "message", "resolution", "since"}`, with `resolution` left out
/// when empty and `since` in RFC 3339, exactly as the Go daemonkit writes it.
///
/// # Examples
///
/// ```
/// use daemonkit::StatusError;
///
/// let err = StatusError::new("DatabaseUnreachable", "connect to 10.0.0.5:5432: refused")
///     .with_resolution("systemctl start postgresql");
/// let json = serde_json::to_value(&err).unwrap();
/// assert_eq!(json["reason"], "DatabaseUnreachable");
/// assert_eq!(json["resolution"], "systemctl start postgresql");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatusError {
    /// A stable, machine-readable key in UpperCamelCase, e.g. `DatabaseUnreachable`.
    pub reason: String,
    /// What went wrong, for a person.
    pub message: String,
    /// What an operator can do about it, e.g. a command to run. Empty when there is no hint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resolution: String,
    /// When the condition began.
    pub since: Timestamp,
}

impl StatusError {
    /// An error with `reason` and `message`, no resolution, beginning now.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        StatusError {
            reason: reason.into(),
            message: message.into(),
            resolution: String::new(),
            since: Timestamp::now(),
        }
    }

    /// Sets the operator-facing resolution hint.
    pub fn with_resolution(mut self, resolution: impl Into<String>) -> Self {
        self.resolution = resolution.into();
        self
    }

    /// Sets when the condition began (default: when the error was created).
    pub fn with_since(mut self, since: Timestamp) -> Self {
        self.since = since;
        self
    }
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)?;
        if !self.resolution.is_empty() {
            write!(f, " (resolution: {})", self.resolution)?;
        }
        Ok(())
    }
}

impl std::error::Error for StatusError {}

// ===== MonitorState =====

/// The lifecycle state of one monitor.
///
/// Its string form is the Go daemonkit's: `running`, `degraded`, `stopped`, and
/// `backoff:<d>` with `<d>` printed as Go prints a `time.Duration` (see [`go_duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorState {
    /// The run loop is executing and reports no connectivity problem.
    Running,
    /// The run loop is executing but reports a connectivity error.
    Degraded,
    /// The monitor crashed and waits this long before its next run.
    Backoff(Duration),
    /// The monitor will not run again: it exited cleanly or was cancelled.
    Stopped,
}

impl MonitorState {
    /// The state's name without a back-off duration: `running`, `degraded`, `backoff`, `stopped`.
    ///
    /// Useful as a low-cardinality label (the Prometheus `state` label uses it).
    pub fn kind(&self) -> &'static str {
        match self {
            MonitorState::Running => "running",
            MonitorState::Degraded => "degraded",
            MonitorState::Backoff(_) => "backoff",
            MonitorState::Stopped => "stopped",
        }
    }
}

impl fmt::Display for MonitorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorState::Backoff(d) => write!(f, "backoff:{}", go_duration(*d)),
            other => f.write_str(other.kind()),
        }
    }
}

impl Serialize for MonitorState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Formats a duration the way Go's `time.Duration.String` does: `5s`, `1m20s`, `5m0s`,
/// `1.5s`, `250ms`, `1h0m0s`, `0s`.
///
/// The `backoff:<d>` state strings depend on it, so Go tooling that parses them with
/// `time.ParseDuration` keeps working.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::status::go_duration;
///
/// assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
/// assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
/// assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
/// assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
/// ```
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    // Below one second Go picks the largest unit that keeps an integer part.
    if nanos < 1_000_000_000 {
        let (unit, scale) = match nanos {
            n if n < 1_000 => return format!("{n}ns"),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let (h, m, s) = (total_secs / 3600, (total_secs / 60) % 60, total_secs % 60);
    let secs = fraction(u128::from(s as u64) * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / scale` printed with the shortest exact decimal fraction, as Go does.
fn fraction(value: u128, scale: u128) -> String {
    let (int, mut frac) = (value / scale, value % scale);
    if frac == 0 {
        return int.to_string();
    }
    let mut digits = scale.ilog10() as usize;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    format!("{int}.{frac:0digits$}")
}

// ===== MonitorStatus =====

/// Every monitor's status by name, as returned by [`StatusTracker::snapshot`]. Serialises
/// as the Go daemonkit's `/status` object.
pub type Snapshot = BTreeMap<Arc<str>, Arc<MonitorStatus>>;

/// A copy of one monitor's status, as returned by [`StatusTracker::snapshot`].
///
/// `state` and `error` are the Go daemonkit's fields; the others are extra detail that Go
/// tooling ignores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorStatus {
    /// The current state.
    pub state: MonitorState,
    /// Why the monitor is not healthy: a connectivity error while degraded, the last crash
    /// while backing off (reason `MonitorCrash`, or `MonitorDegraded` once the crash streak
    /// reached the policy's threshold). `None` when healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
    /// How many times the run loop was restarted after a crash.
    pub restarts: u64,
    /// Crashes in the current streak; reset by a run that lasted the stable threshold.
    pub consecutive_crashes: u32,
    /// The message of the most recent crash, kept after recovery for post-mortems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the monitor entered its current state (for a running monitor: when its
    /// current run began).
    pub state_since: Timestamp,
}

impl MonitorStatus {
    fn new(state: MonitorState) -> Self {
        MonitorStatus {
            state,
            error: None,
            restarts: 0,
            consecutive_crashes: 0,
            last_error: None,
            state_since: Timestamp::now(),
        }
    }

    /// When the current run began; `None` unless running or degraded.
    pub fn running_since(&self) -> Option<Timestamp> {
        matches!(self.state, MonitorState::Running | MonitorState::Degraded)
            .then_some(self.state_since)
    }

    /// True when the monitor is running and reports no connectivity error.
    pub fn is_healthy(&self) -> bool {
        self.state == MonitorState::Running
    }
}

// ===== Transition =====

/// A change of a monitor's status, as passed to [`StatusTracker::on_transition`] listeners.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The monitor's name.
    pub monitor: Arc<str>,
    /// The state before the change (equal to `status.state` when only a counter or the
    /// error changed).
    pub from: MonitorState,
    /// The status after the change.
    pub status: Arc<MonitorStatus>,
}

type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

// ===== StatusTracker =====

/// A concurrency-safe record of every supervised monitor's status.
///
/// Cheap to clone (all clones share one record). The supervisor updates it on every
/// transition; [`snapshot`](Self::snapshot) returns a copy in which a running monitor whose
/// [`Monitor::connectivity_error`] is `Some` shows as [`MonitorState::Degraded`] with that
/// error: the overlay is done here, once, so every daemon reports it the same way.
///
/// # Examples
///
/// ```
/// use daemonkit::{MonitorState, StatusTracker};
///
/// let tracker = StatusTracker::new();
/// tracker.set_state("db", MonitorState::Running);
/// let snapshot = tracker.snapshot();
/// assert_eq!(snapshot["db"].state.to_string(), "running");
/// ```
#[derive(Clone, Default)]
pub struct StatusTracker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<Tracked>,
    listeners: Mutex<Vec<Listener>>,
}

/// Statuses behind `Arc`s in a `BTreeMap`, so a snapshot is a node-by-node copy of
/// pointers, already in name order: no sorting, no hashing, no deep copy (an update
/// copies a status only while a snapshot still holds it). The monitors that report
/// connectivity are kept aside, so the common case costs nothing per monitor.
#[derive(Default)]
struct Tracked {
    statuses: Snapshot,
    reporters: HashMap<Arc<str>, Arc<dyn Monitor>>,
}

impl fmt::Debug for StatusTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusTracker")
            .field("monitors", &self.tracked().statuses.len())
            .finish()
    }
}

impl StatusTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn tracked(&self) -> MutexGuard<'_, Tracked> {
        // Nothing panics while holding this lock (plain assignments and clones, and the
        // caller's `update` closure, which the docs ask to be a plain assignment); if one
        // did, the maps are still structurally sound, so keep serving them.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Registers `monitor`, starting in `stopped` until its first run, and returns the
    /// shared name key. A monitor whose [`Monitor::reports_connectivity`] is true is kept
    /// so snapshots can overlay its connectivity error.
    pub fn register(&self, monitor: Arc<dyn Monitor>) -> Arc<str> {
        let mut tracked = self.tracked();
        let name = match tracked.statuses.get_key_value(monitor.name()) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(monitor.name());
                tracked.statuses.insert(
                    name.clone(),
                    Arc::new(MonitorStatus::new(MonitorState::Stopped)),
                );
                name
            }
        };
        if monitor.reports_connectivity() {
            tracked.reporters.insert(name.clone(), monitor);
        }
        name
    }

    /// True when a monitor of this name is tracked.
    pub fn contains(&self, name: &str) -> bool {
        self.tracked().statuses.contains_key(name)
    }

    /// Sets a monitor's state (creating its entry when new), clearing the error unless
    /// the new state is a back-off.
    pub fn set_state(&self, name: &str, state: MonitorState) {
        self.update(name, |status| {
            if !matches!(state, MonitorState::Backoff(_)) {
                status.error = None;
            }
            status.state = state;
        });
    }

    /// Applies `change` to a monitor's status (creating its entry when new), stamps
    /// `state_since` when the state changed, and tells the listeners. Keep `change` to
    /// plain assignments: it runs under the tracker's lock.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut MonitorStatus)) {
        let transition = {
            let mut tracked = self.tracked();
            let key = match tracked.statuses.get_key_value(name) {
                Some((key, _)) => key.clone(),
                None => {
                    let key: Arc<str> = Arc::from(name);
                    tracked.statuses.insert(
                        key.clone(),
                        Arc::new(MonitorStatus::new(MonitorState::Stopped)),
                    );
                    key
                }
            };
            // The entry exists: it was found or inserted just above, under the same lock.
            let Some(shared) = tracked.statuses.get_mut(name) else {
                return;
            };
            // Copies the status only if a snapshot still holds the current one.
            let status = Arc::make_mut(shared);
            let before = status.state;
            change(status);
            if status.state != before {
                status.state_since = Timestamp::now();
            }
            Transition {
                monitor: key,
                from: before,
                status: shared.clone(),
            }
        };
        // Listeners run outside the lock so one may read the tracker without deadlocking.
        let listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        for listener in listeners {
            listener(&transition);
        }
    }

    /// Calls `listener` after every status change, outside the tracker's lock.
    ///
    /// Listeners run on the supervisor's task: keep them short and non-blocking (send to
    /// a channel for anything slow, such as a durable write).
    pub fn on_transition(&self, listener: impl Fn(&Transition) + Send + Sync + 'static) {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(Arc::new(listener));
    }

    /// Removes a monitor from the tracker.
    pub fn remove(&self, name: &str) {
        let mut tracked = self.tracked();
        tracked.statuses.remove(name);
        tracked.reporters.remove(name);
    }

    /// A copy of every monitor's status, keyed by name, with the connectivity overlay
    /// applied.
    pub fn snapshot(&self) -> Snapshot {
        let (mut snapshot, reporters) = {
            let tracked = self.tracked();
            let reporters: Vec<_> = tracked
                .reporters
                .iter()
                .filter(|(name, _)| {
                    tracked
                        .statuses
                        .get(*name)
                        .is_some_and(|s| s.state == MonitorState::Running)
                })
                .map(|(name, monitor)| (name.clone(), monitor.clone()))
                .collect();
            (tracked.statuses.clone(), reporters)
        };
        // The monitors' own code runs outside the lock: it may take its own locks.
        for (name, monitor) in reporters {
            if let Some(status) = snapshot.get_mut(&name) {
                overlay(status, monitor.as_ref());
            }
        }
        snapshot
    }

    /// The status of one monitor, with the connectivity overlay applied.
    pub fn get(&self, name: &str) -> Option<Arc<MonitorStatus>> {
        let (mut status, monitor) = {
            let tracked = self.tracked();
            (
                tracked.statuses.get(name)?.clone(),
                tracked.reporters.get(name).cloned(),
            )
        };
        if let Some(monitor) = monitor {
            overlay(&mut status, monitor.as_ref());
        }
        Some(status)
    }

    /// True when at least one monitor is tracked and every one is running and healthy.
    pub fn all_healthy(&self) -> bool {
        let snapshot = self.snapshot();
        !snapshot.is_empty() && snapshot.values().all(|s| s.is_healthy())
    }
}

/// Shows a running monitor that reports a connectivity error as degraded, with the error.
/// Copies the status only when it changes it.
fn overlay(status: &mut Arc<MonitorStatus>, monitor: &dyn Monitor) {
    if status.state == MonitorState::Running
        && let Some(err) = monitor.connectivity_error()
    {
        let status = Arc::make_mut(status);
        status.state = MonitorState::Degraded;
        status.error = Some(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_matches_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(40), "40s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(160), "2m40s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(61_250), "1m1.25s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn backoff_state_string() {
        assert_eq!(
            MonitorState::Backoff(Duration::from_secs(5)).to_string(),
            "backoff:5s"
        );
        assert_eq!(MonitorState::Degraded.to_string(), "degraded");
    }

    #[test]
    fn status_error_omits_empty_resolution() {
        let err = StatusError::new("R", "m");
        let json = serde_json::to_value(&err).unwrap();
        assert!(json.get("resolution").is_none());
        assert!(json["since"].as_str().unwrap().ends_with('Z'));
    }
}
