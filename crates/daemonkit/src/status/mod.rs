//! What every monitor is doing right now: states, operator-facing errors, the tracker.
//!
//! The [`StatusTracker`] is the read side, shared by whoever reports status (the control
//! plane's `/status`, `/metrics` and `/ready`, a periodic log line); each monitor's
//! [`MonitorHandle`] is the write side, held by whoever runs it. Its JSON matches the Go
//! daemonkit's, so tooling written for one reads the other:
//!
//! ```json
//! {"state": "backoff:10s", "error": {"reason": "MonitorCrash", "message": "…", "since": "…"}}
//! ```
//!
//! | type | what it is |
//! |---|---|
//! | [`StatusTracker`] | the shared record; [`snapshot`](StatusTracker::snapshot), [`on_transition`](StatusTracker::on_transition) |
//! | [`MonitorHandle`] | one monitor's writer, from [`StatusTracker::register`] |
//! | [`Snapshot`], [`MonitorStatus`], [`MonitorState`] | what a read returns |
//! | [`StatusError`] | reason, message, resolution, since |
//! | [`ComponentsStatus`] | the nested document of a daemon of several components |
//! | [`monitors_ready`] | readiness from a tracker, for `/ready` |

mod document;
mod error;
mod ready;
mod state;
mod tracker;

pub use crate::duration::go_duration;
pub use document::{ComponentStatus, ComponentsStatus};
pub use error::StatusError;
pub use ready::monitors_ready;
pub use state::{MonitorState, MonitorStatus, Transition};
pub(crate) use tracker::CheckFn;
pub use tracker::{MonitorHandle, Snapshot, StatusTracker};
