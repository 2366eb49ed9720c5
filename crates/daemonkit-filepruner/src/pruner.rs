//! The two-pass pruner.

use std::cmp::Ordering;
use std::ffi::{CStr, OsStr, OsString};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::report::{Failure, Protected, RemovalReason, Removed, Report};
use crate::strategy::{Identity, PassContext};
use crate::{Candidate, Error, FileKind, Pattern, Strategy};

/// Which files the hard cap removes first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Oldest by name: the names that sort first, ascending by their bytes,
    /// are the oldest — as in the Go daemonkit. Timestamped names such as
    /// `app-20260415T143000Z.log` sort chronologically. Costs no `lstat`.
    #[default]
    Name,
    /// Oldest by modification time (the candidate's own `lstat`), ties broken
    /// by name. A file whose time cannot be read is protected.
    Modified,
}

/// Applies a [`Strategy`] to a directory's matching files, then enforces a hard
/// cap on how many remain.
///
/// A pass ([`prune`](Pruner::prune)) works in two steps:
///
/// 1. the strategy judges every matching file, then every file it marked
///    prunable is removed;
/// 2. if more than `keep` of the files the strategy judged *not* prunable
///    remain, the oldest (see [`Order`]) are removed until `keep` remain.
///
/// A file the strategy cannot judge (it returned an error) is *protected*:
/// neither step removes it and it does not count toward `keep`. A removal that
/// fails is recorded in the report and the pass goes on; the cap does not make
/// up for it by removing a newer file.
///
/// Within a step, files are unlinked in the order of their inode numbers (on
/// ext4 cheaper than the listing's order, which is several times cheaper than
/// name order), large batches on a few threads (see
/// [`threads`](Pruner::threads)); the [`Report`] still lists the hard cap's
/// removals oldest first.
///
/// The builder defaults are safe: order by name, really remove. Set
/// [`dry_run`](Pruner::dry_run) to get the same report without removing
/// anything.
///
/// # Safety of the file system
///
/// - Only regular files and symlinks directly inside `dir` are candidates.
///   Directories, sockets, FIFOs and devices are never removed, even when
///   their names match.
/// - A matching symlink is judged by its own name and `lstat` metadata, counts
///   toward `keep` like a file, and removing it unlinks the link — never its
///   target, which is never followed.
/// - `dir` is opened once; every later listing, `lstat` and `unlink` is made
///   relative to that open directory (`*at` system calls) with a name read from
///   it. Nothing outside `dir` is touched, even if a path component of `dir` is
///   renamed or replaced by a symlink during the pass.
/// - A file that someone else removes during the pass is reported as
///   [`vanished`](Report::vanished), not as an error.
/// - **Re-checked before each unlink.** A file's identity (device, inode and
///   type, never following a symlink) is taken when it is judged — from the
///   listing where the file system's listed inode numbers are `lstat`'s, else
///   by `lstat` relative to the directory. Just before its `unlink` the name is
///   checked again and removed only if it still leads to that inode: by the
///   `fstat` of the lock probe's descriptor (below), which was opened by that
///   name, or by an `lstat` of the name when there is no probe. A file renamed
///   over a judged name, or swapped for another type, is left alone and
///   reported as [`changed`](Report::changed). What is promised: the name led
///   to the judged inode at a check made just before the `unlinkat`. The check
///   and the unlink cannot be made one (Linux has no "unlink if this inode"),
///   so a rename over the name in the microseconds between them is the
///   remaining window, whichever check is used.
/// - **Files in use are skipped.** Before removing a regular file the pruner
///   opens it (`O_NOFOLLOW | O_NONBLOCK`) and asks for a shared `flock`
///   without blocking: a file a writer holds an exclusive `flock` on — as
///   every daemonkit-eventlog writer does on its live file, in any process —
///   is kept and reported as [`in_use`](Report::in_use). The shared lock is
///   held through the unlink, so a writer cannot take the file in between. A
///   file the pruner may not open (`EACCES`) cannot be probed and is re-checked
///   by `lstat` alone. Turn the probe off with
///   [`probe_locks`](Pruner::probe_locks) for directories no writer locks.
/// - **Caller-protected names** ([`protect`](Pruner::protect)) are never
///   removed: a second guard for a live file whose writer is known.
/// - A directory that does not exist yet gives an empty report marked
///   [`dir_missing`](Report::dir_missing), not an error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit_filepruner::{FilenameTimestamp, Order, Pattern, Pruner};
///
/// let dir = tempfile::tempdir()?;
/// for day in 1..=5 {
///     std::fs::write(dir.path().join(format!("audit-202401{day:02}.jsonl")), b"{}")?;
/// }
///
/// let ten_years = Duration::from_secs(10 * 365 * 86_400);
/// let pruner = Pruner::new(FilenameTimestamp::new("%Y%m%d", ten_years)?)
///     .order(Order::Name)
///     .dry_run(true);
/// let report = pruner.prune(dir.path(), &Pattern::new("audit-*.jsonl")?, 3)?;
///
/// // Nothing is old enough, but the cap of 3 would remove the two oldest names…
/// let names: Vec<_> = report.removed.iter().map(|r| r.name.clone()).collect();
/// assert_eq!(names, ["audit-20240101.jsonl", "audit-20240102.jsonl"]);
/// // …and this was a dry run.
/// assert!(dir.path().join("audit-20240101.jsonl").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pruner {
    strategy: Arc<dyn Strategy>,
    order: Order,
    dry_run: bool,
    threads: usize,
    probe_locks: bool,
    protected: Vec<OsString>,
    list_kept: bool,
}

