//! The repair of a torn tail is reported as a `reason`-tagged tracing record.
//!
//! Alone in its own test binary: a scoped subscriber in one test races with tracing's
//! global interest cache when other tests hit the same call site on other threads.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use daemonkit_eventlog::EventLog;

const TORN: &[u8] = br#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"Te"#;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_repair_is_reported_as_a_tracing_record_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    common::log_then_tear(dir.path(), 1, TORN);

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let log = tracing::subscriber::with_default(subscriber, || {
        // Other tests of this binary hit the same callsite on other threads without a
        // subscriber; re-evaluate its interest now that this thread has one, or a
        // concurrently cached "never" can drop the record.
        tracing::callsite::rebuild_interest_cache();
        EventLog::open_append(dir.path(), "events.jsonl").unwrap()
    });

    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let record: serde_json::Value =
        serde_json::from_str(output.lines().next().expect("one record")).unwrap();
    assert_eq!(record["level"], "WARN");
    assert_eq!(record["fields"]["reason"], "TornTailRepaired");
    let side = log
        .torn_tail_repair()
        .unwrap()
        .side_file
        .display()
        .to_string();
    assert_eq!(record["fields"]["side_file"], side.as_str());
}
