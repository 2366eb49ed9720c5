//! The event type and its one-line JSON form, byte-compatible with the Go daemonkit.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::Error;

// ===== impl Level =====

/// How a milestone ended: it happened ([`Level::Info`]), it happened in a degraded or
/// policy-notable way ([`Level::Warn`]), or it failed terminally ([`Level::Error`]).
///
/// Written as `"INFO"`, `"WARN"` or `"ERROR"`, the three levels of the Go daemonkit (`WARN` since
/// its v0.2.0). `WARN` is for a milestone that completed with a notable compromise — an optional
/// artifact skipped, a safety check deliberately bypassed — not for retries, back-off or
/// transient trouble: those belong in operational logging, not in the audit trail. There is
/// deliberately no debug level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// The milestone happened. Written as `"INFO"`.
    Info,
    /// The milestone happened in a degraded or policy-notable way. Written as `"WARN"`.
    Warn,
    /// The milestone failed terminally. Written as `"ERROR"`.
    Error,
}

impl Level {
    /// The level as written in the file: `"INFO"`, `"WARN"` or `"ERROR"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        match s {
            "INFO" => Some(Level::Info),
            "WARN" => Some(Level::Warn),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ===== impl Field =====

/// One of an event's fields, as named by [`Error::MissingFields`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `ts`, the time of the milestone.
    Ts,
    /// `level`.
    Level,
    /// `reason`, the milestone's stable machine-readable name.
    Reason,
    /// `msg`, the human-readable description.
    Msg,
    /// `operationId`.
    OperationId,
    /// `nodeId`.
    NodeId,
}

impl Field {
    /// The field's key in the file, e.g. `"operationId"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Ts => "ts",
            Field::Level => "level",
            Field::Reason => "reason",
            Field::Msg => "msg",
            Field::OperationId => "operationId",
            Field::NodeId => "nodeId",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ===== impl Event =====

/// A lifecycle milestone: one line of an event log.
///
/// Every field but [`metadata`](Event::metadata) is required; [`EventLog::log`](crate::EventLog::log)
/// rejects an event with empty strings, naming every empty field (see [`Error::MissingFields`]).
/// The line it becomes is exactly the one the Go daemonkit writes for the same values:
///
/// ```text
/// {"ts":"2026-06-19T12:00:00.5Z","level":"INFO","reason":"UpgradeStarted","msg":"begin upgrade to v0.75.0","operationId":"upgrade-20260619T120000Z","nodeId":"node-3"}
/// {"ts":"2026-06-19T12:00:01Z","level":"WARN","reason":"FileSkipped","msg":"optional artifact skipped","operationId":"upgrade-20260619T120000Z","nodeId":"node-3","metadata":{"artifact":"docs.tar","why":"not found"}}
/// ```
///
/// * keys in this order; `ts` in UTC as RFC 3339 with nanosecond precision, trailing zeros of the
///   fraction dropped, and a `Z` suffix (Go's `time.RFC3339Nano`);
/// * `metadata` (Go's `map[string]string` with `omitempty`, since its v0.4.0) last, and only when
///   it holds at least one pair; its keys sorted by their bytes, as Go sorts map keys;
/// * strings (metadata keys included) escaped as Go's `encoding/json` escapes them, including
///   `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`, `\u003e`, `\u0026`, `\u2028` and `\u2029`, so
///   both implementations write identical bytes for identical events.
///
/// # Examples
///
/// ```
/// use daemonkit_eventlog::{Event, Level};
///
/// let event = Event::new(Level::Info, "UpgradeStarted", "begin upgrade to v0.75.0", "upgrade-1", "node-3");
/// assert_eq!(event.level.as_str(), "INFO");
/// assert!(event.ts <= jiff::Timestamp::now());
/// assert!(event.metadata.is_empty());
///
/// let skipped = Event::new(Level::Warn, "FileSkipped", "optional artifact skipped", "upgrade-1", "node-3")
///     .with_metadata("artifact", "docs.tar");
/// assert_eq!(skipped.metadata["artifact"], "docs.tar");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When the milestone happened. Written in UTC.
    ///
    /// Go's zero time, `0001-01-01T00:00:00Z`, counts as missing, as it does in the Go
    /// implementation; years before 0000 cannot be written (see [`Error::TimestampOutOfRange`]).
    pub ts: Timestamp,
    /// Whether the milestone happened or failed.
    pub level: Level,
    /// The milestone's stable, machine-readable name, e.g. `"UpgradeStarted"`.
    pub reason: String,
    /// A human-readable description.
    pub msg: String,
    /// The operation the milestone belongs to, e.g. `"upgrade-20260619T120000Z"`.
    pub operation_id: String,
    /// The node it happened on.
    pub node_id: String,
    /// Optional key-value pairs that do not fit the fixed fields (e.g. `scheduled_time`,
    /// `artifact_hash`); written as the `metadata` object only when not empty.
    pub metadata: BTreeMap<String, String>,
}