/// A removal batch is split over threads only in chunks at least this large.
const MIN_NAMES_PER_THREAD: usize = 1024;

/// The default [`Pruner::threads`]: the available parallelism, at most 4.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

// ===== impl Pruner =====

impl Pruner {
    /// A pruner that applies `strategy`, orders the hard cap by name and really
    /// removes files.
    pub fn new(strategy: impl Strategy + 'static) -> Pruner {
        Pruner {
            strategy: Arc::new(strategy),
            order: Order::Name,
            dry_run: false,
            threads: default_threads(),
            probe_locks: true,
            protected: Vec::new(),
            list_kept: true,
        }
    }

    /// Never removes the file named like `path`'s last component (e.g. a log's
    /// live file, from `RotatingLog::current_path`), whatever its age or the
    /// cap. It is reported as [`protected`](Report::protected) with
    /// [`Error::Protected`] and does not count toward `keep`.
    ///
    /// Only the file name is compared, inside whatever directory is pruned:
    /// protecting more than asked is the safe direction. A path without a file
    /// name (`/`, `..`) protects nothing.
    #[must_use]
    pub fn protect(mut self, path: impl AsRef<Path>) -> Pruner {
        if let Some(name) = path.as_ref().file_name() {
            self.protected.push(name.to_owned());
        }
        self
    }

    /// Whether the report lists the kept files by name (default `true`).
    ///
    /// With `false`, [`Report::kept`] stays empty and only
    /// [`Report::kept_count`] says how many files were kept; every other list is
    /// unchanged. A pass over a directory of 100,000 files, nothing to remove, was
    /// measured about 10 % cheaper: the kept names — every name, in the steady
    /// state — are otherwise the pass's only allocations per file, one `OsString`
    /// each (see docs/benchmarks.md). For a daemon pruning on a schedule, which
    /// logs counts, not names.
    #[must_use]
    pub fn list_kept(mut self, list: bool) -> Pruner {
        self.list_kept = list;
        self
    }

    /// Whether to skip regular files a writer holds an exclusive `flock` on,
    /// reporting them as [`in_use`](Report::in_use) (default `true`). Costs an
    /// `open`, `fstat`, `flock` and `close` per removed file; see
    /// [Safety](Pruner#safety-of-the-file-system).
    #[must_use]
    pub fn probe_locks(mut self, probe: bool) -> Pruner {
        self.probe_locks = probe;
        self
    }

    /// Sets which files the hard cap removes first (default [`Order::Name`]).
    #[must_use]
    pub fn order(mut self, order: Order) -> Pruner {
        self.order = order;
        self
    }

