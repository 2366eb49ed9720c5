//! [`MonitorState`], [`MonitorStatus`] and [`Transition`]: what one monitor is doing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Serialize, Serializer};

use super::{Snapshot, StatusError};
use crate::duration::go_duration;

// ===== MonitorState =====

/// The lifecycle state of one monitor.
///
/// Its string form is the Go daemonkit's: `running`, `degraded`, `stopped`, and
/// `backoff:<d>` with `<d>` printed as Go prints a `time.Duration` (see
/// [`go_duration`](super::go_duration)). `failed` is this kit's own addition (the Go
/// daemonkit restarts forever and has no such state): it appears only for monitors
/// whose [`RestartPolicy`](crate::RestartPolicy) gives up, so a Go consumer of a daemon
/// that never opts in sees only the Go strings.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::MonitorState;
///
/// assert_eq!(MonitorState::Backoff(Duration::from_secs(80)).to_string(), "backoff:1m20s");
/// assert_eq!(MonitorState::Degraded.kind(), "degraded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MonitorState {
    /// The run loop is executing and reports no connectivity problem.
    Running,
    /// The run loop is executing but reports a connectivity error.
    Degraded,
    /// The monitor crashed and waits this long before its next run.
    Backoff(Duration),
    /// The monitor will not run again: it exited cleanly or was cancelled.
    Stopped,
    /// The monitor crashed more often than its policy's restart intensity allows
    /// ([`RestartPolicyBuilder::give_up_after`](crate::supervisor::RestartPolicyBuilder::give_up_after))
    /// and will not run again; its error has reason `MonitorGaveUp`.
    Failed,
}

impl MonitorState {
    /// The state's name without a back-off duration: `running`, `degraded`, `backoff`,
    /// `stopped`, `failed`.
    ///
    /// Useful as a low-cardinality label (the Prometheus `state` label uses it).
    pub fn kind(&self) -> &'static str {
        match self {
            MonitorState::Running => "running",
            MonitorState::Degraded => "degraded",
            MonitorState::Backoff(_) => "backoff",
            MonitorState::Stopped => "stopped",
            MonitorState::Failed => "failed",
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

// ===== MonitorStatus =====

/// A copy of one monitor's status, as read from a [`StatusTracker`](super::StatusTracker).
///
/// `state` and `error` are the Go daemonkit's fields; the others are extra detail that Go
/// tooling ignores. Marked `#[non_exhaustive]`: new detail may be added in minor releases.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
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
    /// The heartbeat interval of the monitor's restart policy; `None` without heartbeats.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_go_duration"
    )]
    pub heartbeat_every: Option<Duration>,
    /// When the monitor's last heartbeat was logged; `None` before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Timestamp>,
    /// While backing off: when the next run is due. `None` in every other state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_start: Option<Timestamp>,
    /// The states of the sub-tasks this monitor supervises itself, for a monitor whose
    /// [`Monitor::subtasks`](crate::Monitor::subtasks) names their tracker; `None` for
    /// the others (and left out of the JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtasks: Option<Snapshot>,
}

impl MonitorStatus {
    pub(crate) fn new(state: MonitorState) -> Self {
        MonitorStatus {
            state,
            error: None,
            restarts: 0,
            consecutive_crashes: 0,
            last_error: None,
            state_since: Timestamp::now(),
            next_start: None,
            heartbeat_every: None,
            last_heartbeat: None,
            subtasks: None,
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

/// A change of a monitor's status, as passed to
/// [`StatusTracker::on_transition`](super::StatusTracker::on_transition) listeners.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Transition {
    /// The monitor's name.
    pub monitor: Arc<str>,
    /// The state before the change (equal to `status.state` when only a counter or the
    /// error changed).
    pub from: MonitorState,
    /// The status after the change.
    pub status: Arc<MonitorStatus>,
}

/// An optional duration as Go prints it (`30s`, `1m0s`).
fn serialize_go_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&go_duration(*d)),
        None => s.serialize_none(),
    }
}
