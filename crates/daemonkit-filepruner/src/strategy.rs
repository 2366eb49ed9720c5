//! Strategies decide whether one file may be removed.
//!
//! A [`Strategy`] looks at one [`Candidate`] and answers `Ok(true)` (prunable),
//! `Ok(false)` (keep, subject to the hard cap) or `Err(_)` (cannot decide: the
//! file is protected from both passes). Built-ins:
//!
//! - [`FilenameTimestamp`](crate::FilenameTimestamp): a timestamp found in the
//!   file's name is older than a maximum age;
//! - [`ModifiedTime`]: the file's modification time is older than a maximum age;
//! - [`FileSize`]: the file is larger than a maximum size;
//! - [`All`] and [`Any`] combine strategies;
//! - [`from_fn`] turns a closure into a strategy.

use std::cell::OnceCell;
use std::ffi::{CStr, OsStr};
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::Error;

/// Decides whether one file may be removed.
///
/// Implementations must be cheap to call many times: a pass calls
/// [`is_prunable`](Strategy::is_prunable) once for every regular file and
/// symlink whose name matches the pattern. Ask the [`Candidate`] only for what
/// you need: its name costs nothing, its size and modification time cost one
/// `lstat(2)` (made once per file and cached).
///
/// # Errors
///
/// Return `Err` when the file's eligibility cannot be determined. The pruner
/// then *protects* the file — neither the strategy pass nor the hard cap
/// removes it — and reports the error as the reason. "When in doubt, keep."
/// Use [`Error::Strategy`] for a custom reason.
///
/// # Examples
///
/// A custom strategy that prunes compressed files only:
///
/// ```
/// use daemonkit_filepruner::{Candidate, Error, Strategy};
///
/// #[derive(Debug)]
/// struct Compressed;
///
/// impl Strategy for Compressed {
///     fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
///         Ok(file.name().as_encoded_bytes().ends_with(b".gz"))
///     }
/// }
/// ```
pub trait Strategy: fmt::Debug + Send + Sync {
    /// Whether `file` may be removed now.
    ///
    /// # Errors
    ///
    /// Any error protects the file; see the trait documentation.
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error>;
}

impl<S: Strategy + ?Sized> Strategy for Box<S> {
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        (**self).is_prunable(file)
    }
}

impl<S: Strategy + ?Sized> Strategy for Arc<S> {
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        (**self).is_prunable(file)
    }
}

impl<S: Strategy + ?Sized> Strategy for &S {
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        (**self).is_prunable(file)
    }
}

// ===== Candidate =====

/// What a candidate file is: only these two kinds are ever considered.
///
/// Directories, sockets, FIFOs and device nodes are never candidates, so they
/// are never removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A symbolic link. It is judged by its own name and `lstat` metadata, and
    /// removing it unlinks the link only — the target is never followed.
    Symlink,
}

/// The state shared by every candidate of one pass.
#[derive(Debug)]
pub(crate) struct PassContext<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) fd: BorrowedFd<'a>,
    pub(crate) now: Timestamp,
    /// The directory's device, when a listing's inode numbers are `lstat`'s.
    pub(crate) listing_dev: Option<u64>,
}

/// The subset of `lstat(2)` that strategies and the pruner use.
#[derive(Debug, Clone, Copy)]
struct Lstat {
    len: u64,
    modified: Timestamp,
    identity: Identity,
}

/// Which inode a name led to when a file was judged: what the pruner checks again just before
/// removing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// `None` for a type that is never a candidate (a directory swapped in, …).
    pub(crate) kind: Option<FileKind>,
}

impl Identity {
    pub(crate) fn of(stat: &rustix::fs::Stat) -> Identity {
        let kind = match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
            rustix::fs::FileType::RegularFile => Some(FileKind::File),
            rustix::fs::FileType::Symlink => Some(FileKind::Symlink),
            _ => None,
        };
        Identity {
            // `dev_t` and `ino_t` are unsigned on Linux; the casts only widen.
            #[allow(clippy::unnecessary_cast)]
            dev: stat.st_dev as u64,
            #[allow(clippy::unnecessary_cast)]
            ino: stat.st_ino as u64,
            kind,
        }
    }
}