    /// In a dry run nothing is removed; the report lists what would be
    /// (default `false`). The lock probe and the re-check still run, so files
    /// in use or changed are reported as such rather than as removed.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Pruner {
        self.dry_run = dry_run;
        self
    }

    /// Sets the most threads a large removal batch is spread over (default: the
    /// available parallelism, at most 4; `0` counts as `1`).
    ///
    /// Strategies, listing and the report always run on the calling thread;
    /// only the `unlink` calls of a batch of at least 2,048 files are split
    /// into chunks of at least 1,024, which saves about a third of the wall
    /// time of a 100,000-file purge on ext4. Set `1` to remove from the calling
    /// thread only.
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Pruner {
        self.threads = threads.max(1);
        self
    }

    /// Runs one pass over the files in `dir` whose names match `pattern`,
    /// keeping at most `keep` of those the strategy does not mark prunable.
    ///
    /// Age-based strategies measure against the current time; see
    /// [`prune_at`](Pruner::prune_at) to give it explicitly.
    ///
    /// # Errors
    ///
    /// [`Error::OpenDir`] if `dir` exists but cannot be opened as a directory
    /// and [`Error::ReadDir`] if listing it fails; in both cases nothing was
    /// removed. A `dir` that does not exist is not an error: the report is
    /// empty and [`dir_missing`](Report::dir_missing). Problems with single
    /// files never fail the pass: they are recorded in the [`Report`]
    /// (`protected`, `failures`, `vanished`, `in_use`, `changed`).
    pub fn prune(
        &self,
        dir: impl AsRef<Path>,
        pattern: &Pattern,
        keep: usize,
    ) -> Result<Report, Error> {
        self.prune_at(dir, pattern, keep, Timestamp::now())
    }

    /// Like [`prune`](Pruner::prune), with `now` as the current time that
    /// age-based strategies measure against.
    ///
    /// # Errors
    ///
    /// As for [`prune`](Pruner::prune).
    pub fn prune_at(
        &self,
        dir: impl AsRef<Path>,
        pattern: &Pattern,
        keep: usize,
        now: Timestamp,
    ) -> Result<Report, Error> {
        let dir = dir.as_ref();
        let fd = match open_dir(dir) {
            Ok(fd) => fd,
            Err(Error::OpenDir { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(
                    reason = "PruneDirMissing",
                    dir = %dir.display(),
                    "directory does not exist (yet); nothing to prune"
                );
                let mut report = Report::new(dir, self.dry_run);
                report.dir_missing = true;
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        let pass = PassContext {
            dir,
            fd: fd.as_fd(),
            now,
            listing_dev: listing_identity_dev(fd.as_fd()),
        };
        // The whole listing is read before anything is removed: a listing that
        // fails part-way aborts the pass with nothing done.
        let listing = list(&pass, pattern)?;
        let mut report = Report::new(dir, self.dry_run);
        let candidates = listing.candidates(&pass);

        // Pass 1: the strategy. Every file is judged before any is removed;
        // judged files leave `candidates` in place, so what is left is what the
        // strategy wants kept.
        let mut candidates = candidates;
        if !self.protected.is_empty() {
            candidates.retain(|candidate| {
                if !self.protected.iter().any(|p| p == candidate.name()) {
                    return true;
                }
                let error = Error::Protected {
                    path: candidate.path(),
                };
                protect(&pass, candidate, error, &mut report);
                false
            });
        }
        let mut prunable = Vec::new();
        candidates.retain(|candidate| match self.strategy.is_prunable(candidate) {
            Ok(true) => {
                // The identity is taken now, as the file is judged: what the re-check
                // before the unlink compares against.
                if let Some(listed) = judged(&pass, candidate, &mut report) {
                    prunable.push(listed);
                }
                false
            }
            Ok(false) => true,
            Err(error) => {
                protect(&pass, candidate, error, &mut report);
                false
            }
        });
        self.remove(&pass, prunable, RemovalReason::Prunable, &mut report);

        // Pass 2: the hard cap, over the files the strategy judged not prunable.
        if candidates.len() > keep && self.order == Order::Modified {
            // A file whose age is unknown cannot be ranked: protect it.
            candidates.retain(|candidate| match candidate.modified() {
                Ok(_) => true,
                Err(error) => {
                    protect(&pass, candidate, error, &mut report);
                    false
                }
            });
        }
        if candidates.len() > keep {
            let excess = candidates.len() - keep;
            let order = self.order;
            let oldest_first = |a: &Candidate<'_>, b: &Candidate<'_>| oldest_first(order, a, b);
            // Partition instead of sorting everything: only the `excess` oldest
            // need an order (the report lists them oldest first).
            candidates.select_nth_unstable_by(excess - 1, oldest_first);
            candidates[..excess].sort_unstable_by(oldest_first);
            let over_cap = candidates
                .drain(..excess)
                .filter_map(|candidate| judged(&pass, &candidate, &mut report))
                .collect();
            self.remove(&pass, over_cap, RemovalReason::OverCap, &mut report);
        }
        report.kept_count = candidates.len();
        if self.list_kept {
            report.kept = candidates
                .iter()
                .map(|candidate| os_name(candidate.c_name()))
                .collect();
        }

        tracing::info!(
            reason = "PruneCompleted",
            dir = %dir.display(),
            pattern = %pattern,
            keep,
            dry_run = self.dry_run,
            removed = report.removed.len(),
            kept = report.kept_count,
            protected = report.protected.len(),
            failures = report.failures.len(),
            vanished = report.vanished.len(),
            in_use = report.in_use.len(),
            changed = report.changed.len(),
            "prune pass completed"
        );
        Ok(report)
    }

    /// Removes a batch of files (unless dry-running: then only the lock probe
    /// and the re-check run) and records each outcome in the batch's order.
    /// Each file comes with its position in the directory listing and the
    /// identity it was judged with.
    fn remove(
        &self,
        pass: &PassContext<'_>,
        batch: Vec<Listed<'_>>,
        reason: RemovalReason,
        report: &mut Report,
    ) {
        // Unlink in inode-number order, whatever order the report wants (ties, on
        // file systems whose inode numbers are not unique per listing, in listing
        // order). Freeing inodes in the order of the inode table touches its
        // blocks and bitmaps one after the other, and each thread's chunk is a
        // contiguous range of them: on ext4 that was measured cheaper than the
        // listing's hash order (99,000 files: 7-14 % less CPU per unlink, on one
        // thread and on two), which was itself 1.6x faster than name order.
        let mut in_unlink_order: Vec<usize> = (0..batch.len()).collect();
        in_unlink_order.sort_unstable_by_key(|&i| (batch[i].identity.ino, batch[i].position));
        let items: Vec<(&CStr, Identity)> = in_unlink_order
            .iter()
            .map(|&i| (batch[i].name, batch[i].identity))
            .collect();
        let check = Check {
            probe_locks: self.probe_locks,
            unlink: !self.dry_run,
        };
        let mut outcomes = vec![Outcome::Removed; batch.len()];
        for (&i, outcome) in
            in_unlink_order
                .iter()
                .zip(remove_all(pass.fd, &items, check, self.threads))
        {
            outcomes[i] = outcome;
        }
        for (listed, outcome) in batch.into_iter().zip(outcomes) {
            let name = listed.name;
            let path = || pass.dir.join(OsStr::from_bytes(name.to_bytes()));
            match outcome {
                Outcome::Removed => {
                    tracing::debug!(
                        reason = "FileRemoved",
                        path = %path().display(),
                        cause = ?reason,
                        dry_run = self.dry_run,
                        "removed"
                    );
                    report.removed.push(Removed {
                        name: os_name(name),
                        reason,
                    });
                }
                Outcome::Vanished => {
                    tracing::debug!(
                        reason = "FileVanished",
                        path = %path().display(),
                        "already removed by someone else"
                    );
                    report.vanished.push(os_name(name));
                }
                Outcome::InUse => {
                    tracing::debug!(
                        reason = "FileInUse",
                        path = %path().display(),
                        "a writer holds the file's lock; keeping it"
                    );
                    report.in_use.push(os_name(name));
                }
                Outcome::Changed => {
                    tracing::debug!(
                        reason = "FileChanged",
                        path = %path().display(),
                        "the name leads to another file than the one judged; keeping it"
                    );
                    report.changed.push(os_name(name));
                }
                Outcome::Failed(step, errno) => {
                    let error = match step {
                        Step::Unlink => Error::Remove {
                            path: path(),
                            source: errno.into(),
                        },
                        Step::Recheck => Error::Recheck {
                            path: path(),
                            source: errno.into(),
                        },
                    };
                    tracing::warn!(
                        reason = "RemoveFailed",
                        path = %path().display(),
                        error = %error,
                        resolution = "check the file's type and the directory's permissions; \
                                      the next pass retries",
                        "could not remove file"
                    );
                    report.failures.push(Failure {
                        name: os_name(name),
                        reason,
                        error,
                    });
                }
            }
        }
    }
}

/// A file on its way to removal: its place in the listing, its name and the
/// identity it was judged with.
struct Listed<'a> {
    position: usize,
    name: &'a CStr,
    identity: Identity,
}

/// What to do for each file of a removal batch.
#[derive(Clone, Copy)]
struct Check {
    probe_locks: bool,
    unlink: bool,
}

/// What became of one file of a removal batch.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Removed,
    Vanished,
    InUse,
    Changed,
    Failed(Step, Errno),
}

