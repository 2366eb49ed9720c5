//! The rotating log: files by UTC day (and size), switched between batches without losing,
//! duplicating or reordering an acknowledged event.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestClock;
use daemonkit_eventlog::{Error, RotatingLog, Rotation, list_event_files, read_events};

fn names(dir: &std::path::Path) -> Vec<String> {
    list_event_files(dir, "events")
        .unwrap()
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Every message of the set, file by file in set order, each file read strictly.
fn set_messages(dir: &std::path::Path) -> Vec<Vec<String>> {
    list_event_files(dir, "events")
        .unwrap()
        .iter()
        .map(|f| common::messages(&f.path))
        .collect()
}

/// The length of `event`'s line, as a log writes it.
fn line_len(event: &daemonkit_eventlog::Event) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let log = daemonkit_eventlog::EventLog::create_operation(dir.path(), "", "op").unwrap();
    log.log(event).unwrap();
    fs::metadata(log.path()).unwrap().len()
}

#[test]
fn sixteen_writers_crossing_midnight_twice_lose_duplicate_and_reorder_nothing() {
    const WRITERS: usize = 16;
    const EVENTS: usize = 300;
    let dir = common::fast_tempdir();
    let clock = TestClock::at("2026-12-01T23:59:59Z");
    let log = RotatingLog::open(
        dir.path(),
        Rotation::daily("events").unwrap().clock(clock.clock()),
    )
    .unwrap();
    let acked = AtomicUsize::new(0);

    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (log, acked) = (&log, &acked);
            s.spawn(move || {
                for i in 0..EVENTS {
                    log.log(&common::event(format!("{w}-{i}"))).unwrap();
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Midnight, twice, while every writer is mid-stream.
        let total = WRITERS * EVENTS;
        while acked.load(Ordering::SeqCst) < total / 3 {
            std::thread::yield_now();
        }
        clock.set("2026-12-02T00:00:00Z");
        while acked.load(Ordering::SeqCst) < 2 * total / 3 {
            std::thread::yield_now();
        }
        clock.set("2026-12-03T00:00:00.5Z");
    });

    assert_eq!(
        names(dir.path()),
        [
            "events-20261201.jsonl",
            "events-20261202.jsonl",
            "events-20261203.jsonl"
        ]
    );
    assert_eq!(
        log.current_path(),
        std::path::absolute(dir.path())
            .unwrap()
            .join("events-20261203.jsonl")
    );
    let files = set_messages(dir.path());
    assert!(files.iter().all(|f| !f.is_empty()), "each day got events");

    // Exactly once each, and each writer's events in the order it logged them across files.
    let mut next: HashMap<usize, usize> = HashMap::new();
    for message in files.iter().flatten() {
        let (w, i) = message.split_once('-').unwrap();
        let (w, i): (usize, usize) = (w.parse().unwrap(), i.parse().unwrap());
        let expected = next.entry(w).or_insert(0);
        assert_eq!(
            i, *expected,
            "writer {w}: event {i} out of order or duplicated"
        );
        *expected += 1;
    }
    assert_eq!(next.len(), WRITERS);
    assert!(
        next.values().all(|&n| n == EVENTS),
        "every event is in a file: {next:?}"
    );
}

#[test]
fn reopening_continues_todays_file_and_repairs_its_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-12-03T08:00:00Z");
    let rotation = || Rotation::daily("events").unwrap().clock(clock.clock());

    let log = RotatingLog::open(dir.path(), rotation()).unwrap();
    log.log(&common::event("before restart")).unwrap();
    let path = log.current_path();
    drop(log);
    // The previous run died mid-write.
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(br#"{"ts":"2026-12"#)
        .unwrap();

    clock.set("2026-12-03T09:00:00Z");
    let log = RotatingLog::open(dir.path(), rotation()).unwrap();
    assert_eq!(log.current_path(), path, "the same day continues its file");
    let repair = log.torn_tail_repair().expect("the torn tail was cut");
    assert_eq!(repair.cut_len, 14);
    log.log(&common::event("after restart")).unwrap();
    assert_eq!(common::messages(&path), ["before restart", "after restart"]);
    assert_eq!(names(dir.path()), ["events-20261203.jsonl"]);
}

#[test]
fn a_size_limit_starts_numbered_files_of_the_day_and_reopening_continues_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-12-03T08:00:00Z");
    let one_line = line_len(&common::event("0"));
    // Room for two lines per file.
    let limit = NonZeroU64::new(2 * one_line + 10).unwrap();
    let rotation = || {
        Rotation::daily("events")
            .unwrap()
            .max_bytes(limit)
            .clock(clock.clock())
    };
    let log = RotatingLog::open(dir.path(), rotation()).unwrap();
    for i in 0..5 {
        log.log(&common::event(i.to_string())).unwrap();
    }
    drop(log);
    assert_eq!(
        names(dir.path()),
        [
            "events-20261203.jsonl",
            "events-20261203-1.jsonl",
            "events-20261203-2.jsonl"
        ]
    );
    assert_eq!(
        set_messages(dir.path()),
        [vec!["0", "1"], vec!["2", "3"], vec!["4"]]
    );
    for file in list_event_files(dir.path(), "events").unwrap() {
        assert!(fs::metadata(&file.path).unwrap().len() <= limit.get());
    }

    // A restart continues `-2`, which has room for one more line, then moves on to `-3`.
    let log = RotatingLog::open(dir.path(), rotation()).unwrap();
    assert!(log.current_path().ends_with("events-20261203-2.jsonl"));
    log.log(&common::event("5")).unwrap();
    log.log(&common::event("6")).unwrap();
    assert_eq!(
        set_messages(dir.path()).concat(),
        ["0", "1", "2", "3", "4", "5", "6"]
    );
    assert!(log.current_path().ends_with("events-20261203-3.jsonl"));
}