/// One file a [`Strategy`] is asked about: a regular file or a symlink directly
/// inside the pruned directory whose name matches the pattern.
///
/// Its [`name`](Candidate::name) and [`kind`](Candidate::kind) come from the
/// directory listing and cost nothing. [`len`](Candidate::len) and
/// [`modified`](Candidate::modified) read the file's own metadata with
/// `lstat(2)` relative to the directory — a symlink is never followed — once per
/// candidate, on first use.
pub struct Candidate<'a> {
    pass: &'a PassContext<'a>,
    /// Borrowed from the pass's one buffer of listed names: a candidate costs no
    /// allocation of its own.
    name: &'a CStr,
    /// Where the name came in the directory listing.
    position: usize,
    kind: FileKind,
    /// The inode number the listing gave.
    ino: u64,
    /// Boxed: most passes never `lstat`, and the box keeps a candidate small.
    lstat: OnceCell<Box<Lstat>>,
}

// ===== impl Candidate =====

impl<'a> Candidate<'a> {
    pub(crate) fn new(
        pass: &'a PassContext<'a>,
        name: &'a CStr,
        position: usize,
        kind: FileKind,
        ino: u64,
    ) -> Candidate<'a> {
        Candidate {
            pass,
            name,
            position,
            kind,
            ino,
            lstat: OnceCell::new(),
        }
    }

    /// The file's name inside the pruned directory (one path component).
    pub fn name(&self) -> &OsStr {
        OsStr::from_bytes(self.name.to_bytes())
    }

    pub(crate) fn c_name(&self) -> &'a CStr {
        self.name
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// The pruned directory joined with [`name`](Candidate::name), for messages.
    ///
    /// The pruner itself never resolves this path: it works relative to the
    /// directory it opened, so a directory renamed or replaced mid-pass cannot
    /// redirect it elsewhere.
    pub fn path(&self) -> PathBuf {
        self.pass.dir.join(self.name())
    }

    /// Whether the candidate is a regular file or a symlink.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The instant the pass started.
    ///
    /// Age-based strategies measure against it, so every file of one pass is
    /// judged by the same clock.
    pub fn now(&self) -> Timestamp {
        self.pass.now
    }

    /// The file's size in bytes (for a symlink: the length of its target path).
    ///
    /// # Errors
    ///
    /// [`Error::Metadata`] if `lstat(2)` fails, for example because the file was
    /// removed meanwhile.
    pub fn len(&self) -> Result<u64, Error> {
        Ok(self.lstat()?.len)
    }

    /// Whether the file is empty (see [`len`](Candidate::len)).
    ///
    /// # Errors
    ///
    /// As for [`len`](Candidate::len).
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// The file's modification time (for a symlink: the link's own).
    ///
    /// # Errors
    ///
    /// [`Error::Metadata`] if `lstat(2)` fails or the time is outside the
    /// range a [`Timestamp`] can represent.
    pub fn modified(&self) -> Result<Timestamp, Error> {
        Ok(self.lstat()?.modified)
    }

    /// The inode the name led to when the file was judged, to be checked again just before
    /// removal: the `lstat` a strategy made, else the listing's own inode number and type
    /// where those are `lstat`'s (no system call), else an `lstat` now.
    pub(crate) fn identity(&self) -> Result<Identity, Error> {
        if let Some(lstat) = self.lstat.get() {
            return Ok(lstat.identity);
        }
        if let Some(dev) = self.pass.listing_dev {
            return Ok(Identity {
                dev,
                ino: self.ino,
                kind: Some(self.kind),
            });
        }
        Ok(self.lstat()?.identity)
    }

    fn lstat(&self) -> Result<Lstat, Error> {
        if let Some(lstat) = self.lstat.get() {
            return Ok(**lstat);
        }
        let metadata_error = |source: io::Error| Error::Metadata {
            path: self.path(),
            source,
        };
        let stat = rustix::fs::statat(
            self.pass.fd,
            self.name,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|errno| metadata_error(errno.into()))?;
        let out_of_range = |what: &str| {
            metadata_error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} is out of range"),
            ))
        };
        let nanos = i32::try_from(stat.st_mtime_nsec)
            .map_err(|_| out_of_range("modification time (nanoseconds)"))?;
        let modified =
            Timestamp::new(stat.st_mtime, nanos).map_err(|_| out_of_range("modification time"))?;
        let len = u64::try_from(stat.st_size).map_err(|_| out_of_range("size"))?;
        let lstat = Lstat {
            len,
            modified,
            identity: Identity::of(&stat),
        };
        // Ignoring the result is fine: the cell was empty a moment ago and a
        // candidate is used by one thread (it is not `Sync`).
        let _ = self.lstat.set(Box::new(lstat));
        Ok(lstat)
    }
}

