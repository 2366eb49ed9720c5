//! The Go daemonkit's later wire format: the `WARN` level (v0.2.0) and the optional `metadata`
//! object (v0.4.0, `map[string]string` with `omitempty`), read and written byte for byte.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use daemonkit_eventlog::{Error, Event, EventLog, Level, read_events};

const GO_V04_SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/go-eventlog-v0.4-sample.jsonl"
);

fn event(ts: &str, level: Level, reason: &str, msg: &str, metadata: &[(&str, &str)]) -> Event {
    let mut event = Event::new(
        level,
        reason,
        msg,
        "upgrade-20260415T143000Z-v0.75.0",
        "0.0.3",
    );
    event.ts = ts.parse().unwrap();
    event.metadata = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<BTreeMap<_, _>>();
    event
}

/// The events of the v0.4 sample, field by field.
fn go_v04_events() -> Vec<Event> {
    vec![
        event(
            "2026-04-15T14:30:00Z",
            Level::Warn,
            "FileSkipped",
            "optional artifact skipped",
            &[],
        ),
        event(
            "2026-04-15T14:30:00Z",
            Level::Info,
            "UpgradeScheduled",
            "upgrade scheduled",
            &[
                ("scheduled_time", "2026-04-15T15:00:00Z"),
                ("artifact_hash", "sha256:abc123"),
            ],
        ),
        event(
            "2026-04-15T14:30:01.25Z",
            Level::Warn,
            "SafetyCheckBypassed",
            "check <disk-space> bypassed",
            &[
                ("check<1>", "disk-space\n2nd line"),
                ("bypassed_by", "operator & admin"),
                ("Zone", "eu"),
            ],
        ),
        event(
            "2026-04-15T14:30:02Z",
            Level::Error,
            "UpgradeFailed",
            "disk full",
            &[],
        ),
    ]
}

fn written(events: &[Event]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create_operation(dir.path(), "", "op").unwrap();
    for e in events {
        log.log(e).unwrap();
    }
    fs::read(log.path()).unwrap()
}

#[test]
fn go_v04_lines_with_warn_and_metadata_parse_into_the_same_events() {
    let read: Vec<Event> = read_events(GO_V04_SAMPLE)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, go_v04_events());
    assert_eq!(read[2].metadata["check<1>"], "disk-space\n2nd line");
}

#[test]
fn written_warn_and_metadata_lines_equal_the_go_v04_sample_byte_for_byte() {
    // Metadata keys in Go's order (sorted by bytes: "Zone" < "bypassed_by" < "check<1>"),
    // escaped as Go escapes them, keys included; no `metadata` key when there is none.
    assert_eq!(
        String::from_utf8(written(&go_v04_events())).unwrap(),
        fs::read_to_string(GO_V04_SAMPLE).unwrap()
    );
}

#[test]
fn the_v01_sample_still_reads_and_writes_identically() {
    // Lines without the new fields are exactly what they were: metadata empty, key absent.
    let v01 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/go-eventlog-sample.jsonl"
    );
    let read: Vec<Event> = read_events(v01).unwrap().collect::<Result<_, _>>().unwrap();
    assert!(read.iter().all(|e| e.metadata.is_empty()));
    assert_eq!(written(&read), fs::read(v01).unwrap());
}

#[test]
fn an_empty_metadata_map_is_omitted_as_go_omits_it() {
    let line = String::from_utf8(written(&[common::event("m")])).unwrap();
    assert!(!line.contains("metadata"), "{line}");
    assert!(line.ends_with("\"nodeId\":\"node-3\"}\n"), "{line}");
}

fn malformed(path: &Path) -> Vec<String> {
    read_events(path)
        .unwrap()
        .filter_map(|e| match e {
            Err(Error::MalformedLine { problem, .. }) => Some(problem),
            Err(other) => panic!("{other}"),
            Ok(_) => None,
        })
        .collect()
}

#[test]
fn reader_accepts_null_metadata_and_refuses_metadata_go_cannot_write() {
    let head = r#"{"ts":"2026-04-15T14:30:00Z","level":"WARN","reason":"R","msg":"m","operationId":"op","nodeId":"n""#;
    let lines = [
        format!("{head},\"metadata\":null}}"),
        format!("{head},\"metadata\":{{}}}}"),
        format!("{head},\"metadata\":{{\"k\":1}}}}"),
        format!("{head},\"metadata\":[\"k\"]}}"),
        format!("{head},\"metadata\":{{\"k\":\"v\"}},\"extra\":\"x\"}}"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    fs::write(&path, lines.join("\n") + "\n").unwrap();

    let events: Vec<Event> = read_events(&path).unwrap().filter_map(Result::ok).collect();
    assert_eq!(events.len(), 2, "null and {{}} both read as no metadata");
    assert!(
        events
            .iter()
            .all(|e| e.metadata.is_empty() && e.level == Level::Warn)
    );
    let problems = malformed(&path);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[2].contains("extra"), "{problems:?}");
}