#[test]
fn a_clock_that_goes_back_keeps_writing_the_current_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-12-03T00:00:01Z");
    let log = RotatingLog::open(
        dir.path(),
        Rotation::daily("events").unwrap().clock(clock.clock()),
    )
    .unwrap();
    log.log(&common::event("after midnight")).unwrap();
    clock.set("2026-12-02T23:59:59Z"); // an NTP step back
    log.log(&common::event("clock stepped back")).unwrap();
    assert_eq!(names(dir.path()), ["events-20261203.jsonl"]);
    assert_eq!(
        set_messages(dir.path()),
        [vec!["after midnight", "clock stepped back"]]
    );
}

#[test]
fn a_second_writer_of_the_same_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-12-03T08:00:00Z");
    let rotation = || Rotation::daily("events").unwrap().clock(clock.clock());
    let _first = RotatingLog::open(dir.path(), rotation()).unwrap();
    match RotatingLog::open(dir.path(), rotation()) {
        Err(Error::Locked { path }) => assert!(path.ends_with("events-20261203.jsonl")),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn listing_follows_the_naming_rule_only() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "events-20261203-10.jsonl",
        "events-20261203-2.jsonl",
        "events-20261203.jsonl",
        "events-20261130.jsonl",
        "events-20261203-02.jsonl", // leading zero: not the rule's
        "events-20261203.jsonl.torn-20261203T080000.000000000Z", // a side file
        "events-2026120.jsonl",
        "events-20261332.jsonl", // no such date
        "other-20261203.jsonl",
    ] {
        fs::write(dir.path().join(name), "").unwrap();
    }
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("events-20261204.jsonl")).unwrap();
    assert_eq!(
        names(dir.path()),
        [
            "events-20261130.jsonl",
            "events-20261203.jsonl",
            "events-20261203-2.jsonl",
            "events-20261203-10.jsonl"
        ]
    );
}

#[test]
fn a_symlink_planted_at_the_next_days_name_fails_that_batch_and_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = tempfile::NamedTempFile::new().unwrap();
    let clock = TestClock::at("2026-12-03T23:00:00Z");
    let log = RotatingLog::open(
        dir.path(),
        Rotation::daily("events").unwrap().clock(clock.clock()),
    )
    .unwrap();
    log.log(&common::event("today")).unwrap();
    std::os::unix::fs::symlink(target.path(), dir.path().join("events-20261204.jsonl")).unwrap();
    clock.set("2026-12-04T00:00:00Z");
    assert!(matches!(
        log.log(&common::event("tomorrow")),
        Err(Error::Io { .. })
    ));
    assert_eq!(
        fs::read(target.path()).unwrap(),
        b"",
        "the link target is untouched"
    );
    // Once the link is gone, the next batch rotates.
    fs::remove_file(dir.path().join("events-20261204.jsonl")).unwrap();
    log.log(&common::event("tomorrow, again")).unwrap();
    assert_eq!(
        set_messages(dir.path()),
        [vec!["today"], vec!["tomorrow, again"]]
    );
    let _ = read_events(log.current_path()).unwrap();
}
