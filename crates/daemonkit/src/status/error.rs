//! [`StatusError`]: why something is not working, for an operator.

use std::fmt;

use jiff::Timestamp;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// An operator-facing explanation of why something is not working, and how to fix it.
///
/// Serialises as `{"reason", "message", "resolution", "since"}`, with `resolution` left out
/// when empty and `since` in RFC 3339, exactly as the Go daemonkit writes it. An error
/// whose beginning is unknown has `since` `None`, written as `""` as Go writes an error
/// built without a time; the kit fills it in when it reports the error (see
/// [`since`](Self::since)).
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
/// assert_eq!(json["since"], "", "not known until the kit first sees it");
///
/// // Go writes `"since":""` for an error built without a time: it decodes as unknown.
/// let go: StatusError =
///     serde_json::from_str(r#"{"reason":"R","message":"m","since":""}"#).unwrap();
/// assert_eq!(go.since, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusError {
    /// A stable, machine-readable key in UpperCamelCase, e.g. `DatabaseUnreachable`.
    pub reason: String,
    /// What went wrong, for a person.
    pub message: String,
    /// What an operator can do about it, e.g. a command to run. Empty when there is no hint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resolution: String,
    /// When the condition began; `None` when unknown.
    ///
    /// Leave it `None` in a monitor's connectivity report and the kit keeps the time it
    /// first saw this reason, until the monitor reports healthy or another reason; set
    /// it (with [`with_since`](Self::with_since)) when the monitor knows better.
    #[serde(
        default,
        serialize_with = "serialize_since",
        deserialize_with = "deserialize_since"
    )]
    pub since: Option<Timestamp>,
}

impl StatusError {
    /// An error with `reason` and `message`, no resolution, and an unknown beginning.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        StatusError {
            reason: reason.into(),
            message: message.into(),
            resolution: String::new(),
            since: None,
        }
    }

    /// Sets the operator-facing resolution hint.
    pub fn with_resolution(mut self, resolution: impl Into<String>) -> Self {
        self.resolution = resolution.into();
        self
    }

    /// Sets when the condition began.
    pub fn with_since(mut self, since: Timestamp) -> Self {
        self.since = Some(since);
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

fn serialize_since<S: Serializer>(since: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match since {
        Some(t) => t.serialize(s),
        None => s.serialize_str(""),
    }
}

fn deserialize_since<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omits_empty_resolution_and_writes_unknown_since_as_go_does() {
        let json = serde_json::to_string(&StatusError::new("R", "m")).unwrap();
        assert_eq!(json, r#"{"reason":"R","message":"m","since":""}"#);
    }

    #[test]
    fn round_trips_a_known_since() {
        let t: Timestamp = "2026-12-03T07:00:00Z".parse().unwrap();
        let err = StatusError::new("R", "m").with_since(t);
        let back: StatusError =
            serde_json::from_str(&serde_json::to_string(&err).unwrap()).unwrap();
        assert_eq!(back, err);
    }

    #[test]
    fn a_missing_since_decodes_as_unknown() {
        let err: StatusError = serde_json::from_str(r#"{"reason":"R","message":"m"}"#).unwrap();
        assert_eq!(err.since, None);
    }
}
