//! The line format: byte-compatible with the Go daemonkit in both directions.

mod common;

use std::fs;
use std::path::Path;

use daemonkit_eventlog::{Error, Event, EventLog, Field, Level, read_events};
use jiff::Timestamp;

const GO_SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/go-eventlog-sample.jsonl"
);

fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid timestamp literal")
}

/// The events the Go implementation wrote into the sample, field by field.
fn go_sample_events() -> Vec<Event> {
    vec![
        Event {
            ts: ts("2026-06-19T12:00:00Z"),
            level: Level::Info,
            reason: "UpgradeStarted".into(),
            msg: "begin upgrade to v0.75.0".into(),
            operation_id: "upgrade-20260619T120000Z".into(),
            node_id: "node-3".into(),
            metadata: Default::default(),
        },
        Event {
            ts: ts("2026-06-19T12:04:11.5Z"),
            level: Level::Error,
            reason: "UpgradeFailed".into(),
            msg: "disk full on /var/lib/app — résumé: ✗\n2nd line\ttab".into(),
            operation_id: "upgrade-20260619T120000Z".into(),
            node_id: "node-3".into(),
            metadata: Default::default(),
        },
    ]
}

/// Logs `events` into a fresh per-operation log and returns the file's bytes.
fn written(events: &[Event]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create_operation(dir.path(), "", "op").unwrap();
    for e in events {
        log.log(e).unwrap();
    }
    fs::read(log.path()).unwrap()
}

fn written_line(event: &Event) -> String {
    String::from_utf8(written(std::slice::from_ref(event))).unwrap()
}

/// The sample's first event (INFO at 2026-06-19T12:00:00Z) with another `msg`.
fn with_msg(msg: &str) -> Event {
    let mut event = go_sample_events().remove(0);
    event.msg = msg.into();
    event
}

#[test]
fn go_written_lines_parse_into_the_same_events() {
    let read: Vec<Event> = read_events(GO_SAMPLE)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, go_sample_events());
}

#[test]
fn written_lines_equal_the_go_sample_byte_for_byte() {
    let go = fs::read(GO_SAMPLE).unwrap();
    assert_eq!(
        String::from_utf8(written(&go_sample_events())).unwrap(),
        String::from_utf8(go).unwrap()
    );
}

#[test]
fn ts_is_written_as_go_rfc3339nano_in_utc() {
    let cases = [
        ("2026-06-19T12:00:00Z", "2026-06-19T12:00:00Z"),
        ("2026-06-19T12:00:00.5Z", "2026-06-19T12:00:00.5Z"),
        ("2026-06-19T12:00:00.120Z", "2026-06-19T12:00:00.12Z"),
        (
            "2026-06-19T12:00:00.000000001Z",
            "2026-06-19T12:00:00.000000001Z",
        ),
        (
            "2026-06-19T12:00:00.123456789Z",
            "2026-06-19T12:00:00.123456789Z",
        ),
        ("2026-06-19T14:30:00.25+02:00", "2026-06-19T12:30:00.25Z"),
        ("0005-01-02T03:04:05Z", "0005-01-02T03:04:05Z"),
        (
            "9999-12-30T12:00:00.999999999Z",
            "9999-12-30T12:00:00.999999999Z",
        ),
    ];
    for (given, expected) in cases {
        let line = written_line(&Event {
            ts: ts(given),
            ..go_sample_events().remove(0)
        });
        let prefix = format!("{{\"ts\":\"{expected}\",\"level\":\"INFO\",");
        assert!(line.starts_with(&prefix), "{given}: got {line}");
    }
}

#[test]
fn html_characters_and_line_separators_are_escaped_as_go_escapes_them() {
    let line = written_line(&with_msg("a<b>&c\u{2028}d\u{2029}e"));
    assert_eq!(
        line,
        concat!(
            r#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"UpgradeStarted","#,
            r#""msg":"a\u003cb\u003e\u0026c\u2028d\u2029e","#,
            r#""operationId":"upgrade-20260619T120000Z","nodeId":"node-3"}"#,
            "\n"
        )
    );
}

#[test]
fn control_characters_quotes_and_backslashes_are_escaped_as_go_escapes_them() {
    // Go 1.22+: \b \f \n \r \t short forms, other controls as lowercase \u00xx, DEL unescaped.
    let line = written_line(&with_msg("\u{1}\u{8}\u{c}\n\r\t\u{1f}\"\\/\u{7f}"));
    assert!(
        line.contains(r#""msg":"\u0001\b\f\n\r\t\u001f\"\\/"#.to_owned().as_str()),
        "{line}"
    );
    assert!(line.contains("/\u{7f}\","), "{line}");
}

#[test]
fn go_escape_sequences_read_back_into_the_original_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("go.jsonl");
    fs::write(
        &path,
        concat!(
            r#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"R","#,
            r#""msg":"a\u003cb\u003e\u0026c\u2028d\u2029e \u00e9\ud83d\ude00","operationId":"op","nodeId":"n"}"#,
            "\n"
        ),
    )
    .unwrap();
    assert_eq!(common::messages(&path), ["a<b>&c\u{2028}d\u{2029}e é😀"]);
}

