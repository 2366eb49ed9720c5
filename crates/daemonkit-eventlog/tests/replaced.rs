//! A live file removed or replaced behind the writer's back: the writer notices before
//! acknowledging the next event, recreates the file and carries on.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestClock;
use daemonkit_eventlog::{EventLog, RotatingLog, Rotation};

#[test]
fn rm_of_the_live_rotating_file_recreates_it_for_the_next_event() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2026-12-03T08:00:00Z");
    let log = RotatingLog::open(
        dir.path(),
        Rotation::daily("events").unwrap().clock(clock.clock()),
    )
    .unwrap();
    log.log(&common::event("before rm")).unwrap();
    let path = log.current_path();
    let old_ino = fs::metadata(&path).unwrap().ino();
    fs::remove_file(&path).unwrap();

    log.log(&common::event("after rm")).unwrap();
    assert_eq!(log.current_path(), path);
    assert_eq!(common::messages(&path), ["after rm"]);
    assert_ne!(fs::metadata(&path).unwrap().ino(), old_ino, "a new file");
    let mode = fs::metadata(&path).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // Not a dangling fd: the process holds no deleted file.
    assert_no_deleted_fd_to(&path);
}

#[test]
fn rm_of_a_plain_append_log_recreates_it_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    log.log(&common::event("one")).unwrap();
    fs::remove_file(log.path()).unwrap();
    log.log(&common::event("two")).unwrap();
    log.log(&common::event("three")).unwrap();
    assert_eq!(common::messages(log.path()), ["two", "three"]);
}

#[test]
fn a_file_renamed_over_the_live_path_is_appended_to_after_its_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    log.log(&common::event("original")).unwrap();
    // Another tool swaps in its own copy, with a partial last line.
    let other = dir.path().join("copy.jsonl");
    fs::copy(log.path(), &other).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&other)
        .unwrap()
        .write_all_bytes(b"{\"ts\":");
    fs::rename(&other, log.path()).unwrap();

    log.log(&common::event("next")).unwrap();
    assert_eq!(common::messages(log.path()), ["original", "next"]);
}

trait WriteAllBytes {
    fn write_all_bytes(self, bytes: &[u8]);
}

impl WriteAllBytes for fs::File {
    fn write_all_bytes(mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self, bytes).unwrap();
    }
}

/// Panics if this process holds an fd to a deleted file named like `path`.
fn assert_no_deleted_fd_to(path: &std::path::Path) {
    for fd in fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = fs::read_link(fd.path()) {
            let target = target.to_string_lossy().into_owned();
            assert!(
                !(target.starts_with(&*path.to_string_lossy()) && target.ends_with("(deleted)")),
                "fd {:?} -> {target}",
                fd.file_name()
            );
        }
    }
}

#[test]
fn files_unlinked_while_sixteen_writers_log_never_take_an_event_logged_after_the_unlink() {
    const WRITERS: usize = 16;
    const EVENTS: usize = 200;
    const REMOVALS: usize = 5;
    let dir = common::fast_tempdir();
    let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
    let acked = AtomicUsize::new(0);
    let removed = AtomicUsize::new(0);
    // For each event: how many removals had completed when its `log` call began.
    let began_after: std::sync::Mutex<HashMap<String, usize>> = Default::default();

    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (log, acked, removed, began_after) = (&log, &acked, &removed, &began_after);
            s.spawn(move || {
                for i in 0..EVENTS {
                    let id = format!("{w}-{i}");
                    let done = removed.load(Ordering::SeqCst);
                    log.log(&common::event(id.clone())).unwrap();
                    began_after.lock().unwrap().insert(id, done);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Keep each removed file under another name (so what reached it can be read), then
        // unlink the live name: the path names nothing, as after `rm`.
        for k in 1..=REMOVALS {
            while acked.load(Ordering::SeqCst) < k * WRITERS * EVENTS / (REMOVALS + 1) {
                std::thread::yield_now();
            }
            // The writers recreate the live file at their next batch: until one has, after
            // the previous removal, there is nothing at the path to keep.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                match fs::hard_link(log.path(), dir.path().join(format!("removed-{k}"))) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        assert!(std::time::Instant::now() < deadline, "never recreated");
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("keeping the live file: {e}"),
                }
            }
            fs::remove_file(log.path()).unwrap();
            removed.store(k, Ordering::SeqCst);
        }
    });

    // Where each event landed: removed-1..=5 are the files removed in turn, 6 the live one.
    let mut landed: HashMap<String, Vec<usize>> = HashMap::new();
    for k in 1..=REMOVALS + 1 {
        let path = match k {
            k if k <= REMOVALS => dir.path().join(format!("removed-{k}")),
            _ => log.path().to_path_buf(),
        };
        for msg in common::messages(&path) {
            landed.entry(msg).or_default().push(k);
        }
    }
    let began_after = began_after.into_inner().unwrap();
    assert_eq!(began_after.len(), WRITERS * EVENTS);
    for (id, done) in &began_after {
        let files = landed
            .get(id)
            .unwrap_or_else(|| panic!("{id} is in no file"));
        // An event logged after removal `done` completed can only be in a file opened after it.
        assert!(
            files.iter().all(|&k| k > *done),
            "{id} began after removal {done} but landed in {files:?}"
        );
    }
}
