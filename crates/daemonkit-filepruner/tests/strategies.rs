//! The Go daemonkit suite's cases, as specifications of the strategies and the cap.

mod common;

use std::time::Duration;

use common::{
    UPGRADE_FORMAT, YEAR, listing, now, set_mtime, sorted, ts_name, write_files, write_len,
};
use daemonkit_filepruner::{
    All, Any, Error, FileSize, FilenameTimestamp, ModifiedTime, Pattern, Pruner, RemovalReason,
};

fn by_name_stamp() -> FilenameTimestamp {
    FilenameTimestamp::new(UPGRADE_FORMAT, YEAR).expect("valid format")
}

fn pattern(glob: &str) -> Pattern {
    Pattern::new(glob).expect("valid pattern")
}

#[test]
fn filename_timestamp_removes_files_older_than_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let old1 = ts_name(2 * 365, "v0.70.0");
    let old2 = ts_name(18 * 30, "v0.71.0");
    let recent = ts_name(30, "v0.75.0");
    write_files(dir.path(), &[&old1, &old2, &recent]);

    let report = Pruner::new(by_name_stamp())
        .prune_at(dir.path(), &pattern("consensus-upgrade-*.jsonl"), 50, now())
        .unwrap();

    assert_eq!(listing(dir.path()), vec![recent.clone()]);
    assert_eq!(sorted(report.removed.iter().map(|r| &r.name)), [old1, old2]);
    assert!(
        report
            .removed
            .iter()
            .all(|r| r.reason == RemovalReason::Prunable)
    );
    assert_eq!(sorted(&report.kept), [recent]);
}

#[test]
fn hard_cap_removes_the_oldest_names_beyond_keep() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = [
        (150, "v0.71.0"),
        (120, "v0.72.0"),
        (90, "v0.73.0"),
        (60, "v0.74.0"),
        (30, "v0.75.0"),
    ]
    .iter()
    .map(|&(days, v)| ts_name(days, v))
    .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    write_files(dir.path(), &refs);

    let report = Pruner::new(by_name_stamp())
        .prune_at(dir.path(), &pattern("consensus-upgrade-*.jsonl"), 3, now())
        .unwrap();

    assert_eq!(listing(dir.path()), names[2..]);
    // Removed oldest first, both by the cap.
    let removed: Vec<_> = report
        .removed
        .iter()
        .map(|r| (r.name.to_str().unwrap(), r.reason))
        .collect();
    assert_eq!(
        removed,
        [
            (&*names[0], RemovalReason::OverCap),
            (&*names[1], RemovalReason::OverCap)
        ]
    );
}

#[test]
fn max_age_and_hard_cap_apply_together() {
    let dir = tempfile::tempdir().unwrap();
    let old1 = ts_name(2 * 365, "v0.70.0");
    let old2 = ts_name(18 * 30, "v0.71.0");
    let recent: Vec<String> = [
        (150, "v0.72.0"),
        (120, "v0.73.0"),
        (90, "v0.74.0"),
        (30, "v0.75.0"),
    ]
    .iter()
    .map(|&(days, v)| ts_name(days, v))
    .collect();
    write_files(dir.path(), &[&old1, &old2]);
    write_files(
        dir.path(),
        &recent.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    let report = Pruner::new(by_name_stamp())
        .prune_at(dir.path(), &pattern("consensus-upgrade-*.jsonl"), 3, now())
        .unwrap();

    assert_eq!(
        listing(dir.path()),
        recent[1..],
        "two removed by age, the oldest recent by the cap"
    );
    let over_cap: Vec<_> = report
        .removed
        .iter()
        .filter(|r| r.reason == RemovalReason::OverCap)
        .map(|r| r.name.to_str().unwrap())
        .collect();
    assert_eq!(over_cap, [&*recent[0]]);
}

#[test]
fn file_without_a_timestamp_is_protected() {
    let dir = tempfile::tempdir().unwrap();
    let old = ts_name(2 * 365, "v0.70.0");
    write_files(dir.path(), &[&old, "consensus-migrate-events.jsonl"]);

    let report = Pruner::new(by_name_stamp())
        .prune_at(dir.path(), &pattern("*.jsonl"), 50, now())
        .unwrap();

    assert_eq!(listing(dir.path()), ["consensus-migrate-events.jsonl"]);
    assert_eq!(report.protected.len(), 1);
    assert_eq!(report.protected[0].name, "consensus-migrate-events.jsonl");
    assert!(matches!(
        report.protected[0].reason,
        Error::NoTimestamp { .. }
    ));
}

#[test]
fn file_size_prunes_files_above_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    write_len(dir.path(), "small.jsonl", 2);
    write_len(dir.path(), "limit.jsonl", 100);
    write_len(dir.path(), "large.jsonl", 200);

    Pruner::new(FileSize::new(100))
        .prune_at(dir.path(), &pattern("*.jsonl"), 50, now())
        .unwrap();

    assert_eq!(listing(dir.path()), ["limit.jsonl", "small.jsonl"]);
}

