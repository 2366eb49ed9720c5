//! Rotation: the rule that picks a rotating log's file by the UTC day (and optionally a size
//! limit), and the naming rule readers and pruners use to find the files of a set. The writer
//! that follows it is `RotatingLog` (rotating_log.rs).

use std::fmt;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::file::check_name;
use crate::segment::{Segment, SegmentKey, open_segment};
use crate::{Error, Op, TornTailRepair};

// ===== Clock =====

/// Where a [`RotatingLog`](crate::RotatingLog) reads the time that picks its file.
///
/// [`SystemClock`] in production; tests inject their own to cross midnight in milliseconds. Any
/// `Fn() -> Timestamp + Send + Sync` closure is a clock.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use daemonkit_eventlog::Rotation;
///
/// let seconds = Arc::new(AtomicI64::new(1_780_000_000));
/// let clock = {
///     let seconds = Arc::clone(&seconds);
///     move || jiff::Timestamp::from_second(seconds.load(Ordering::SeqCst)).unwrap()
/// };
/// let rotation = Rotation::daily("events")?.clock(clock);
/// # Ok::<(), daemonkit_eventlog::Error>(())
/// ```
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

impl<F: Fn() -> Timestamp + Send + Sync> Clock for F {
    fn now(&self) -> Timestamp {
        self()
    }
}

/// The system's real-time clock ([`Timestamp::now`]), the default [`Clock`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

// ===== Rotation =====

/// How a [`RotatingLog`](crate::RotatingLog) names its files and when it moves to the next one.
///
/// Files are named by UTC day, `<prefix>-YYYYMMDD.jsonl` — the names the Go daemonkit's users
/// already prune with a `%Y%m%d` filename timestamp. With a [size limit](Rotation::max_bytes),
/// a day's later files add a sequence number: `<prefix>-YYYYMMDD-1.jsonl`, `-2`, … (no leading
/// zeros). [`list_event_files`] lists a directory's set in order by this rule.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroU64;
/// use daemonkit_eventlog::Rotation;
///
/// let rotation = Rotation::daily("events")?.max_bytes(NonZeroU64::new(64 << 20).unwrap());
/// let day = jiff::civil::date(2026, 12, 3);
/// assert_eq!(rotation.file_name(day, 0), "events-20261203.jsonl");
/// assert_eq!(rotation.file_name(day, 2), "events-20261203-2.jsonl");
/// assert_eq!(rotation.parse_file_name("events-20261203-2.jsonl"), Some((day, 2)));
/// assert_eq!(rotation.glob(), "events-*.jsonl");
///
/// // A prefix is a plain name, never a path.
/// assert!(Rotation::daily("../events").is_err());
/// # Ok::<(), daemonkit_eventlog::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Rotation {
    prefix: String,
    max_bytes: Option<NonZeroU64>,
    clock: Arc<dyn Clock>,
}

/// Why a rotating log moved to its next file.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RotationCause {
    Day,
    Size,
}

impl RotationCause {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RotationCause::Day => "day",
            RotationCause::Size => "size",
        }
    }
}

