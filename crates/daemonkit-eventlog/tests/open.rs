//! Opening logs: names, truncate vs append, modes, one writer per file.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use daemonkit_eventlog::{CONSENSUS_PREFIX, Error, EventLog, NameProblem, Op};

#[test]
fn operation_log_is_named_prefix_operation_id_jsonl_at_an_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::create_operation(dir.path(), CONSENSUS_PREFIX, "upgrade-1").unwrap();
    assert!(log.path().is_absolute());
    assert_eq!(log.path(), dir.path().join("consensus-upgrade-1.jsonl"));
    assert!(log.path().exists(), "the file is created on open");

    let custom = EventLog::create_operation(dir.path(), "ops-", "upgrade-1").unwrap();
    assert_eq!(custom.path(), dir.path().join("ops-upgrade-1.jsonl"));
}

#[test]
fn operation_log_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = EventLog::create_operation(dir.path(), CONSENSUS_PREFIX, "op").unwrap();
    first.log(&common::event("first run")).unwrap();
    drop(first);

    let second = EventLog::create_operation(dir.path(), CONSENSUS_PREFIX, "op").unwrap();
    assert_eq!(common::messages(second.path()), Vec::<String>::new());
    second.log(&common::event("second run")).unwrap();
    assert_eq!(common::messages(second.path()), ["second run"]);
}

#[test]
fn append_log_keeps_growing_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    for run in 0..3 {
        let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
        assert_eq!(log.path(), dir.path().join("events.jsonl"));
        log.log(&common::event(format!("run {run}"))).unwrap();
    }
    let path = dir.path().join("events.jsonl");
    assert_eq!(common::messages(&path), ["run 0", "run 1", "run 2"]);
}

const UNSAFE_NAMES: [(&str, NameProblem); 8] = [
    ("", NameProblem::Empty),
    ("/etc/passwd", NameProblem::Absolute),
    ("sub/dir.jsonl", NameProblem::ContainsSlash),
    ("../escape.jsonl", NameProblem::ContainsSlash),
    ("trailing/", NameProblem::ContainsSlash),
    ("nul\0byte", NameProblem::ContainsNul),
    (".", NameProblem::DotOrDotDot),
    ("..", NameProblem::DotOrDotDot),
];

#[test]
fn append_log_refuses_unsafe_file_names() {
    let dir = tempfile::tempdir().unwrap();
    for (name, expected) in UNSAFE_NAMES {
        match EventLog::open_append(dir.path(), name) {
            Err(Error::InvalidName {
                role,
                problem,
                name: got,
            }) => {
                assert_eq!((role, problem, got.as_str()), ("file name", expected, name));
            }
            other => panic!("{name:?}: expected InvalidName, got {other:?}"),
        }
    }
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn operation_log_refuses_unsafe_operation_ids_and_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, expected) in UNSAFE_NAMES {
        match EventLog::create_operation(dir.path(), CONSENSUS_PREFIX, name) {
            Err(Error::InvalidName { role, problem, .. }) => {
                assert_eq!((role, problem), ("operation id", expected), "{name:?}");
            }
            other => panic!("{name:?}: expected InvalidName, got {other:?}"),
        }
    }
    for (prefix, expected) in [
        ("../", NameProblem::ContainsSlash),
        ("/tmp/", NameProblem::Absolute),
        ("a\0", NameProblem::ContainsNul),
    ] {
        match EventLog::create_operation(dir.path(), prefix, "op") {
            Err(Error::InvalidName { role, problem, .. }) => {
                assert_eq!((role, problem), ("prefix", expected), "{prefix:?}");
            }
            other => panic!("{prefix:?}: expected InvalidName, got {other:?}"),
        }
    }
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn invalid_name_error_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let err = EventLog::open_append(dir.path(), "../x.jsonl").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("\"../x.jsonl\""), "{message}");
    assert!(message.contains("plain file name"), "{message}");
}

#[test]
fn new_log_files_are_created_mode_0640() {
    let dir = tempfile::tempdir().unwrap();
    let append = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    let operation = EventLog::create_operation(dir.path(), "", "op").unwrap();
    for log in [&append, &operation] {
        let mode = fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640, "{}", log.path().display());
    }
}

#[test]
fn a_second_writer_for_the_same_file_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    let clone = first.clone();
    assert!(matches!(
        EventLog::open_append(dir.path(), "events.jsonl"),
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        EventLog::create_operation(dir.path(), "", "events"),
        Err(Error::Locked { .. })
    ));
    drop(first);
    assert!(
        matches!(
            EventLog::open_append(dir.path(), "events.jsonl"),
            Err(Error::Locked { .. })
        ),
        "a clone keeps the file open"
    );
    drop(clone);
    EventLog::open_append(dir.path(), "events.jsonl").unwrap();
}

#[test]
fn a_second_writer_is_refused_before_the_file_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let first = EventLog::create_operation(dir.path(), "", "op").unwrap();
    first.log(&common::event("kept")).unwrap();
    assert!(EventLog::create_operation(dir.path(), "", "op").is_err());
    assert_eq!(common::messages(first.path()), ["kept"]);
}

#[test]
fn a_symlink_at_the_log_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious.txt");
    fs::write(&target, "do not touch").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("op.jsonl")).unwrap();

    let err = EventLog::create_operation(dir.path(), "", "op").unwrap_err();
    assert!(matches!(err, Error::Io { op: Op::Open, .. }), "{err:?}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "do not touch");
}

#[test]
fn opening_in_a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let err = EventLog::open_append(&missing, "events.jsonl").unwrap_err();
    assert!(matches!(err, Error::Io { op: Op::Open, .. }), "{err:?}");
    assert!(
        err.to_string().contains("no-such-dir/events.jsonl"),
        "{err}"
    );
}