/// The step a failure happened in.
#[derive(Clone, Copy, Debug)]
enum Step {
    Recheck,
    Unlink,
}

/// Takes the identity of a candidate about to be removed; a candidate whose
/// identity cannot be read is protected (or vanished), one whose type changed
/// since the listing is `changed`.
fn judged<'a>(
    pass: &PassContext<'_>,
    candidate: &Candidate<'a>,
    report: &mut Report,
) -> Option<Listed<'a>> {
    match candidate.identity() {
        Ok(identity) if identity.kind == Some(candidate.kind()) => Some(Listed {
            position: candidate.position(),
            name: candidate.c_name(),
            identity,
        }),
        Ok(_) => {
            tracing::debug!(
                reason = "FileChanged",
                path = %candidate.path().display(),
                "the name now leads to another type of file than listed; keeping it"
            );
            report.changed.push(candidate.name().to_owned());
            None
        }
        Err(error) => {
            protect(pass, candidate, error, report);
            None
        }
    }
}

/// Re-checks and removes one file: see [Safety](Pruner#safety-of-the-file-system).
///
/// The re-check is one system call after the judgement either way: with the lock probe, the
/// `fstat` of the probe's descriptor (opened by the name, without following a symlink) —
/// the descriptor pins the inode whose identity it compares, and the shared lock is taken
/// on that very inode; without the probe (or for a symlink, or a file not ours to open), an
/// `lstat` of the name. A second `lstat` after the probe was measured to cost ~0.8 µs of
/// CPU per removal and would only move the window in which a rename over the name goes
/// unseen (from the `open` to the `unlinkat` rather than from the `lstat` to it): no check
/// made before `unlinkat` closes it.
fn remove_checked(dir: BorrowedFd<'_>, name: &CStr, judged: Identity, check: Check) -> Outcome {
    // The shared lock is held (by `probe`) until this function returns, after
    // the unlink: a writer cannot lock the file between the probe and the
    // removal.
    let probe = if check.probe_locks && judged.kind == Some(FileKind::File) {
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => {
                match rustix::fs::fstat(&fd) {
                    Ok(stat) if Identity::of(&stat) == judged => {}
                    Ok(_) => return Outcome::Changed,
                    Err(errno) => return Outcome::Failed(Step::Recheck, errno),
                }
                match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockShared) {
                    Ok(()) => Some(fd),
                    Err(Errno::WOULDBLOCK) => return Outcome::InUse,
                    Err(errno) => return Outcome::Failed(Step::Recheck, errno),
                }
            }
            Err(Errno::NOENT) => return Outcome::Vanished,
            // A symlink now stands where a regular file was judged.
            Err(Errno::LOOP) => return Outcome::Changed,
            // Not ours to open: there is no lock to probe, the `lstat` below
            // re-checks.
            Err(Errno::ACCESS | Errno::PERM) => None,
            Err(errno) => return Outcome::Failed(Step::Recheck, errno),
        }
    } else {
        None
    };
    if probe.is_none() {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if Identity::of(&stat) == judged => {}
            Ok(_) => return Outcome::Changed,
            Err(Errno::NOENT) => return Outcome::Vanished,
            Err(errno) => return Outcome::Failed(Step::Recheck, errno),
        }
    }
    if !check.unlink {
        return Outcome::Removed;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => Outcome::Removed,
        Err(Errno::NOENT) => Outcome::Vanished,
        Err(errno) => Outcome::Failed(Step::Unlink, errno),
    }
}

