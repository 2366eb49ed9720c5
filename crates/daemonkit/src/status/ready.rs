//! [`monitors_ready`]: readiness from a tracker, for `/ready`.

use super::{MonitorState, StatusError, StatusTracker};

/// Whether every monitor of `tracker` is running, as a readiness check (for the control
/// plane's `/ready`): `Ok(())` when all are running (or there are none), otherwise one
/// [`StatusError`] per monitor that is not.
///
/// A monitor with an error (a crash while backing off, with reason `MonitorCrash` or
/// `MonitorDegraded`; a connectivity error while degraded) contributes that error, its
/// message prefixed with the monitor's name; one without (stopped, or not started yet)
/// contributes `MonitorNotRunning`.
///
/// # Examples
///
/// ```
/// use daemonkit::status::monitors_ready;
/// use daemonkit::{MonitorState, StatusTracker};
///
/// let tracker = StatusTracker::new();
/// tracker.register("db").unwrap().set_state(MonitorState::Running);
/// assert!(monitors_ready(&tracker).is_ok());
///
/// let _queue = tracker.register("queue").unwrap(); // registered, not started
/// let errors = monitors_ready(&tracker).unwrap_err();
/// assert_eq!(errors[0].reason, "MonitorNotRunning");
/// assert_eq!(errors[0].message, "monitor queue is stopped");
/// ```
pub fn monitors_ready(tracker: &StatusTracker) -> Result<(), Vec<StatusError>> {
    let errors: Vec<StatusError> = tracker
        .snapshot()
        .iter()
        .filter(|(_, status)| status.state != MonitorState::Running)
        .map(|(name, status)| match &status.error {
            Some(error) => StatusError {
                message: format!("monitor {name}: {}", error.message),
                ..error.clone()
            },
            None => StatusError::new(
                "MonitorNotRunning",
                format!("monitor {name} is {}", status.state),
            )
            .with_since(status.state_since),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