impl Event {
    /// An event stamped with the current time.
    pub fn new(
        level: Level,
        reason: impl Into<String>,
        msg: impl Into<String>,
        operation_id: impl Into<String>,
        node_id: impl Into<String>,
    ) -> Event {
        Event {
            ts: Timestamp::now(),
            level,
            reason: reason.into(),
            msg: msg.into(),
            operation_id: operation_id.into(),
            node_id: node_id.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// The event with one more metadata pair (replacing an earlier value of the same key).
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Event {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Appends the event's line, newline included, to `out`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingFields`] or [`Error::TimestampOutOfRange`]; `out` is unchanged then.
    pub(crate) fn encode_line(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let mut missing = Vec::new();
        if self.ts == go_zero_time() {
            missing.push(Field::Ts);
        }
        for (field, value) in [
            (Field::Reason, &self.reason),
            (Field::Msg, &self.msg),
            (Field::OperationId, &self.operation_id),
            (Field::NodeId, &self.node_id),
        ] {
            if value.is_empty() {
                missing.push(field);
            }
        }
        if !missing.is_empty() {
            return Err(Error::MissingFields { fields: missing });
        }
        let ts = format_ts(self.ts).ok_or(Error::TimestampOutOfRange { ts: self.ts })?;
        let wire = WireEvent {
            ts: &ts,
            level: self.level.as_str(),
            reason: &self.reason,
            msg: &self.msg,
            operation_id: &self.operation_id,
            node_id: &self.node_id,
            metadata: &self.metadata,
        };
        let mut serializer = serde_json::Serializer::with_formatter(&mut *out, GoFormatter);
        // Serialising a struct of strings into a Vec cannot fail: the only errors serde_json
        // reports are the writer's (a Vec's never fails) and non-string map keys (there are none).
        wire.serialize(&mut serializer)
            .expect("serialising strings into a Vec is infallible");
        out.push(b'\n');
        Ok(())
    }

    /// Parses one line (without its newline) as written by this crate or the Go implementation.
    ///
    /// Returns a description of the problem for [`Error::MalformedLine`].
    pub(crate) fn parse_line(line: &[u8]) -> Result<Event, String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err("empty line".to_owned());
        }
        let raw: RawEvent = serde_json::from_slice(line).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => format!("not a valid event: {e}"),
            _ => format!("not valid JSON: {e}"),
        })?;
        let mut missing = Vec::new();
        let mut take = |field: Field, value: Option<String>| match value {
            Some(v) if !v.is_empty() => v,
            _ => {
                missing.push(field);
                String::new()
            }
        };
        let ts = take(Field::Ts, raw.ts);
        let level = take(Field::Level, raw.level);
        let reason = take(Field::Reason, raw.reason);
        let msg = take(Field::Msg, raw.msg);
        let operation_id = take(Field::OperationId, raw.operation_id);
        let node_id = take(Field::NodeId, raw.node_id);
        if !missing.is_empty() {
            return Err(Error::MissingFields { fields: missing }.to_string());
        }
        let ts = parse_ts(&ts)?;
        if ts == go_zero_time() {
            return Err(Error::MissingFields {
                fields: vec![Field::Ts],
            }
            .to_string());
        }
        let level = Level::parse(&level).ok_or_else(|| {
            format!("level {level:?} is not one of \"INFO\", \"WARN\", \"ERROR\"")
        })?;
        Ok(Event {
            ts,
            level,
            reason,
            msg,
            operation_id,
            node_id,
            metadata: raw.metadata.unwrap_or_default(),
        })
    }
}