/// Re-checks and removes every file relative to `dir`, spreading a large
/// batch over up to `threads` threads; returns the outcome of each, in order.
///
/// `unlinkat` without `AT_REMOVEDIR` never removes a directory (`EISDIR`), and
/// on a symlink removes the link itself.
///
/// Why threads: on ext4 most of an unlink's cost (name lookup, freeing the
/// inode) happens outside the directory's lock, so a second thread cuts the
/// wall time of a 100,000-file purge by about a third. Small batches stay on
/// the calling thread, and if a thread cannot be spawned its share is done on
/// the calling thread too.
fn remove_all(
    dir: BorrowedFd<'_>,
    items: &[(&CStr, Identity)],
    check: Check,
    threads: usize,
) -> Vec<Outcome> {
    let remove = |(name, identity): &(&CStr, Identity)| remove_checked(dir, name, *identity, check);
    let threads = threads.min(items.len() / MIN_NAMES_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(remove).collect();
    }
    // A slot stays `None` only if its thread could not be spawned.
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (part, out) in items.chunks(chunk).zip(outcomes.chunks_mut(chunk)) {
            let work = move || {
                for (item, slot) in part.iter().zip(out.iter_mut()) {
                    *slot = Some(remove(item));
                }
            };
            let spawned = std::thread::Builder::new()
                .name("filepruner-unlink".to_owned())
                .spawn_scoped(scope, work);
            if let Err(err) = spawned {
                tracing::debug!(
                    reason = "ThreadSpawnFailed",
                    error = %err,
                    "removing on the calling thread instead"
                );
            }
        }
    });
    outcomes
        .into_iter()
        .zip(items)
        .map(|(outcome, item)| outcome.unwrap_or_else(|| remove(item)))
        .collect()
}

