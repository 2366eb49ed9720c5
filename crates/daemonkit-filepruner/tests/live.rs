//! Files a writer is using: skipped when a writer holds their `flock` (in another process),
//! never removed when the caller protects them, and never removed when the name was renamed
//! over after the file was judged.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};

use common::{YEAR, now, set_mtime, write_files};
use daemonkit_filepruner::{Error, FilenameTimestamp, ModifiedTime, Pattern, Pruner, strategy};

const LOCK_ENV: &str = "DAEMONKIT_FILEPRUNER_LOCK_FILE";

/// The child's role: take an exclusive `flock` on the file named in the environment, as an
/// event-log writer does, say `LOCKED`, and hold it until stdin closes.
#[test]
#[ignore = "child process of the in_use tests, which run it"]
fn lock_holder_child() {
    let path = PathBuf::from(std::env::var_os(LOCK_ENV).expect("run by a parent test"));
    let file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    println!("LOCKED");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Another process holding an exclusive lock on `path` until dropped.
struct LockHolder(Child, BufReader<std::process::ChildStdout>);

impl LockHolder {
    fn lock(path: &Path) -> LockHolder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "lock_holder_child", "--ignored", "--nocapture"])
            .env(LOCK_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("LOCKED") {
            line.clear();
            let n = stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the child exited before taking the lock");
        }
        // `stdout` is kept open, so the child's harness can finish writing its summary.
        LockHolder(child, stdout)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = std::io::copy(&mut self.1, &mut std::io::sink());
        let _ = self.0.wait();
    }
}

fn daily(dir: &Path, days: &[&str]) -> Vec<String> {
    let names: Vec<String> = days.iter().map(|d| format!("events-{d}.jsonl")).collect();
    write_files(dir, &names.iter().map(String::as_str).collect::<Vec<_>>());
    names
}

fn events() -> Pattern {
    Pattern::new("events-*.jsonl").unwrap()
}

fn everything_old() -> Pruner {
    // A retention of one second: every daily file is prunable.
    Pruner::new(FilenameTimestamp::new("%Y%m%d", std::time::Duration::from_secs(1)).unwrap())
}

#[test]
fn keep_zero_leaves_the_file_another_process_holds_locked_and_reports_it_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let names = daily(dir.path(), &["20260101", "20260102", "20260414"]);
    let _writer = LockHolder::lock(&dir.path().join(&names[2]));

    let report = everything_old()
        .prune_at(dir.path(), &events(), 0, now())
        .unwrap();

    assert_eq!(common::sorted(&report.in_use), [names[2].as_str()]);
    assert_eq!(report.removed.len(), 2);
    assert_eq!(common::listing(dir.path()), [names[2].as_str()]);
    assert!(report.is_success());
}

#[test]
fn the_hard_cap_skips_a_locked_file_too_and_a_dry_run_reports_it_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let names = daily(dir.path(), &["20260413", "20260414"]);
    let _writer = LockHolder::lock(&dir.path().join(&names[1]));
    let keep_all_ages = Pruner::new(FilenameTimestamp::new("%Y%m%d", YEAR).unwrap());

    let dry = keep_all_ages
        .clone()
        .dry_run(true)
        .prune_at(dir.path(), &events(), 0, now())
        .unwrap();
    assert_eq!(common::sorted(&dry.in_use), [names[1].as_str()]);
    assert_eq!(dry.removed.len(), 1);
    assert_eq!(
        common::listing(dir.path()).len(),
        2,
        "a dry run removes nothing"
    );

    let report = keep_all_ages
        .prune_at(dir.path(), &events(), 0, now())
        .unwrap();
    assert_eq!(common::sorted(&report.in_use), [names[1].as_str()]);
    assert_eq!(common::listing(dir.path()), [names[1].as_str()]);
}

#[test]
fn a_lock_held_in_this_very_process_counts_too() {
    // flock locks belong to open file descriptions, so the pruner's own probe conflicts with
    // a writer in the same process — the demo's case, where a monitor prunes the directory
    // its own event log writes.
    let dir = tempfile::tempdir().unwrap();
    let names = daily(dir.path(), &["20260101", "20260414"]);
    let live = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(&names[1]))
        .unwrap();
    rustix::fs::flock(&live, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();

    let report = everything_old()
        .prune_at(dir.path(), &events(), 0, now())
        .unwrap();
    assert_eq!(common::sorted(&report.in_use), [names[1].as_str()]);
    assert_eq!(common::listing(dir.path()), [names[1].as_str()]);
}

#[test]
fn a_lock_released_is_no_longer_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let names = daily(dir.path(), &["20260101"]);
    drop(LockHolder::lock(&dir.path().join(&names[0])));
    let report = everything_old()
        .prune_at(dir.path(), &events(), 0, now())
        .unwrap();
    assert!(report.in_use.is_empty());
    assert_eq!(report.removed.len(), 1);
}

#[test]
fn a_protected_live_file_survives_keep_zero_without_the_lock_probe() {
    let dir = tempfile::tempdir().unwrap();
    let names = daily(dir.path(), &["20260101", "20260414"]);
    let live = dir.path().join(&names[1]);

    let report = everything_old()
        .probe_locks(false)
        .protect(&live)
        .prune_at(dir.path(), &events(), 0, now())
        .unwrap();

    assert_eq!(common::listing(dir.path()), [names[1].as_str()]);
    assert_eq!(report.protected.len(), 1);
    assert!(matches!(
        report.protected[0].reason,
        Error::Protected { .. }
    ));
    assert_eq!(report.removed.len(), 1);
}

