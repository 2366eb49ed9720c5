//! Reading a growing file incrementally: `Events::offset` and `read_events_from`, as a
//! `tail --follow` over a rotating set uses them.

mod common;

use std::fs;
use std::io::Write;

use daemonkit_eventlog::{EventLog, read_events, read_events_from};

#[test]
fn offset_stops_before_a_torn_tail_and_resuming_reads_only_the_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    log.log(&common::event("one")).unwrap();
    log.log(&common::event("two")).unwrap();
    let complete = fs::metadata(log.path()).unwrap().len();
    drop(log);
    let torn = br#"{"ts":"2026"#;
    fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("events.jsonl"))
        .unwrap()
        .write_all(torn)
        .unwrap();

    let path = dir.path().join("events.jsonl");
    let mut events = read_events(&path).unwrap();
    let results: Vec<_> = events.by_ref().collect();
    assert_eq!(results.len(), 3, "two events and the torn tail");
    assert!(results[2].is_err());
    assert_eq!(events.offset(), complete, "the torn tail is not consumed");

    // The writer reopens (cutting the tail) and logs more; a reader resumes where it was.
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    log.log(&common::event("three")).unwrap();
    let mut resumed = read_events_from(&path, complete).unwrap();
    let new: Vec<String> = resumed.by_ref().map(|e| e.unwrap().msg).collect();
    assert_eq!(new, ["three"]);
    assert_eq!(resumed.offset(), fs::metadata(&path).unwrap().len());
}