#[test]
fn all_prunes_only_when_every_strategy_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let old_large = ts_name(2 * 365, "v0.70.0");
    let old_small = ts_name(18 * 30, "v0.71.0");
    let recent_large = ts_name(30, "v0.75.0");
    write_len(dir.path(), &old_large, 200);
    write_len(dir.path(), &old_small, 2);
    write_len(dir.path(), &recent_large, 200);

    let strategy = All::new(by_name_stamp()).and(FileSize::new(100));
    Pruner::new(strategy)
        .prune_at(dir.path(), &pattern("*.jsonl"), 50, now())
        .unwrap();

    let mut expected = vec![old_small, recent_large];
    expected.sort();
    assert_eq!(listing(dir.path()), expected);
}

#[test]
fn any_prunes_when_one_strategy_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let old_small = ts_name(2 * 365, "v0.70.0");
    let recent_large = ts_name(30, "v0.75.0");
    let recent_small = ts_name(60, "v0.74.0");
    write_len(dir.path(), &old_small, 2);
    write_len(dir.path(), &recent_large, 200);
    write_len(dir.path(), &recent_small, 2);

    let strategy = Any::new(by_name_stamp()).or(FileSize::new(100));
    Pruner::new(strategy)
        .prune_at(dir.path(), &pattern("*.jsonl"), 50, now())
        .unwrap();

    assert_eq!(listing(dir.path()), [recent_small]);
}

#[test]
fn a_combinator_error_protects_the_file_whatever_the_order() {
    let dir = tempfile::tempdir().unwrap();
    // Large (the size strategy says prune) but without a timestamp (error).
    write_len(dir.path(), "no-stamp.jsonl", 200);

    let any = Any::new(FileSize::new(100)).or(by_name_stamp());
    let all = All::new(FileSize::new(10_000)).and(by_name_stamp());
    for pruner in [Pruner::new(any), Pruner::new(all)] {
        let report = pruner
            .prune_at(dir.path(), &pattern("*.jsonl"), 0, now())
            .unwrap();
        assert_eq!(report.protected.len(), 1, "{pruner:?}");
        assert!(matches!(
            report.protected[0].reason,
            Error::NoTimestamp { .. }
        ));
        assert_eq!(listing(dir.path()), ["no-stamp.jsonl"]);
    }
}

#[test]
fn protected_files_do_not_count_toward_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let protected = "consensus-migrate-events.jsonl";
    let recent1 = ts_name(90, "v0.73.0");
    let recent2 = ts_name(60, "v0.74.0");
    let recent3 = ts_name(30, "v0.75.0");
    write_files(dir.path(), &[protected, &recent1, &recent2, &recent3]);

    let report = Pruner::new(by_name_stamp())
        .prune_at(dir.path(), &pattern("*.jsonl"), 2, now())
        .unwrap();

    // "consensus-migrate…" sorts before "consensus-upgrade…": had it counted,
    // the cap would have taken it first.
    let mut expected = vec![protected.to_owned(), recent2, recent3];
    expected.sort();
    assert_eq!(listing(dir.path()), expected);
    assert_eq!(sorted(report.removed.iter().map(|r| &r.name)), [recent1]);
}

#[test]
fn empty_timestamp_format_is_rejected_when_built() {
    let err = FilenameTimestamp::new("", YEAR).unwrap_err();
    assert!(
        matches!(err, Error::InvalidTimestampFormat { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn variable_width_directive_is_rejected_when_built() {
    let err = FilenameTimestamp::new("%d-%b-%Y", YEAR).unwrap_err();
    assert!(err.to_string().contains("`%b` is not supported"), "{err}");
}

#[test]
fn modified_time_removes_old_files_and_enforces_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "events-a.jsonl",
        "events-b.jsonl",
        "events-c.jsonl",
        "events-d.jsonl",
    ];
    write_files(dir.path(), &names);
    set_mtime(&dir.path().join(names[0]), 400);
    set_mtime(&dir.path().join(names[1]), 400);
    for name in &names[2..] {
        set_mtime(&dir.path().join(name), 1);
    }

    Pruner::new(ModifiedTime::new(YEAR))
        .prune_at(dir.path(), &pattern("events-*.jsonl"), 3, now())
        .unwrap();

    assert_eq!(listing(dir.path()), names[2..]);
}

#[test]
fn timestamps_in_the_future_are_not_prunable() {
    let dir = tempfile::tempdir().unwrap();
    let future = ts_name(-30, "v9.0.0");
    write_files(dir.path(), &[&future]);

    let report = Pruner::new(FilenameTimestamp::new(UPGRADE_FORMAT, Duration::ZERO).unwrap())
        .prune_at(dir.path(), &pattern("*.jsonl"), 50, now())
        .unwrap();

    assert_eq!(sorted(&report.kept), [future]);
}