impl fmt::Debug for Pruner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pruner")
            .field("strategy", &self.strategy)
            .field("order", &self.order)
            .field("dry_run", &self.dry_run)
            .field("threads", &self.threads)
            .field("probe_locks", &self.probe_locks)
            .field("protected", &self.protected)
            .field("list_kept", &self.list_kept)
            .finish()
    }
}

/// Oldest first under `order`; ties (equal modification times) by name bytes.
///
/// Under [`Order::Modified`] every candidate's time has been read (and cached)
/// before ranking, so `modified()` does not fail here.
fn oldest_first(order: Order, a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    let by_time = match order {
        Order::Name => Ordering::Equal,
        Order::Modified => a.modified().ok().cmp(&b.modified().ok()),
    };
    by_time.then_with(|| a.c_name().to_bytes().cmp(b.c_name().to_bytes()))
}

/// Records a candidate the pass could not judge: protected, or vanished if it
/// no longer exists (a file that is gone needs no protection).
fn protect(pass: &PassContext<'_>, candidate: &Candidate<'_>, error: Error, report: &mut Report) {
    let gone = matches!(
        rustix::fs::statat(pass.fd, candidate.c_name(), AtFlags::SYMLINK_NOFOLLOW),
        Err(Errno::NOENT)
    );
    if gone {
        tracing::debug!(
            reason = "FileVanished",
            path = %candidate.path().display(),
            "removed by someone else during evaluation"
        );
        report.vanished.push(candidate.name().to_owned());
    } else {
        tracing::debug!(
            reason = "FileProtected",
            path = %candidate.path().display(),
            error = %error,
            "eligibility unknown; keeping"
        );
        report.protected.push(Protected {
            name: candidate.name().to_owned(),
            reason: error,
        });
    }
}

/// The directory's device, when its file system reports in a listing the same
/// inode numbers `lstat` does (`d_ino == st_ino`): then a file's identity can
/// be taken from the listing, at no cost. `None` elsewhere (overlayfs, network
/// and FUSE file systems may differ), where the identity costs an `lstat`.
fn listing_identity_dev(dir: BorrowedFd<'_>) -> Option<u64> {
    const EXT4_MAGIC: i64 = 0xEF53;
    const XFS_MAGIC: i64 = 0x5846_5342;
    const BTRFS_MAGIC: i64 = 0x9123_683E;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let fs = rustix::fs::fstatfs(dir).ok()?;
    // `f_type`'s integer type differs between targets; the magics fit in it.
    #[allow(clippy::unnecessary_cast)]
    let magic = fs.f_type as i64;
    if ![EXT4_MAGIC, XFS_MAGIC, BTRFS_MAGIC, TMPFS_MAGIC].contains(&magic) {
        return None;
    }
    let stat = rustix::fs::fstat(dir).ok()?;
    #[allow(clippy::unnecessary_cast)]
    Some(stat.st_dev as u64)
}

/// Opens `dir` for listing and as the anchor of every `*at` call.
///
/// `dir` itself may be a symlink to a directory (it is followed once, here).
fn open_dir(dir: &Path) -> Result<OwnedFd, Error> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| Error::OpenDir {
        dir: dir.to_owned(),
        source: errno.into(),
    })
}

