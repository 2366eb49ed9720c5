//! How one pass behaves: dry runs, concurrent deletions, failures, ordering and the report.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{YEAR, listing, now, set_mtime, sorted, write_files};
use daemonkit_filepruner::{
    Error, FilenameTimestamp, ModifiedTime, Order, Pattern, Pruner, RemovalReason, Strategy,
    strategy,
};

fn pattern(glob: &str) -> Pattern {
    Pattern::new(glob).expect("valid pattern")
}

fn daily() -> FilenameTimestamp {
    FilenameTimestamp::new("%Y%m%d", YEAR).expect("valid format")
}

/// Two old files, three recent ones and one without a date.
fn mixed_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            "app-20200101.log",
            "app-20200102.log",
            "app-20260101.log",
            "app-20260201.log",
            "app-20260301.log",
            "app-current.log",
        ],
    );
    dir
}

#[test]
fn dry_run_removes_nothing() {
    let dir = mixed_dir();
    let before = listing(dir.path());

    let report = Pruner::new(daily())
        .dry_run(true)
        .prune_at(dir.path(), &pattern("*.log"), 2, now())
        .unwrap();

    assert_eq!(listing(dir.path()), before);
    assert!(report.dry_run);
    assert_eq!(report.removed.len(), 3, "what a real run would remove");
}

#[test]
fn unlisted_kept_files_are_counted_and_the_pass_is_otherwise_the_same() {
    let listed_dir = mixed_dir();
    let unlisted_dir = mixed_dir();

    let listed = Pruner::new(daily())
        .prune_at(listed_dir.path(), &pattern("*.log"), 2, now())
        .unwrap();
    let unlisted = Pruner::new(daily())
        .list_kept(false)
        .prune_at(unlisted_dir.path(), &pattern("*.log"), 2, now())
        .unwrap();

    assert_eq!(
        sorted(&listed.kept),
        ["app-20260201.log", "app-20260301.log"]
    );
    assert_eq!(listed.kept_count, 2);
    assert!(unlisted.kept.is_empty(), "{:?}", unlisted.kept);
    assert_eq!(unlisted.kept_count, 2);
    let names = |r: &daemonkit_filepruner::Report| {
        let mut v: Vec<_> = r
            .removed
            .iter()
            .map(|r| (r.name.clone(), r.reason))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&unlisted), names(&listed));
    assert_eq!(unlisted.protected.len(), 1);
    assert_eq!(listing(unlisted_dir.path()), listing(listed_dir.path()));
}

#[test]
fn dry_run_reports_what_a_real_run_does() {
    let dry_dir = mixed_dir();
    let real_dir = mixed_dir();
    let pruner = Pruner::new(daily());

    let dry = pruner
        .clone()
        .dry_run(true)
        .prune_at(dry_dir.path(), &pattern("*.log"), 2, now())
        .unwrap();
    let real = pruner
        .prune_at(real_dir.path(), &pattern("*.log"), 2, now())
        .unwrap();

    let outcome = |r: &daemonkit_filepruner::Report| {
        let mut removed: Vec<_> = r
            .removed
            .iter()
            .map(|x| (x.name.clone(), x.reason))
            .collect();
        removed.sort();
        (
            removed,
            sorted(&r.kept),
            sorted(r.protected.iter().map(|p| &p.name)),
        )
    };
    assert_eq!(outcome(&dry), outcome(&real));
    assert!(!real.dry_run);
}

#[test]
fn keep_zero_removes_every_file_that_is_not_protected() {
    let dir = mixed_dir();

    let report = Pruner::new(daily())
        .prune_at(dir.path(), &pattern("*.log"), 0, now())
        .unwrap();

    assert_eq!(listing(dir.path()), ["app-current.log"]);
    assert!(report.kept.is_empty());
}