impl fmt::Debug for Candidate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate")
            .field("name", &self.name())
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Whether `then` is more than `max_age` before `now`.
pub(crate) fn older_than(now: Timestamp, then: Timestamp, max_age: SignedDuration) -> bool {
    now.duration_since(then) > max_age
}

/// Converts a maximum age, saturating: an age beyond `SignedDuration::MAX`
/// (about 292 billion years) means nothing is ever old enough.
pub(crate) fn signed_age(max_age: Duration) -> SignedDuration {
    SignedDuration::try_from(max_age).unwrap_or(SignedDuration::MAX)
}

// ===== ModifiedTime =====

/// Prunes files whose modification time is more than a maximum age ago.
///
/// The time is the candidate's own `lstat(2)` modification time — for a
/// symlink, the link's, never its target's. A file modified in the future is
/// never prunable.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit_filepruner::{ModifiedTime, Pattern, Pruner};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("fresh.log"), b"{}")?;
///
/// let report = Pruner::new(ModifiedTime::new(Duration::from_secs(3600)))
///     .prune(dir.path(), &Pattern::new("*.log")?, 10)?;
/// assert!(report.removed.is_empty());
/// assert_eq!(report.kept.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ModifiedTime {
    max_age: SignedDuration,
}

impl ModifiedTime {
    /// Prunes files last modified more than `max_age` before the pass started.
    pub fn new(max_age: Duration) -> ModifiedTime {
        ModifiedTime {
            max_age: signed_age(max_age),
        }
    }
}

impl Strategy for ModifiedTime {
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        Ok(older_than(file.now(), file.modified()?, self.max_age))
    }
}

// ===== FileSize =====

/// Prunes files larger than a maximum size in bytes.
///
/// The size is the candidate's own `lstat(2)` size (for a symlink, the length
/// of its target path, so a symlink is practically never "too large").
///
/// # Examples
///
/// ```
/// use daemonkit_filepruner::{FileSize, Pattern, Pruner};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("small.jsonl"), b"{}")?;
/// std::fs::write(dir.path().join("large.jsonl"), vec![0u8; 200])?;
///
/// let report = Pruner::new(FileSize::new(100)).prune(dir.path(), &Pattern::new("*.jsonl")?, 50)?;
/// assert_eq!(report.removed.len(), 1);
/// assert!(!dir.path().join("large.jsonl").exists());
/// assert!(dir.path().join("small.jsonl").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FileSize {
    max_bytes: u64,
}

impl FileSize {
    /// Prunes files strictly larger than `max_bytes`.
    pub fn new(max_bytes: u64) -> FileSize {
        FileSize { max_bytes }
    }
}

impl Strategy for FileSize {
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        Ok(file.len()? > self.max_bytes)
    }
}

// ===== All / Any =====

