//! Recreating a removed live file is reported as an `EventLogFileReplaced` tracing record
//! naming the path. Alone in its own test binary, as every log-capturing test (see
//! torn_tail_reported.rs).

mod common;

use daemonkit_eventlog::{RotatingLog, Rotation};

#[test]
fn recreating_a_removed_file_logs_event_log_file_replaced_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let log = RotatingLog::open(dir.path(), Rotation::daily("events").unwrap()).unwrap();
    log.log(&common::event("before")).unwrap();
    std::fs::remove_file(log.current_path()).unwrap();

    let ((), records) = common::capture_logs(|| log.log(&common::event("after")).unwrap());
    let replaced: Vec<_> = records
        .iter()
        .filter(|r| r["fields"]["reason"] == "EventLogFileReplaced")
        .collect();
    assert_eq!(replaced.len(), 1, "{records:?}");
    assert_eq!(replaced[0]["level"], "WARN");
    assert_eq!(
        replaced[0]["fields"]["path"],
        log.current_path().display().to_string().as_str()
    );
    assert_eq!(common::messages(&log.current_path()), ["after"]);
}
