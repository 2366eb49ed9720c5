//! [`ComponentsStatus`]: the nested `/status` document of a daemon of several components.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Snapshot, StatusError};

/// The `/status` document of a daemon of several components, in the shape the Go
/// daemonkit's consumers already decode:
///
/// ```json
/// {"components": {"<component>": {"monitors": {"<monitor>": {"state": "running", …}}}},
///  "probe_errors": {"<component>": {"reason": …, "message": …, "resolution": …, "since": …}}}
/// ```
///
/// `components` and each `monitors` are always present; `probe_errors` is left out when
/// no prerequisite fails (and each error's `resolution` when empty). Inside each monitor,
/// the kit's extra fields (`restarts`, `state_since`, …) stand beside Go's `state` and
/// `error`. A daemon of one implicit component serves the flat [`Snapshot`] instead.
///
/// # Examples
///
/// ```
/// use daemonkit::status::{ComponentStatus, ComponentsStatus};
/// use daemonkit::{StatusError, StatusTracker};
///
/// let tracker = StatusTracker::new();
/// let mut doc = ComponentsStatus::default();
/// doc.components.insert("block-node".into(), ComponentStatus::new(tracker.snapshot()));
/// doc.probe_errors.insert(
///     "block-node".into(),
///     StatusError::new("DataDirNotOwned", "/var/lib/bn is owned by root"),
/// );
/// let json = serde_json::to_value(&doc).unwrap();
/// assert!(json["components"]["block-node"]["monitors"].is_object());
/// assert_eq!(json["probe_errors"]["block-node"]["reason"], "DataDirNotOwned");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ComponentsStatus {
    /// Every component's monitors, by component name.
    pub components: BTreeMap<String, ComponentStatus>,
    /// The failing prerequisite of each component whose probe does not pass.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub probe_errors: BTreeMap<String, StatusError>,
    /// How late the daemon's runtime has run its timers (a blocked thread shows here),
    /// when the daemon measures it: an extra field of ours, which Go's decoder ignores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<crate::stall::StallStats>,
}

/// One component's part of a [`ComponentsStatus`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ComponentStatus {
    /// The component's monitors (the statuses of those not started yet are `stopped`).
    pub monitors: Snapshot,
}

impl ComponentStatus {
    /// A component's status from its monitors' snapshot.
    pub fn new(monitors: Snapshot) -> Self {
        ComponentStatus { monitors }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::status::{MonitorState, MonitorStatus};

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn status(state: MonitorState, error: Option<StatusError>, since: &str) -> Arc<MonitorStatus> {
        let mut status = MonitorStatus::new(state);
        status.error = error;
        status.state_since = at(since);
        Arc::new(status)
    }

    /// The nested document byte for byte against a fixture written from the Go
    /// consumer's field list: `components` → `monitors` → `{state, error}`, then
    /// `probe_errors` → `{reason, message, resolution, since}`; `resolution` omitted when
    /// empty, `error` when healthy; the kit's extra fields after Go's.
    #[test]
    fn nested_document_matches_the_go_consumer_shape_byte_for_byte() {
        let mut core = BTreeMap::new();
        core.insert(
            Arc::from("upgrade"),
            status(MonitorState::Running, None, "2026-12-03T07:00:00Z"),
        );
        core.insert(
            Arc::from("migration"),
            status(
                MonitorState::Backoff(Duration::from_secs(80)),
                Some(
                    StatusError::new("MonitorCrash", "crash 3 in a row: boom")
                        .with_since(at("2026-12-03T07:01:00Z")),
                ),
                "2026-12-03T07:02:00Z",
            ),
        );
        let mut doc = ComponentsStatus::default();
        doc.components.insert(
            "consensus-node".into(),
            ComponentStatus::new(Snapshot(Arc::new(core))),
        );
        doc.components.insert(
            "block-node".into(),
            ComponentStatus::new(Snapshot::default()),
        );
        doc.probe_errors.insert(
            "block-node".into(),
            StatusError::new(
                "UpgradeDirOwnershipCheckFailed",
                "/opt/hgcapp/upgrade is owned by root, expected hedera",
            )
            .with_resolution("sudo chown hedera:hedera /opt/hgcapp/upgrade")
            .with_since(at("2026-12-03T06:59:00Z")),
        );
        let fixture = concat!(
            r#"{"components":{"block-node":{"monitors":{}},"consensus-node":{"monitors":{"#,
            r#""migration":{"state":"backoff:1m20s","error":{"reason":"MonitorCrash","message":"crash 3 in a row: boom","since":"2026-12-03T07:01:00Z"},"restarts":0,"consecutive_crashes":0,"state_since":"2026-12-03T07:02:00Z"},"#,
            r#""upgrade":{"state":"running","restarts":0,"consecutive_crashes":0,"state_since":"2026-12-03T07:00:00Z"}}}},"#,
            r#""probe_errors":{"block-node":{"reason":"UpgradeDirOwnershipCheckFailed","message":"/opt/hgcapp/upgrade is owned by root, expected hedera","resolution":"sudo chown hedera:hedera /opt/hgcapp/upgrade","since":"2026-12-03T06:59:00Z"}}}"#,
        );
        assert_eq!(serde_json::to_string(&doc).unwrap(), fixture);

        doc.probe_errors.clear();
        let healthy = serde_json::to_string(&doc).unwrap();
        assert!(!healthy.contains("probe_errors"), "{healthy}");
        assert!(healthy.starts_with(r#"{"components":{"block-node":{"monitors":{}}"#));
    }
}