/// Combines the verdicts of `strategies` with AND (`every`) or OR.
///
/// Every strategy is consulted, even once the combined answer is known, and
/// the first error wins: a file one strategy cannot judge is then protected no
/// matter in which order the strategies were listed.
fn combine(
    strategies: &[Box<dyn Strategy>],
    file: &Candidate<'_>,
    every: bool,
) -> Result<bool, Error> {
    let mut combined = every;
    let mut first_error = None;
    for strategy in strategies {
        match strategy.is_prunable(file) {
            Ok(prunable) if every => combined &= prunable,
            Ok(prunable) => combined |= prunable,
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(combined),
    }
}

/// Prunes a file only when every strategy says it is prunable.
///
/// Every strategy is consulted, in the order given; if any returns an error,
/// the first error is returned and the file is protected — so the protection
/// does not depend on the order strategies are listed in. An `All` has at least
/// one strategy by construction.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit_filepruner::{All, FileSize, ModifiedTime, Pruner};
///
/// // Old *and* large.
/// let strategy = All::new(ModifiedTime::new(Duration::from_secs(7 * 86_400)))
///     .and(FileSize::new(10 << 20));
/// let _pruner = Pruner::new(strategy);
/// ```
#[derive(Debug)]
pub struct All {
    strategies: Vec<Box<dyn Strategy>>,
}

impl All {
    /// Starts a conjunction with its first strategy.
    pub fn new(first: impl Strategy + 'static) -> All {
        All {
            strategies: vec![Box::new(first)],
        }
    }

    /// Adds a strategy that must also agree.
    #[must_use]
    pub fn and(mut self, next: impl Strategy + 'static) -> All {
        self.strategies.push(Box::new(next));
        self
    }
}

impl Strategy for All {
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        combine(&self.strategies, file, true)
    }
}

/// Prunes a file when at least one strategy says it is prunable.
///
/// Every strategy is consulted, in the order given; if any returns an error,
/// the first error is returned and the file is protected, even if another
/// strategy found it prunable. An `Any` has at least one strategy by
/// construction.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit_filepruner::{Any, FileSize, ModifiedTime, Pruner};
///
/// // Old *or* large.
/// let strategy = Any::new(ModifiedTime::new(Duration::from_secs(7 * 86_400)))
///     .or(FileSize::new(10 << 20));
/// let _pruner = Pruner::new(strategy);
/// ```
#[derive(Debug)]
pub struct Any {
    strategies: Vec<Box<dyn Strategy>>,
}

impl Any {
    /// Starts a disjunction with its first strategy.
    pub fn new(first: impl Strategy + 'static) -> Any {
        Any {
            strategies: vec![Box::new(first)],
        }
    }

    /// Adds an alternative strategy.
    #[must_use]
    pub fn or(mut self, next: impl Strategy + 'static) -> Any {
        self.strategies.push(Box::new(next));
        self
    }
}

impl Strategy for Any {
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        combine(&self.strategies, file, false)
    }
}

// ===== from_fn =====

/// A [`Strategy`] made from a closure; see [`from_fn`].
pub struct FromFn<F> {
    f: F,
}

/// Turns a closure into a [`Strategy`].
///
/// # Examples
///
/// ```
/// use daemonkit_filepruner::{strategy, Error, Pattern, Pruner};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.tmp"), b"")?;
/// std::fs::write(dir.path().join("b.tmp"), b"x")?;
///
/// let empty_files = strategy::from_fn(|file| file.is_empty());
/// let report = Pruner::new(empty_files).prune(dir.path(), &Pattern::new("*.tmp")?, 10)?;
/// assert_eq!(report.removed.len(), 1);
/// assert_eq!(report.removed[0].name, "a.tmp");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_fn<F>(f: F) -> FromFn<F>
where
    F: Fn(&Candidate<'_>) -> Result<bool, Error> + Send + Sync,
{
    FromFn { f }
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn").finish_non_exhaustive()
    }
}

impl<F> Strategy for FromFn<F>
where
    F: Fn(&Candidate<'_>) -> Result<bool, Error> + Send + Sync,
{
    fn is_prunable(&self, file: &Candidate<'_>) -> Result<bool, Error> {
        (self.f)(file)
    }
}
