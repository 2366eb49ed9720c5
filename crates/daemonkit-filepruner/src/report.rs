//! What a pass did, file by file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::Error;

/// What one pass of [`Pruner::prune`](crate::Pruner::prune) did (or, in
/// dry-run mode, would do), file by file.
///
/// Every regular file and symlink whose name matched the pattern appears in
/// exactly one list. Names are bare file names inside [`dir`](Report::dir).
///
/// `removed` lists strategy removals in directory order, then hard-cap removals
/// oldest first; the order of the other lists is unspecified (sort them for
/// display).
///
/// Serialized (for `daemonctl prune --json`) as an object with the same field
/// names; names, paths and errors are written as (lossily decoded) strings:
///
/// ```json
/// {"dir":"/var/log/app","dry_run":false,"dir_missing":false,
///  "removed":[{"name":"app-20240101T000000Z.log","reason":"prunable"}],
///  "kept":["app-20260415T143000Z.log"],"kept_count":1,
///  "protected":[{"name":"app.log","reason":"no timestamp in the format …"}],
///  "failures":[],"vanished":[],"in_use":["app-20260416T000000Z.log"],"changed":[]}
/// ```
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The directory that was pruned, as given.
    #[serde(serialize_with = "lossy_path")]
    pub dir: PathBuf,
    /// Whether this was a dry run: nothing was removed, and `removed` lists
    /// what a real pass would have removed.
    pub dry_run: bool,
    /// The directory does not exist (yet): nothing was listed or removed, and every list is
    /// empty. Not an error, so a daemon pruning a directory before its first file is written
    /// does not report a failure every pass. (A directory that exists but cannot be read is
    /// still [`Error::OpenDir`].)
    pub dir_missing: bool,
    /// Files removed (or, in a dry run, that would be removed), and why.
    pub removed: Vec<Removed>,
    /// Files kept: not prunable and within the hard cap. Empty when the pruner
    /// was told not to list them ([`Pruner::list_kept`](crate::Pruner::list_kept));
    /// [`kept_count`](Report::kept_count) still counts them.
    #[serde(serialize_with = "lossy_names")]
    pub kept: Vec<OsString>,
    /// How many files were kept, whether or not [`kept`](Report::kept) lists them.
    pub kept_count: usize,
    /// Files whose eligibility could not be determined; neither pass touched
    /// them and they do not count toward the hard cap.
    pub protected: Vec<Protected>,
    /// Files that should have been removed but could not be. They stay on disk;
    /// the next pass tries again.
    pub failures: Vec<Failure>,
    /// Files that disappeared while the pass was running — someone else removed
    /// them. Neither an error nor a removal by this pass.
    #[serde(serialize_with = "lossy_names")]
    pub vanished: Vec<OsString>,
    /// Files that should have been removed but that a writer holds: another process or
    /// thread has an exclusive `flock` on them, as daemonkit-eventlog's writers take on their
    /// live file. Kept; the next pass looks again.
    #[serde(serialize_with = "lossy_names")]
    pub in_use: Vec<OsString>,
    /// Files that should have been removed but whose name led to another file (or type)
    /// just before removal than when it was judged — renamed over or replaced during the
    /// pass. Kept unjudged; the next pass judges what is there.
    #[serde(serialize_with = "lossy_names")]
    pub changed: Vec<OsString>,
}

impl Report {
    pub(crate) fn new(dir: &Path, dry_run: bool) -> Report {
        Report {
            dir: dir.to_owned(),
            dry_run,
            dir_missing: false,
            removed: Vec::new(),
            kept: Vec::new(),
            kept_count: 0,
            protected: Vec::new(),
            failures: Vec::new(),
            vanished: Vec::new(),
            in_use: Vec::new(),
            changed: Vec::new(),
        }
    }

    /// Whether every removal the pass attempted succeeded (`failures` is empty).
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }

    /// The full path of a file named in this report.
    pub fn path_of(&self, name: impl AsRef<std::ffi::OsStr>) -> PathBuf {
        self.dir.join(name.as_ref())
    }
}

/// Why a file was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// The strategy marked the file prunable (first pass).
    Prunable,
    /// More than `keep` files remained and this was among the oldest (second
    /// pass, the hard cap).
    OverCap,
}

/// A removed file.
#[derive(Debug, Serialize)]
pub struct Removed {
    /// The file's name.
    #[serde(serialize_with = "lossy_name")]
    pub name: OsString,
    /// Which pass removed it.
    pub reason: RemovalReason,
}

/// A file the strategy could not judge, and so was kept.
#[derive(Debug, Serialize)]
pub struct Protected {
    /// The file's name.
    #[serde(serialize_with = "lossy_name")]
    pub name: OsString,
    /// The strategy's error, e.g. [`Error::NoTimestamp`].
    #[serde(serialize_with = "display")]
    pub reason: Error,
}

/// A file that should have been removed but could not be.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// The file's name.
    #[serde(serialize_with = "lossy_name")]
    pub name: OsString,
    /// Which pass tried to remove it.
    pub reason: RemovalReason,
    /// What went wrong, normally [`Error::Remove`].
    #[serde(serialize_with = "display")]
    pub error: Error,
}

fn lossy_path<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&path.display())
}

fn lossy_name<S: Serializer>(name: &OsString, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&name.display())
}

fn lossy_names<S: Serializer>(names: &[OsString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(names.iter().map(|n| n.display().to_string()))
}

fn display<S: Serializer>(error: &Error, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(error)
}