/// The serialised shape: field order here is the key order on the wire.
#[derive(Serialize)]
struct WireEvent<'a> {
    ts: &'a str,
    level: &'a str,
    reason: &'a str,
    msg: &'a str,
    #[serde(rename = "operationId")]
    operation_id: &'a str,
    #[serde(rename = "nodeId")]
    node_id: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: &'a BTreeMap<String, String>,
}

/// What a line may hold; `None` and `""` both count as missing so every missing field can be named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    ts: Option<String>,
    level: Option<String>,
    reason: Option<String>,
    msg: Option<String>,
    #[serde(rename = "operationId")]
    operation_id: Option<String>,
    #[serde(rename = "nodeId")]
    node_id: Option<String>,
    /// Go writes `map[string]string`; `null` (a nil map marshalled without `omitempty`) reads as
    /// empty.
    metadata: Option<BTreeMap<String, String>>,
}

/// Go's `time.Time{}`, which Go's `Event.validate` treats as a missing `Ts`.
fn go_zero_time() -> Timestamp {
    // -62135596800 s is 0001-01-01T00:00:00Z, well inside jiff's range, so this cannot fail.
    Timestamp::from_second(-62_135_596_800).expect("0001-01-01T00:00:00Z is a valid Timestamp")
}

/// Formats `ts` as Go's `time.RFC3339Nano` does for a UTC time: `2006-01-02T15:04:05.999999999Z`,
/// trailing zeros of the fraction (and the dot, if nothing remains) dropped.
///
/// `None` for years before 0000, which RFC 3339's four-digit year cannot hold (Go's
/// `Time.MarshalJSON` refuses them too). jiff's own `Display` is not used so the exact shape does
/// not depend on its formatting choices.
pub(crate) fn format_ts(ts: Timestamp) -> Option<String> {
    let dt = TimeZone::UTC.to_datetime(ts);
    if dt.year() < 0 {
        return None;
    }
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let nanos = dt.subsec_nanosecond();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        s.push('.');
        s.push_str(fraction.trim_end_matches('0'));
    }
    s.push('Z');
    Some(s)
}

/// Parses an RFC 3339 timestamp the way Go's `time.Time.UnmarshalJSON` accepts it.
///
/// jiff's parser accepts the wider Temporal/ISO 8601 grammar (a space for `T`, no seconds,
/// bracketed time zones …) that Go rejects, so the shape is checked by hand first, and jiff
/// then checks the values (month 1–12, day within month, …).
fn parse_ts(s: &str) -> Result<Timestamp, String> {
    let problem =
        || format!("ts {s:?} is not an RFC 3339 timestamp such as \"2026-06-19T12:00:00.5Z\"");
    if !is_rfc3339_shape(s.as_bytes()) {
        return Err(problem());
    }
    s.parse::<Timestamp>()
        .map_err(|e| format!("{}: {e}", problem()))
}

fn is_rfc3339_shape(b: &[u8]) -> bool {
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19))
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let n = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &after_dot[n..];
    }
    match rest {
        b"Z" => true,
        [sign, h1, h2, b':', m1, m2] => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

// ===== impl GoFormatter =====

/// serde_json's compact formatter plus the escapes Go's `encoding/json` adds by default.
///
/// serde_json already escapes exactly as Go 1.22+ does for `"`, `\` and control characters
/// (`\b \f \n \r \t`, otherwise lowercase `\u00XX`); Go additionally escapes `<`, `>`, `&`
/// (HTML safety) and U+2028, U+2029 (JavaScript line terminators). Those characters reach the
/// formatter only inside unescaped fragments, so escaping them here is complete.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}