#[test]
fn a_file_removed_by_someone_else_before_unlink_is_not_a_failure() {
    let dir = mixed_dir();
    // Deletes the file it is asked about, then calls it prunable: the pruner's
    // own unlink finds it gone.
    let racing = strategy::from_fn(|file| {
        std::fs::remove_file(file.path()).expect("test strategy removes the file");
        Ok(true)
    });

    let report = Pruner::new(racing)
        .prune_at(dir.path(), &pattern("*.log"), 0, now())
        .unwrap();

    assert!(report.is_success(), "{:?}", report.failures);
    assert_eq!(report.vanished.len(), 6);
    assert!(report.removed.is_empty() && report.protected.is_empty());
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn candidates_deleted_by_another_process_mid_pass_do_not_fail_the_prune() {
    let dir = mixed_dir();
    let root = dir.path().to_owned();
    let first_call = AtomicBool::new(true);
    // On its first call, removes every *other* candidate, as a concurrent
    // cleaner would; judges files by their modification time, which needs an
    // lstat of files that may no longer exist.
    let strategy = strategy::from_fn(move |file| {
        if first_call.swap(false, Ordering::SeqCst) {
            for entry in std::fs::read_dir(&root).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name() != Some(file.name()) {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        ModifiedTime::new(YEAR).is_prunable(file)
    });

    let report = Pruner::new(strategy)
        .prune_at(dir.path(), &pattern("*.log"), 0, now())
        .unwrap();

    assert!(report.is_success(), "{:?}", report.failures);
    assert!(
        report.protected.is_empty(),
        "gone files need no protection: {:?}",
        report.protected
    );
    // The survivor of the cleaner was removed by the cap (keep = 0).
    assert_eq!(report.removed.len(), 1);
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn a_file_replaced_by_a_directory_while_judged_is_reported_changed_and_kept() {
    let dir = mixed_dir();
    // During evaluation, "app-20200101.log" becomes a non-empty directory: the
    // name no longer leads to what was listed, so it is neither judged nor removed.
    let sabotage = strategy::from_fn(|file| {
        if file.name() == "app-20200101.log" {
            let path = file.path();
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("inside"), b"x").unwrap();
        }
        daily().is_prunable(file)
    });

    let report = Pruner::new(sabotage)
        .prune_at(dir.path(), &pattern("*.log"), 10, now())
        .unwrap();

    assert!(report.is_success(), "{:?}", report.failures);
    assert_eq!(sorted(&report.changed), ["app-20200101.log"]);
    // The other old file was still removed.
    assert_eq!(
        sorted(report.removed.iter().map(|r| &r.name)),
        ["app-20200102.log"]
    );
    assert!(dir.path().join("app-20200101.log/inside").exists());
}

/// Sets or clears the immutable attribute with `chattr` (e2fsprogs); `Err` where the tool or
/// the file system cannot.
fn chattr(flag: &str, path: &std::path::Path) -> Result<(), String> {
    let out = std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run chattr: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[test]
fn removal_failure_is_recorded_and_the_pass_goes_on() {
    let dir = mixed_dir();
    // An immutable file passes every check and then cannot be unlinked (EPERM, even as root).
    let stuck = dir.path().join("app-20200101.log");
    if let Err(why) = chattr("+i", &stuck) {
        common::skip(&format!(
            "cannot make a file immutable (needs root and ext4): {why}"
        ));
        return;
    }
    let report = Pruner::new(daily()).prune_at(dir.path(), &pattern("*.log"), 10, now());
    chattr("-i", &stuck).unwrap();
    let report = report.unwrap();

    assert!(!report.is_success());
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert_eq!(failure.name, "app-20200101.log");
    assert_eq!(failure.reason, RemovalReason::Prunable);
    assert!(
        matches!(failure.error, Error::Remove { .. }),
        "{:?}",
        failure.error
    );
    // The other old file was still removed.
    assert_eq!(
        sorted(report.removed.iter().map(|r| &r.name)),
        ["app-20200102.log"]
    );
    assert!(stuck.exists());
}

#[test]
fn cap_by_modification_time_removes_the_least_recently_modified() {
    let dir = tempfile::tempdir().unwrap();
    // Names and ages disagree on purpose.
    write_files(dir.path(), &["a.log", "b.log", "c.log"]);
    set_mtime(&dir.path().join("a.log"), 1);
    set_mtime(&dir.path().join("b.log"), 3);
    set_mtime(&dir.path().join("c.log"), 2);

    let report = Pruner::new(strategy::from_fn(|_| Ok(false)))
        .order(Order::Modified)
        .prune_at(dir.path(), &pattern("*.log"), 1, now())
        .unwrap();

    let removed: Vec<_> = report
        .removed
        .iter()
        .map(|r| r.name.to_str().unwrap())
        .collect();
    assert_eq!(removed, ["b.log", "c.log"], "oldest modification first");
    assert_eq!(listing(dir.path()), ["a.log"]);
}

#[test]
fn custom_strategy_error_protects_the_file_with_its_message() {
    let dir = mixed_dir();
    let picky = strategy::from_fn(|file| {
        Err(Error::Strategy {
            path: file.path(),
            message: "checksum sidecar missing".to_owned(),
        })
    });

    let report = Pruner::new(picky)
        .prune_at(dir.path(), &pattern("*.log"), 0, now())
        .unwrap();

    assert_eq!(report.protected.len(), 6);
    assert!(
        report.protected[0]
            .reason
            .to_string()
            .contains("checksum sidecar missing")
    );
    assert_eq!(listing(dir.path()).len(), 6);
}

#[test]
fn report_serializes_with_reasons_as_text() {
    let dir = mixed_dir();

    let report = Pruner::new(daily())
        .prune_at(dir.path(), &pattern("*.log"), 2, now())
        .unwrap();
    let json = serde_json::to_value(&report).unwrap();

    assert_eq!(json["dir"], dir.path().to_str().unwrap());
    assert_eq!(json["dry_run"], false);
    assert_eq!(json["removed"].as_array().unwrap().len(), 3);
    assert_eq!(
        json["removed"][2],
        serde_json::json!({"name": "app-20260101.log", "reason": "over_cap"})
    );
    let mut kept: Vec<_> = json["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, ["app-20260201.log", "app-20260301.log"]);
    assert_eq!(json["protected"][0]["name"], "app-current.log");
    assert!(
        json["protected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no timestamp")
    );
    assert_eq!(json["failures"], serde_json::json!([]));
    assert_eq!(json["vanished"], serde_json::json!([]));
}

#[test]
fn a_large_batch_removed_on_several_threads_is_fully_reported_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..2_500).map(|i| format!("f-{i:05}.log")).collect();
    write_files(
        dir.path(),
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    let report = Pruner::new(strategy::from_fn(|_| Ok(false)))
        .threads(3)
        .prune_at(dir.path(), &pattern("*.log"), 100, now())
        .unwrap();

    let removed: Vec<_> = report
        .removed
        .iter()
        .map(|r| r.name.to_str().unwrap())
        .collect();
    assert_eq!(removed, names[..2_400], "oldest first, every one");
    assert!(report.is_success());
    assert_eq!(listing(dir.path()), names[2_400..]);
}
