//! Helpers shared by the integration tests: a fixed clock and Go-suite names.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The format of the Go suite's names: `consensus-upgrade-20260415T143000Z-v0.75.0.jsonl`.
pub const UPGRADE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// 365 days.
pub const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// The instant every test pass runs at.
pub fn now() -> Timestamp {
    "2026-04-15T12:00:00Z".parse().expect("valid timestamp")
}

/// A consensus-upgrade file name stamped `days_ago` days before [`now`].
pub fn ts_name(days_ago: i64, version: &str) -> String {
    let stamp = now() - SignedDuration::from_hours(24 * days_ago);
    format!(
        "consensus-upgrade-{}-{version}.jsonl",
        stamp.strftime(UPGRADE_FORMAT)
    )
}

/// Writes a small file for each name.
pub fn write_files(dir: &Path, names: &[&str]) {
    for name in names {
        std::fs::write(dir.join(name), b"{}").expect("write test file");
    }
}

/// Writes a file of `len` bytes.
pub fn write_len(dir: &Path, name: &str, len: usize) {
    std::fs::write(dir.join(name), vec![b'x'; len]).expect("write test file");
}

/// Sets a file's modification time to `days_ago` days before [`now`].
pub fn set_mtime(path: &Path, days_ago: i64) {
    let when = now() - SignedDuration::from_hours(24 * days_ago);
    let when = std::time::SystemTime::try_from(when).expect("in range");
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read test dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

/// Sorted UTF-8 names of a list of `OsString`s.
pub fn sorted<'a>(names: impl IntoIterator<Item = &'a std::ffi::OsString>) -> Vec<String> {
    let mut v: Vec<String> = names
        .into_iter()
        .map(|n| n.to_str().expect("utf-8").to_owned())
        .collect();
    v.sort();
    v
}

/// A missing prerequisite (root, a package): prints `SKIPPED: <why>` and returns normally, or
/// panics when `DAEMONKIT_REQUIRE_ALL=1` (CI), where a skipped test would hide a failure.
pub fn skip(why: &str) {
    if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("DAEMONKIT_REQUIRE_ALL=1 but a prerequisite is missing: {why}");
    }
    eprintln!("SKIPPED: {why}");
}