impl Rotation {
    /// One file per UTC day, `<prefix>-YYYYMMDD.jsonl`, with no size limit and the
    /// [`SystemClock`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] (role `"prefix"`) if `prefix` is empty, `.` or `..`, or contains
    /// `/` or NUL.
    pub fn daily(prefix: &str) -> Result<Rotation, Error> {
        check_name("prefix", prefix)?;
        Ok(Rotation {
            prefix: prefix.to_owned(),
            max_bytes: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// Also moves to a new file of the same day (`<prefix>-YYYYMMDD-<n>.jsonl`) before a batch
    /// would take the current file past `limit` bytes. A file holds at least one batch, so a
    /// single batch larger than `limit` still lands whole in one file.
    pub fn max_bytes(mut self, limit: NonZeroU64) -> Rotation {
        self.max_bytes = Some(limit);
        self
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Rotation {
        self.clock = Arc::new(clock);
        self
    }

    /// The file-name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The size limit, if any.
    pub fn size_limit(&self) -> Option<NonZeroU64> {
        self.max_bytes
    }

    /// A glob matching every file of the set, `<prefix>-*.jsonl`: the pattern to prune them with.
    pub fn glob(&self) -> String {
        format!("{}-*.jsonl", self.prefix)
    }

    /// The name of the `seq`th file of `day` (0 for the day's first file).
    pub fn file_name(&self, day: Date, seq: u32) -> String {
        let stamp = format!("{:04}{:02}{:02}", day.year(), day.month(), day.day());
        match seq {
            0 => format!("{}-{stamp}.jsonl", self.prefix),
            n => format!("{}-{stamp}-{n}.jsonl", self.prefix),
        }
    }

    /// The day and number of a file of this set, or `None` if `name` is not one.
    pub fn parse_file_name(&self, name: &str) -> Option<(Date, u32)> {
        parse_file_name(&self.prefix, name)
    }

    pub(crate) fn now_day(&self) -> Date {
        TimeZone::UTC.to_datetime(self.clock.now()).date()
    }

    /// Opens the file to continue on `day`: the day's highest-numbered existing file (its torn
    /// tail repaired), or the next number if that one is already at the size limit; the day's
    /// first file if it has none.
    pub(crate) fn open_day(
        &self,
        dir: &Path,
        day: Date,
    ) -> Result<(Segment, Option<TornTailRepair>), Error> {
        let seq = list_event_files(dir, &self.prefix)?
            .into_iter()
            .rfind(|f| f.day == day)
            .map_or(0, |f| f.seq);
        let key = SegmentKey { day, seq };
        let (segment, repair) = open_segment(dir, &self.file_name(day, seq), Some(key))?;
        // Judged after the repair, so a file whose torn tail took it past the limit is still
        // repaired before the writer moves on.
        let full = self
            .max_bytes
            .is_some_and(|limit| segment.good_len >= limit.get());
        match (full, seq.checked_add(1)) {
            (true, Some(next)) => {
                drop(segment);
                let key = SegmentKey { day, seq: next };
                let (segment, next_repair) =
                    open_segment(dir, &self.file_name(day, next), Some(key))?;
                Ok((segment, repair.or(next_repair)))
            }
            _ => Ok((segment, repair)),
        }
    }

    /// Repairs the torn tail of the set's newest file if it is not a file of `day` (which
    /// [`open_day`](Rotation::open_day) repairs itself): a power cut during its last batch may
    /// have left a partial line no later open would otherwise cut. A newest file locked by
    /// another writer is left to that writer.
    pub(crate) fn repair_newest_unless(
        &self,
        dir: &Path,
        day: Date,
    ) -> Result<Option<TornTailRepair>, Error> {
        let Some(newest) = list_event_files(dir, &self.prefix)?.pop() else {
            return Ok(None);
        };
        if newest.day == day {
            return Ok(None);
        }
        let key = SegmentKey {
            day: newest.day,
            seq: newest.seq,
        };
        let name = self.file_name(key.day, key.seq);
        // Only a file that may end in a partial line is opened (and locked) to repair it: a
        // whole file (empty, or ending with a newline) is left alone, so a pruner passing
        // by does not find it held, and a file pruned meanwhile is not recreated.
        if !may_be_torn(&dir.join(&name)) {
            return Ok(None);
        }
        match open_segment(dir, &name, Some(key)) {
            // Dropping the segment closes the file and releases its lock.
            Ok((_segment, repair)) => Ok(repair),
            Err(Error::Locked { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where the next batch of `batch_len` bytes must go, if not to the current file.
    ///
    /// A new UTC day starts the day's file. A clock that went back keeps the current file:
    /// going back to an earlier day's file would put later events before earlier ones in the
    /// set's order.
    pub(crate) fn next_target(
        &self,
        current: Option<SegmentKey>,
        good_len: u64,
        batch_len: u64,
    ) -> Option<(Target, RotationCause)> {
        let current = current?;
        let today = self.now_day();
        if today > current.day {
            return Some((Target::Day(today), RotationCause::Day));
        }
        let limit = self.max_bytes?;
        if good_len > 0 && good_len.saturating_add(batch_len) > limit.get() {
            let seq = current.seq.checked_add(1)?;
            let key = SegmentKey {
                day: current.day,
                seq,
            };
            return Some((Target::Key(key), RotationCause::Size));
        }
        None
    }
}

/// The file a rotating log moves to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// The file to continue on a new day (see [`Rotation::open_day`]).
    Day(Date),
    /// The next file of the current day.
    Key(SegmentKey),
}

impl fmt::Debug for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("prefix", &self.prefix)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

fn parse_file_name(prefix: &str, name: &str) -> Option<(Date, u32)> {
    let rest = name
        .strip_prefix(prefix)?
        .strip_prefix('-')?
        .strip_suffix(".jsonl")?;
    let (stamp, seq) = match rest.split_once('-') {
        None => (rest, 0),
        Some((stamp, n)) => {
            // `-1`, `-2`, …: no sign, no leading zero, so each file has one name.
            if n.is_empty() || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (stamp, n.parse().ok()?)
        }
    };
    if stamp.len() != 8 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Eight ASCII digits: the slices and parses below cannot fail.
    let year: i16 = stamp[..4].parse().ok()?;
    let month: i8 = stamp[4..6].parse().ok()?;
    let day: i8 = stamp[6..].parse().ok()?;
    Some((Date::new(year, month, day).ok()?, seq))
}

// ===== list_event_files =====

/// One file of a rotating set, as found by [`list_event_files`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventFile {
    /// The file's path: the directory given joined with the file's name.
    pub path: PathBuf,
    /// The UTC day in its name.
    pub day: Date,
    /// Its number within the day: 0 for `<prefix>-YYYYMMDD.jsonl`, `n` for `…-n.jsonl`.
    pub seq: u32,
}

/// The files of the rotating set `<prefix>-YYYYMMDD[-n].jsonl` in `dir`, oldest first (by day,
/// then number) — the order their events were written in.
///
/// Only names that follow the rule exactly are listed (so `events-20261203.jsonl.torn-…` side
/// files and other files are not), and only regular files; a symlink with a matching name is
/// skipped, as a writer never creates one. Read each with [`read_events`](crate::read_events).
///
/// # Errors
///
/// [`Error::InvalidName`] for a prefix [`Rotation::daily`] would refuse; [`Error::Io`]
/// (op [`Op::ListDirectory`]) if `dir` cannot be listed.
///
/// # Examples
///
/// ```
/// use daemonkit_eventlog::list_event_files;
///
/// let dir = tempfile::tempdir()?;
/// for name in ["events-20261203-1.jsonl", "events-20261202.jsonl", "events-20261203.jsonl", "other.jsonl"] {
///     std::fs::write(dir.path().join(name), "")?;
/// }
/// let files = list_event_files(dir.path(), "events")?;
/// let names: Vec<_> = files.iter().map(|f| f.path.file_name().unwrap().to_owned()).collect();
/// assert_eq!(names, ["events-20261202.jsonl", "events-20261203.jsonl", "events-20261203-1.jsonl"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_event_files(dir: impl AsRef<Path>, prefix: &str) -> Result<Vec<EventFile>, Error> {
    check_name("prefix", prefix)?;
    let dir = dir.as_ref();
    let list_error = |source| Error::Io {
        op: Op::ListDirectory,
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let name = entry.file_name();
        let Some((day, seq)) = name.to_str().and_then(|n| parse_file_name(prefix, n)) else {
            continue;
        };
        // `file_type` does not follow symlinks.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        files.push(EventFile {
            path: entry.path(),
            day,
            seq,
        });
    }
    files.sort_by_key(|f| (f.day, f.seq));
    Ok(files)
}

/// Whether the file at `path` is a non-empty regular file whose last byte is not a
/// newline: one a crash may have left with a partial last line. Read without a lock and
/// without following a symbolic link; anything unreadable counts as not torn here (the
/// locked open that repairs reports real errors).
fn may_be_torn(path: &Path) -> bool {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path);
    let Ok(file) = file else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file() || meta.len() == 0 {
        return false;
    }
    let mut last = [0u8; 1];
    matches!(file.read_at(&mut last, meta.len() - 1), Ok(1) if last[0] != b'\n')
}