/// The regular files and symlinks of a directory whose names match the pattern,
/// in listing order: every name in one buffer (NUL-terminated, one after the
/// other), so listing 100,000 names makes a handful of allocations, not 100,000.
struct Listing {
    names: Vec<u8>,
    entries: Vec<Entry>,
}

/// One listed file: where its name ends in [`Listing::names`] (the NUL's index;
/// it starts where the previous one ended), its type and its inode number.
struct Entry {
    end: usize,
    kind: FileKind,
    ino: u64,
}

impl Listing {
    /// The candidates of the listing, borrowing their names from it.
    fn candidates<'a>(&'a self, pass: &'a PassContext<'a>) -> Vec<Candidate<'a>> {
        let mut start = 0;
        self.entries
            .iter()
            .enumerate()
            .map(|(position, entry)| {
                let bytes = &self.names[start..=entry.end];
                start = entry.end + 1;
                // `list` copied a name from a C string (no NUL inside) and its NUL.
                let name = CStr::from_bytes_with_nul(bytes).expect("a listed name");
                Candidate::new(pass, name, position, entry.kind, entry.ino)
            })
            .collect()
    }
}

/// Lists the regular files and symlinks of the open directory whose names
/// match `pattern`.
fn list(pass: &PassContext<'_>, pattern: &Pattern) -> Result<Listing, Error> {
    let read_error = |errno: Errno| Error::ReadDir {
        dir: pass.dir.to_owned(),
        source: errno.into(),
    };
    let mut listing = Listing {
        names: Vec::new(),
        entries: Vec::new(),
    };
    for_each_entry(pass.fd, |name, file_type, ino| {
        let bytes = name.to_bytes();
        // A listed name is one path component: it never contains `/`.
        if bytes == b"." || bytes == b".." || !pattern.is_match_entry(bytes) {
            return Ok(());
        }
        let file_type = match file_type {
            // Some file systems do not report the type in the listing.
            FileType::Unknown => {
                match rustix::fs::statat(pass.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => FileType::from_raw_mode(stat.st_mode),
                    // Gone already: nothing to judge, nothing to report.
                    Err(Errno::NOENT) => return Ok(()),
                    Err(errno) => return Err(errno),
                }
            }
            known => known,
        };
        let kind = match file_type {
            FileType::RegularFile => FileKind::File,
            FileType::Symlink => FileKind::Symlink,
            other => {
                tracing::debug!(
                    reason = "NotARegularFile",
                    dir = %pass.dir.display(),
                    name = %name.to_string_lossy(),
                    file_type = ?other,
                    "matching name skipped: only regular files and symlinks are pruned"
                );
                return Ok(());
            }
        };
        listing.names.extend_from_slice(name.to_bytes_with_nul());
        listing.entries.push(Entry {
            end: listing.names.len() - 1,
            kind,
            ino,
        });
        Ok(())
    })
    .map_err(read_error)?;
    Ok(listing)
}

/// Calls `each` with the name and listed type of every entry of the directory
/// open as `fd` (including `.` and `..`), reading from `fd`'s current offset.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn for_each_entry(
    fd: BorrowedFd<'_>,
    mut each: impl FnMut(&CStr, FileType, u64) -> Result<(), Errno>,
) -> Result<(), Errno> {
    // `RawDir` hands out names borrowed from this buffer, so only the names
    // that match are ever copied. 64 KiB holds several hundred entries per
    // `getdents64` call and is far above the largest possible entry.
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut entries = rustix::fs::RawDir::new(fd, buf.spare_capacity_mut());
    while let Some(entry) = entries.next() {
        let entry = entry?;
        each(entry.file_name(), entry.file_type(), entry.ino())?;
    }
    Ok(())
}

/// Calls `each` with the name and listed type of every entry of the directory
/// open as `fd` (including `.` and `..`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn for_each_entry(
    fd: BorrowedFd<'_>,
    mut each: impl FnMut(&CStr, FileType, u64) -> Result<(), Errno>,
) -> Result<(), Errno> {
    for entry in rustix::fs::Dir::read_from(fd)? {
        let entry = entry?;
        each(entry.file_name(), entry.file_type(), entry.ino())?;
    }
    Ok(())
}

/// A name from the directory, as the report's `OsString`.
fn os_name(name: &CStr) -> OsString {
    OsString::from_vec(name.to_bytes().to_vec())
}
