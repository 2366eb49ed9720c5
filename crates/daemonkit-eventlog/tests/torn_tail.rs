//! Reopening an append log whose last line was cut short by a crash.

mod common;

use std::fs;

use daemonkit_eventlog::EventLog;

const TORN: &[u8] = br#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"Te"#;

#[test]
fn reopening_cuts_a_torn_tail_back_to_the_last_complete_line() {
    let dir = tempfile::tempdir().unwrap();
    let complete = common::log_then_tear(dir.path(), 3, TORN);

    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    let repair = log.torn_tail_repair().expect("the repair is reported");
    assert_eq!(repair.kept_len, complete);
    assert_eq!(repair.cut_len, TORN.len() as u64);
    assert_eq!(fs::metadata(log.path()).unwrap().len(), complete);
    assert_eq!(
        common::messages(log.path()),
        ["event 0", "event 1", "event 2"]
    );
}

#[test]
fn the_cut_bytes_are_kept_in_a_side_file_next_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    common::log_then_tear(dir.path(), 2, TORN);

    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    let side = &log.torn_tail_repair().unwrap().side_file;
    assert_eq!(side.parent(), log.path().parent());
    let side_name = side.file_name().unwrap().to_str().unwrap();
    assert!(side_name.starts_with("events.jsonl.torn-"), "{side_name}");
    assert_eq!(fs::read(side).unwrap(), TORN);
}

#[test]
fn appending_after_a_repair_yields_only_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    common::log_then_tear(dir.path(), 2, TORN);

    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    log.log(&common::event("after repair")).unwrap();
    assert_eq!(
        common::messages(log.path()),
        ["event 0", "event 1", "after repair"]
    );
}

#[test]
fn a_file_holding_only_a_partial_line_is_cut_to_empty() {
    let dir = tempfile::tempdir().unwrap();
    common::log_then_tear(dir.path(), 0, TORN);

    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    let repair = log.torn_tail_repair().unwrap();
    assert_eq!((repair.kept_len, repair.cut_len), (0, TORN.len() as u64));
    assert_eq!(fs::metadata(log.path()).unwrap().len(), 0);
}

#[test]
fn a_file_ending_in_a_newline_needs_no_repair() {
    let dir = tempfile::tempdir().unwrap();
    common::log_then_tear(dir.path(), 2, b"");

    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    assert_eq!(log.torn_tail_repair(), None);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no side file");
}