#[test]
fn events_round_trip_through_a_file() {
    let events = vec![
        with_msg("plain"),
        with_msg("<script>&amp;</script> \u{2028} 😀 \0 \u{7f}"),
        Event {
            ts: ts("2026-06-19T12:00:00.000001Z"),
            level: Level::Error,
            ..with_msg("x")
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create_operation(dir.path(), "", "op").unwrap();
    for e in &events {
        log.log(e).unwrap();
    }
    let read: Vec<Event> = read_events(log.path())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, events);
}

#[test]
fn log_refuses_an_event_with_empty_fields_naming_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create_operation(dir.path(), "", "op").unwrap();
    let mut event = common::event("m");
    event.reason.clear();
    event.node_id.clear();
    match log.log(&event) {
        Err(Error::MissingFields { fields }) => assert_eq!(fields, [Field::Reason, Field::NodeId]),
        other => panic!("expected MissingFields, got {other:?}"),
    }
    assert_eq!(fs::read(log.path()).unwrap(), b"", "nothing is written");
}

#[test]
fn log_refuses_every_field_empty_listing_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create_operation(dir.path(), "", "op").unwrap();
    let event = Event {
        ts: ts("0001-01-01T00:00:00Z"), // Go's zero time counts as missing, as in Go
        level: Level::Info,
        reason: String::new(),
        msg: String::new(),
        operation_id: String::new(),
        node_id: String::new(),
        metadata: Default::default(),
    };
    let err = log.log(&event).unwrap_err();
    assert!(
        matches!(&err, Error::MissingFields { fields } if fields == &[Field::Ts, Field::Reason, Field::Msg, Field::OperationId, Field::NodeId]),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("ts, reason, msg, operationId, nodeId"),
        "{err}"
    );
}

#[test]
fn log_refuses_a_timestamp_before_year_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create_operation(dir.path(), "", "op").unwrap();
    let event = Event {
        ts: ts("-000001-06-01T00:00:00Z"),
        ..common::event("m")
    };
    assert!(matches!(
        log.log(&event),
        Err(Error::TimestampOutOfRange { .. })
    ));
    assert_eq!(fs::read(log.path()).unwrap(), b"");
}

fn malformed_lines(path: &Path) -> Vec<(u64, String)> {
    read_events(path)
        .unwrap()
        .filter_map(|r| match r {
            Ok(_) => None,
            Err(Error::MalformedLine { line, problem, .. }) => Some((line, problem)),
            Err(e) => panic!("unexpected error {e}"),
        })
        .collect()
}

#[test]
fn reader_reports_each_malformed_line_with_its_number_and_reads_on() {
    let good = r#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"R","msg":"m","operationId":"op","nodeId":"n"}"#;
    let lines = [
        good,
        "not json",
        r#"{"ts":"2026-06-19T12:00:00Z","level":"DEBUG","reason":"R","msg":"m","operationId":"op","nodeId":"n"}"#,
        r#"{"ts":"2026-06-19 12:00:00Z","level":"INFO","reason":"R","msg":"m","operationId":"op","nodeId":"n"}"#,
        r#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"R","msg":"m","operationId":"op","nodeId":"n","extra":1}"#,
        "",
        good,
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    fs::write(&path, format!("{}\n{{\"ts\":\"20", lines.join("\n"))).unwrap();

    let malformed = malformed_lines(&path);
    let numbers: Vec<u64> = malformed.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [2, 3, 4, 5, 6, 8]);
    assert!(malformed[1].1.contains("\"DEBUG\""), "{:?}", malformed[1]);
    assert!(malformed[2].1.contains("RFC 3339"), "{:?}", malformed[2]);
    assert!(malformed[3].1.contains("extra"), "{:?}", malformed[3]);
    assert!(malformed[4].1.contains("empty line"), "{:?}", malformed[4]);
    assert!(
        malformed[5].1.contains("incomplete last line"),
        "{:?}",
        malformed[5]
    );
    assert_eq!(read_events(&path).unwrap().filter(Result::is_ok).count(), 2);
}

#[test]
fn reader_names_every_missing_field_of_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    fs::write(
        &path,
        "{\"ts\":\"2026-06-19T12:00:00Z\",\"level\":\"INFO\",\"reason\":\"\",\"nodeId\":null}\n",
    )
    .unwrap();
    let malformed = malformed_lines(&path);
    assert_eq!(malformed.len(), 1);
    assert!(
        malformed[0].1.contains("reason, msg, operationId, nodeId"),
        "{:?}",
        malformed[0]
    );
}

#[test]
fn reading_a_missing_file_names_it() {
    let err = read_events("/nonexistent/dir/events.jsonl").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/dir/events.jsonl"),
        "{err}"
    );
}