/// A strategy that judges every file prunable, and once every file has been judged lets
/// another thread rename fresh files over half of the judged names, then waits for it.
/// `by_mtime`: the strategy reads each file's `lstat` (the identity judged is that one);
/// otherwise it judges the name only (the identity is the listing's). `probe`: the lock
/// probe's descriptor re-checks the identity (`fstat`); without it, an `lstat` does.
fn names_renamed_over_after_judgement_are_left(by_mtime: bool, probe: bool) {
    const FILES: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..FILES).map(|i| format!("old-{i:03}.log")).collect();
    write_files(
        dir.path(),
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for name in &names {
        set_mtime(&dir.path().join(name), 400);
    }

    let judged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (go, done) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let age = ModifiedTime::new(YEAR);
    let strategy = {
        let (judged, go, done) = (judged.clone(), go.clone(), done.clone());
        strategy::from_fn(move |file| {
            use daemonkit_filepruner::Strategy;
            let prunable = if by_mtime {
                age.is_prunable(file)
            } else {
                Ok(true)
            };
            if judged.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == FILES {
                go.wait(); // the renamer runs now, after every file was judged…
                done.wait(); // …and before anything is removed
            }
            prunable
        })
    };
    let renamer = {
        let dir = dir.path().to_path_buf();
        let names = names.clone();
        std::thread::spawn(move || {
            go.wait();
            for name in names.iter().step_by(2) {
                let fresh = dir.join(format!("fresh-{name}.tmp"));
                fs::write(&fresh, b"fresh").unwrap();
                fs::rename(&fresh, dir.join(name)).unwrap();
            }
            done.wait();
        })
    };

    let report = Pruner::new(strategy)
        .probe_locks(probe)
        .prune_at(
            dir.path(),
            &Pattern::new("old-*.log").unwrap(),
            1_000,
            now(),
        )
        .unwrap();
    renamer.join().unwrap();

    let renamed: Vec<&str> = names.iter().step_by(2).map(String::as_str).collect();
    assert_eq!(common::sorted(&report.changed), renamed);
    assert_eq!(report.removed.len(), FILES / 2);
    // Every fresh file is still there, unjudged and untouched.
    for name in &renamed {
        assert_eq!(fs::read(dir.path().join(name)).unwrap(), b"fresh", "{name}");
    }
    assert_eq!(common::listing(dir.path()).len(), FILES / 2);
}

#[test]
fn names_renamed_over_after_an_mtime_judgement_are_left_and_reported_changed() {
    names_renamed_over_after_judgement_are_left(true, true);
}

#[test]
fn names_renamed_over_are_left_without_the_lock_probe_too() {
    names_renamed_over_after_judgement_are_left(true, false);
    names_renamed_over_after_judgement_are_left(false, false);
}

#[test]
fn names_renamed_over_after_a_name_only_judgement_are_left_and_reported_changed() {
    names_renamed_over_after_judgement_are_left(false, true);
}

#[test]
fn a_concurrent_renamer_never_gets_a_fresh_file_removed_under_modification_age() {
    // Old files, prunable by their modification time; a thread renames fresh files (never
    // prunable) over their names throughout the pass. Without the re-check, a name renamed
    // over between its judgement and its unlink takes the fresh file with it.
    const FILES: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..FILES).map(|i| format!("old-{i:04}.log")).collect();
    write_files(
        dir.path(),
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for name in &names {
        set_mtime(&dir.path().join(name), 400);
    }
    let fresh_dir = tempfile::tempdir_in(dir.path()).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Arc::new(Barrier::new(2));
    let renamer = {
        let (dir, names, stop, started) = (
            dir.path().to_path_buf(),
            names.clone(),
            stop.clone(),
            started.clone(),
        );
        let tmp = fresh_dir.path().to_path_buf();
        std::thread::spawn(move || {
            // The last fresh inode renamed onto each name.
            let mut last = std::collections::HashMap::new();
            for (n, name) in names.iter().enumerate().rev().cycle() {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let fresh = tmp.join(format!("fresh-{n}"));
                fs::write(&fresh, b"fresh").unwrap();
                let ino = fs::metadata(&fresh).unwrap().ino();
                fs::rename(&fresh, dir.join(name)).unwrap();
                last.insert(name.clone(), ino);
                if last.len() == 50 && n == FILES - 50 {
                    started.wait();
                }
            }
            last
        })
    };
    started.wait();
    let report = Pruner::new(ModifiedTime::new(YEAR))
        .threads(1)
        .prune_at(
            dir.path(),
            &Pattern::new("old-*.log").unwrap(),
            FILES,
            now(),
        )
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let last = renamer.join().unwrap();

    // A renamed name that holds nothing now was unlinked after its last rename: the pruner
    // removed a fresh file. Only the two system calls between the re-check and the unlink
    // leave room for that.
    let removed_fresh = last
        .keys()
        .filter(|name| fs::symlink_metadata(dir.path().join(name)).is_err())
        .count();
    eprintln!(
        "{} names renamed over during the pass, {} reported changed, {} removed as old, \
         {removed_fresh} fresh files removed",
        last.len(),
        report.changed.len(),
        report.removed.len()
    );
    assert!(
        removed_fresh * 200 <= last.len().max(200),
        "{removed_fresh} fresh files of {} removed",
        last.len()
    );
}
