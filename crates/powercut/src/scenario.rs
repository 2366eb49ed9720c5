//! Whole power-cut runs: mount, run a writer in a child, cut at a seeded point, crash, check —
//! over and over — shared by the tests and the `powercut-soak` command.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use daemonkit_eventlog::{CONSENSUS_PREFIX, Event, EventLog, Level};

use crate::check::{
    EventLogLedger, STATE_FILE_NAME, check_lines, check_state, check_state_file, state_content,
};
use crate::child::{ChildRun, run_until_cut};
use crate::error::{Error, io_err};
use crate::rng::{Rng, derive_seed};
use crate::{CrashReport, PowerCut};

/// How long a child may run before the harness cuts the power anyway.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// One problem found after one cut: the cut's index and seed, and what was lost.
#[derive(Clone, Debug)]
pub struct Loss {
    /// Which cut of the run (0-based).
    pub cut: u64,
    /// The seed of that cut (derived from the run's base seed and the index).
    pub seed: u64,
    /// What was lost or broken.
    pub problem: String,
}

/// What a run of cuts did and found.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// The scenario's name.
    pub name: String,
    /// The base seed: rerunning with it replays the same cut points and crash choices.
    pub base_seed: u64,
    /// Cuts run.
    pub cuts: u64,
    /// What the writers acknowledged in all: events, lines, state generations, or removals.
    pub acked: u64,
    /// Torn tails an open repaired whose side file was verified.
    pub repairs_verified: u64,
    /// Unsynced directory operations the cuts dropped / kept.
    pub dir_ops_dropped: u64,
    /// Unsynced directory operations that survived anyway.
    pub dir_ops_kept: u64,
    /// Unsynced file changes the cuts dropped.
    pub file_ops_dropped: u64,
    /// Writes the cuts tore at a sector or page boundary.
    pub torn_writes: u64,
    /// Everything lost, with the seed of the cut that lost it.
    pub losses: Vec<Loss>,
    /// A copy of the disk as the first losing cut left it (under the run's scratch space),
    /// for a post-mortem: with concurrent writers the seed replays the cut point and crash
    /// choices but not the threads' interleaving.
    pub evidence: Option<PathBuf>,
}

impl Summary {
    fn new(name: &str, base_seed: u64) -> Summary {
        Summary {
            name: name.to_owned(),
            base_seed,
            ..Summary::default()
        }
    }

    fn add(&mut self, report: &CrashReport) {
        self.cuts += 1;
        self.dir_ops_dropped += report.dir_ops_dropped;
        self.dir_ops_kept += report.dir_ops_kept;
        self.file_ops_dropped += report.file_ops_dropped;
        self.torn_writes += report.torn_writes;
    }

    fn lose(&mut self, disk: &Disk, cut: u64, seed: u64, problems: Vec<String>) {
        if !problems.is_empty() && self.evidence.is_none() {
            let to = disk
                .mnt
                .with_file_name(format!("loss-cut{cut}-seed{seed:x}"));
            if copy_tree(&disk.backing, &to).is_ok() {
                self.evidence = Some(to);
            }
        }
        self.losses.extend(
            problems
                .into_iter()
                .map(|problem| Loss { cut, seed, problem }),
        );
    }
}

impl Summary {
    /// Writes the summary to stderr past the test harness's output capture, so a passing
    /// run's cuts, base seed and losses are in the CI log too. `expected` says what the
    /// losses mean for a negative control.
    pub fn report(&self, expected: Option<&str>) {
        use std::io::Write;
        let text = match expected {
            // A negative control's losses are its success: the headline is enough.
            Some(why) => format!(
                "{} (expected: {why})",
                self.to_string().lines().next().unwrap_or_default()
            ),
            None => self.to_string(),
        };
        // `eprintln!` is captured by the test harness; the stderr handle is not.
        let _ = writeln!(std::io::stderr(), "powercut: {text}");
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} cuts (base seed {:#x}), {} acknowledged, {} torn tails repaired; \
             cuts dropped {} dir ops (kept {}), {} file ops, tore {} writes; {} losses",
            self.name,
            self.cuts,
            self.base_seed,
            self.acked,
            self.repairs_verified,
            self.dir_ops_dropped,
            self.dir_ops_kept,
            self.file_ops_dropped,
            self.torn_writes,
            self.losses.len()
        )?;
        if let Some(evidence) = &self.evidence {
            write!(f, "\n  the first losing cut left: {}", evidence.display())?;
        }
        for loss in self.losses.iter().take(10) {
            write!(
                f,
                "\n  cut {} seed {:#x}: {}",
                loss.cut, loss.seed, loss.problem
            )?;
        }
        if self.losses.len() > 10 {
            write!(f, "\n  … and {} more", self.losses.len() - 10)?;
        }
        Ok(())
    }
}

/// Copies the tree at `from` to `to` (regular files and directories).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The base seed for a run: `POWERCUT_SEED` (decimal or `0x` hex) if set, else `default`.
pub fn base_seed(default: u64) -> u64 {
    std::env::var("POWERCUT_SEED")
        .ok()
        .and_then(|s| match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        })
        .unwrap_or(default)
}

/// A scratch area for a run: a backing directory and a mount point under `work`.
struct Disk {
    backing: PathBuf,
    mnt: PathBuf,
}

impl Disk {
    fn new(work: &Path) -> Result<Disk, Error> {
        let disk = Disk {
            backing: work.join("disk"),
            mnt: work.join("mnt"),
        };
        fs::create_dir_all(&disk.mnt).map_err(io_err("mkdir", &disk.mnt))?;
        disk.wipe()?;
        Ok(disk)
    }

    /// A fresh, empty disk.
    fn wipe(&self) -> Result<(), Error> {
        match fs::remove_dir_all(&self.backing) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &self.backing)(e)),
        }
        fs::create_dir(&self.backing).map_err(io_err("mkdir", &self.backing))
    }

    /// Mounts, arms a cut after `cut_after` operations (none if `None`), runs the child made by
    /// `command` (given the mount point) until the cut, and crashes with `seed`.
    fn cut(
        &self,
        cut_after: Option<u64>,
        seed: u64,
        command: impl FnOnce(&Path) -> Command,
    ) -> Result<(ChildRun, CrashReport), Error> {
        let fs = PowerCut::mount(&self.backing, &self.mnt)?;
        if let Some(n) = cut_after {
            fs.cut_after(n);
        }
        let run = run_until_cut(&fs, command(&self.mnt), CHILD_TIMEOUT)?;
        let report = fs.crash(seed)?;
        Ok((run, report))
    }

    /// Runs the child to completion on a mount without a cut and unmounts cleanly; returns its
    /// run and how many operations it made.
    fn clean(&self, command: impl FnOnce(&Path) -> Command) -> Result<(ChildRun, u64), Error> {
        let fs = PowerCut::mount(&self.backing, &self.mnt)?;
        let run = run_until_cut(&fs, command(&self.mnt), CHILD_TIMEOUT)?;
        let ops = fs.ops();
        fs.unmount()?;
        Ok((run, ops))
    }
}

// ===== the event log =====

/// The kinds of event log an [`EventLogRun`] can hold to its cuts.
///
/// Adding one takes a variant here, its `powercut-writer` subcommand (the same output as
/// `eventlog`), and a test naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogKind {
    /// [`EventLog::open_append`](daemonkit_eventlog::EventLog::open_append): one file growing
    /// across opens, torn tails repaired on open.
    Append,
    /// [`RotatingLog`](daemonkit_eventlog::RotatingLog) with a [size limit](ROTATING_MAX_BYTES)
    /// and a clock that moves [`ROTATING_CLOCK_STEP`] on every read, so the writers cross a UTC
    /// midnight every few batches and fill a file every few more. Each child's clock starts
    /// (by the cut's seed) either on the day of the newest file the last crash left — the open
    /// continues that file — or one to three days later — the open starts a new day.
    Rotating,
}

/// How far the rotating writers' clock moves on each read: 3 hours, so a UTC day is 8 reads
/// (the open and one per group-commit batch).
pub const ROTATING_CLOCK_STEP: i64 = 3 * 3600;

/// The rotating writers' size limit: a dozen or so events per file.
pub const ROTATING_MAX_BYTES: u64 = 4096;

/// The rotating scenarios' file-name prefix.
const ROTATING_PREFIX: &str = "events";

/// The first day of the rotating scenarios, 2026-01-01T00:00:00Z, in Unix seconds.
const ROTATING_EPOCH: i64 = 1_767_225_600;

const DAY: i64 = 86_400;

/// Where a rotating writer's clock starts after a crash left `dir`: on the day of its newest
/// file (at 01:00, so the open continues it) or, by `rng`, one to three days later (at 00:00 plus
/// up to 21 hours, so the open starts a new day and the first midnight falls at any batch).
fn rotating_start(dir: &Path, rng: &mut Rng) -> u64 {
    let newest = daemonkit_eventlog::list_event_files(dir, ROTATING_PREFIX)
        .ok()
        .and_then(|mut files| files.pop());
    let start = match newest {
        None => ROTATING_EPOCH + (rng.below(8) as i64) * ROTATING_CLOCK_STEP,
        Some(file) => {
            let midnight = ROTATING_EPOCH
                + file
                    .day
                    .duration_since(jiff::civil::date(2026, 1, 1))
                    .as_secs();
            if rng.chance(1, 2) {
                midnight + 3600
            } else {
                midnight
                    + (1 + rng.below(3) as i64) * DAY
                    + (rng.below(8) as i64) * ROTATING_CLOCK_STEP
            }
        }
    };
    u64::try_from(start).unwrap_or(0)
}

/// The event log under power cuts: `writers` threads of one child log `events` each per cut
/// into `logs/events.jsonl` with [`EventLog::open_append`](daemonkit_eventlog::EventLog) (or
/// into the rotating set `logs/events-YYYYMMDD[-n].jsonl`, see [`LogKind::Rotating`]), and the
/// power fails after a seeded number of operations. After every cut: every acknowledged event
/// is present exactly once and in order per writer (across the set's files, in their order),
/// every whole line verifies, only the newest file ends in a partial line, and the next open
/// cuts exactly the partial line the cut left and saves exactly those bytes in its side file.
/// Every `cuts_per_disk` cuts the disk starts afresh (after a final open, whose repair is
/// checked too, and a read of every file whole).
#[derive(Clone, Debug)]
pub struct EventLogRun {
    /// The `powercut-writer` binary.
    pub writer: PathBuf,
    /// Which kind of log the writers write.
    pub log: LogKind,
    /// Concurrent writer threads.
    pub writers: u64,
    /// Events each writer logs per cut (at most).
    pub events: u64,
    /// Cuts to run.
    pub cuts: u64,
    /// Cuts on one disk before it starts afresh.
    pub cuts_per_disk: u64,
    /// The base seed.
    pub seed: u64,
}

impl EventLogRun {
    /// Runs the cuts in scratch space under `work`.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails (mount, child, backing directory); losses are in
    /// the [`Summary`].
    pub fn run(&self, work: &Path) -> Result<Summary, Error> {
        self.run_cycles(work, true)
    }

    /// The same cycles without the power cuts: each run of the writers ends, and the disk is
    /// unmounted cleanly. The checks still apply; a baseline for timing the cuts.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn run_uncut(&self, work: &Path) -> Result<Summary, Error> {
        self.run_cycles(work, false)
    }

    fn run_cycles(&self, work: &Path, cut: bool) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let name = match self.log {
            LogKind::Append => "event log",
            LogKind::Rotating => "rotating event log",
        };
        let mut summary = Summary::new(name, self.seed);
        let mut ledger = EventLogLedger::new();
        // Operations a cut-free run makes: at first the most it could (a write and a sync per
        // event, a few to open); then what the last run that finished before its cut made, so
        // cuts fall across the whole run however much group commit batches.
        let mut run_ops = 2 * self.writers * self.events + 8;
        let log_dir = "logs";
        for i in 0..self.cuts {
            if i % self.cuts_per_disk.max(1) == 0 {
                if i > 0 {
                    self.finish_disk(&disk, &mut ledger, &mut summary, i)?;
                }
                disk.wipe()?;
                fs::create_dir(disk.backing.join(log_dir))
                    .map_err(io_err("mkdir", disk.backing.join(log_dir)))?;
                ledger = EventLogLedger::new();
            }
            let seed = derive_seed(self.seed, i);
            let mut rng = Rng::new(seed);
            let cut_after = rng.below(run_ops + 1);
            let start = rotating_start(&disk.backing.join(log_dir), &mut rng);
            let tag = format!("c{i}");
            let command = |mnt: &Path| {
                self.command(&mnt.join(log_dir), &tag, self.writers, self.events, start)
            };
            let (run, report) = if cut {
                disk.cut(Some(cut_after), seed, command)?
            } else {
                let (run, ops) = disk.clean(command)?;
                let report = CrashReport {
                    seed,
                    ops,
                    ..CrashReport::default()
                };
                (run, report)
            };
            summary.add(&report);
            if run.finished {
                run_ops = report.ops;
            }
            let mut problems = ledger.record(&run.stdout);
            problems.extend(self.check(&mut ledger, &disk.backing.join(log_dir)));
            summary.lose(&disk, i, seed, problems);
        }
        self.finish_disk(&disk, &mut ledger, &mut summary, self.cuts)?;
        Ok(summary)
    }

    /// The writer's command line: log into `dir`.
    fn command(&self, dir: &Path, tag: &str, writers: u64, events: u64, start: u64) -> Command {
        let mut c = Command::new(&self.writer);
        match self.log {
            LogKind::Append => c.arg("eventlog").arg(dir).arg("events.jsonl"),
            LogKind::Rotating => c.arg("rotating").arg(dir).arg(ROTATING_PREFIX),
        };
        c.arg(tag).arg(writers.to_string()).arg(events.to_string());
        if self.log == LogKind::Rotating {
            c.arg(start.to_string());
        }
        c
    }

    /// Checks the log in `dir` (of the backing directory) against `ledger`.
    fn check(&self, ledger: &mut EventLogLedger, dir: &Path) -> Vec<String> {
        match self.log {
            LogKind::Append => ledger.check(&dir.join("events.jsonl")),
            LogKind::Rotating => ledger.check_set(dir, ROTATING_PREFIX),
        }
    }

    /// Opens the log once more without a cut (repairing the last cut's tail), then reads it
    /// whole: every line must verify.
    fn finish_disk(
        &self,
        disk: &Disk,
        ledger: &mut EventLogLedger,
        summary: &mut Summary,
        i: u64,
    ) -> Result<(), Error> {
        let dir = disk.backing.join("logs");
        let start = rotating_start(&dir, &mut Rng::new(derive_seed(!self.seed, i)));
        let (run, _) = disk.clean(|mnt| self.command(&mnt.join("logs"), "final", 0, 0, start))?;
        let mut problems = ledger.record(&run.stdout);
        problems.extend(self.check(ledger, &dir));
        problems.extend(verify_every_line(&dir, self.log, "after the final open"));
        summary.acked += ledger.events_acked;
        summary.repairs_verified += ledger.repairs_verified;
        summary.lose(disk, i, 0, problems);
        Ok(())
    }
}

/// Reads every file of the log in `dir` whole (the files of the set for a rotating log): every
/// line must verify, torn tails included.
fn verify_every_line(dir: &Path, log: LogKind, stage: &str) -> Vec<String> {
    let paths = match log {
        LogKind::Append => vec![dir.join("events.jsonl")],
        LogKind::Rotating => daemonkit_eventlog::list_event_files(dir, ROTATING_PREFIX)
            .map(|files| files.into_iter().map(|f| f.path).collect())
            .unwrap_or_default(),
    };
    let mut problems = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match daemonkit_eventlog::read_events(&path) {
            Ok(events) => {
                for (n, event) in events.enumerate() {
                    if let Err(e) = event {
                        problems.push(format!("{stage}, {name} line {}: {e}", n + 1));
                    }
                }
            }
            Err(e) if log == LogKind::Rotating => {
                problems.push(format!("{stage}, {name}: {e}"));
            }
            Err(_) => {}
        }
    }
    problems
}

/// A fresh log in a fresh directory: the child makes the directory (`create_dir_all`, as a
/// daemon does on its first start), opens the log and logs `events` events. The run first counts
/// the operations this takes, then cuts after each of them in turn (`seeds_per_step` crash
/// states each).
#[derive(Clone, Debug)]
pub struct FreshLogRun {
    /// The `powercut-writer` binary.
    pub writer: PathBuf,
    /// Events to log.
    pub events: u64,
    /// Crash states tried per cut point.
    pub seeds_per_step: u64,
    /// The base seed.
    pub seed: u64,
}

impl FreshLogRun {
    /// Runs every cut point in scratch space under `work`.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn run(&self, work: &Path) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new("fresh log in a fresh directory", self.seed);
        let (_, steps) = disk.clean(|mnt| self.command(mnt))?;
        let mut index = 0;
        for step in 0..=steps {
            for _ in 0..self.seeds_per_step {
                let seed = derive_seed(self.seed, index);
                self.cut(&disk, &mut summary, index, step, seed)?;
                index += 1;
            }
        }
        Ok(summary)
    }

    /// Replays one crash state, `seed` (as printed by a failed run), at every cut point: the
    /// operation a cut fell after shifts whenever the writer's code changes, so a regression
    /// test pins the seed, not the step.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn replay(&self, work: &Path, seed: u64) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new("fresh log in a fresh directory (replay)", seed);
        let (_, steps) = disk.clean(|mnt| self.command(mnt))?;
        for step in 0..=steps {
            self.cut(&disk, &mut summary, step, step, seed)?;
        }
        Ok(summary)
    }

    fn command(&self, mnt: &Path) -> Command {
        let mut c = Command::new(&self.writer);
        c.arg("fresh-log").arg(mnt.join(FRESH_DIR)).args([
            "events.jsonl",
            "fresh",
            &self.events.to_string(),
        ]);
        c
    }

    fn cut(
        &self,
        disk: &Disk,
        summary: &mut Summary,
        index: u64,
        step: u64,
        seed: u64,
    ) -> Result<(), Error> {
        disk.wipe()?;
        let (run, report) = disk.cut(Some(step), seed, |mnt| self.command(mnt))?;
        summary.add(&report);
        let mut ledger = EventLogLedger::new();
        let mut problems = ledger.record(&run.stdout);
        problems.extend(ledger.check(&disk.backing.join(FRESH_DIR).join("events.jsonl")));
        summary.acked += ledger.events_acked;
        let problems = problems
            .into_iter()
            .map(|p| format!("cut after op {step}: {p}"))
            .collect();
        summary.lose(disk, index, seed, problems);
        Ok(())
    }
}

/// A rotation at a UTC midnight cut at every step: the disk holds day D's file of a rotating
/// set (events written and synced by the kit itself, 468 bytes); the child opens the set at
/// 19:00 on D (continuing D's file), its first batch reads 22:00 and appends to D's file across
/// its first sector boundary (so a cut can tear it), and its second reads 01:00 on D+1 and
/// rotates — creates, locks and syncs D+1's file and its directory; `events` events in all. The run
/// counts the operations this takes, then cuts after each in turn (`seeds_per_step` crash
/// states each). After every cut the set holds every event acknowledged (D's and the child's),
/// exactly once and in order; then an uncut open (on D+1, or by the seed a later day) repairs
/// the torn tail the cut left, saving exactly the cut bytes aside, and every line of every file
/// verifies.
#[derive(Clone, Debug)]
pub struct RotationStepRun {
    /// The `powercut-writer` binary.
    pub writer: PathBuf,
    /// Events the child logs after the midnight.
    pub events: u64,
    /// Crash states tried per cut point.
    pub seeds_per_step: u64,
    /// The base seed.
    pub seed: u64,
}

/// Events of day D in [`RotationStepRun`]'s set before the child runs.
const DAY_D_EVENTS: u64 = 4;

impl RotationStepRun {
    /// Runs every cut point in scratch space under `work`.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn run(&self, work: &Path) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new("rotation at a day boundary, every step", self.seed);
        self.prepare(&disk)?;
        let (_, steps) = disk.clean(|mnt| self.command(mnt))?;
        let mut index = 0;
        for step in 0..=steps {
            for _ in 0..self.seeds_per_step {
                let seed = derive_seed(self.seed, index);
                self.cut(&disk, &mut summary, index, step, seed)?;
                index += 1;
            }
        }
        Ok(summary)
    }

    /// Replays one crash state, `seed`, at every cut point (see [`FreshLogRun::replay`]).
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn replay(&self, work: &Path, seed: u64) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new("rotation at a day boundary (replay)", seed);
        self.prepare(&disk)?;
        let (_, steps) = disk.clean(|mnt| self.command(mnt))?;
        for step in 0..=steps {
            self.cut(&disk, &mut summary, step, step, seed)?;
        }
        Ok(summary)
    }

    /// A fresh disk holding day D's file with [`DAY_D_EVENTS`] events, durably.
    fn prepare(&self, disk: &Disk) -> Result<(), Error> {
        disk.wipe()?;
        let dir = disk.backing.join("logs");
        fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
        let kit = |e: daemonkit_eventlog::Error| io_err("write", &dir)(std::io::Error::other(e));
        let noon = jiff::Timestamp::from_second(ROTATING_EPOCH + DAY / 2)
            .map_err(|e| io_err("write", &dir)(std::io::Error::other(e)))?;
        let rotation = daemonkit_eventlog::Rotation::daily(ROTATING_PREFIX)
            .map_err(kit)?
            .clock(move || noon);
        let log = daemonkit_eventlog::RotatingLog::open(&dir, rotation).map_err(kit)?;
        for seq in 0..DAY_D_EVENTS {
            log.log(&Event::new(
                Level::Info,
                "PowerCut",
                seq.to_string(),
                "d",
                "w0",
            ))
            .map_err(kit)?;
        }
        Ok(())
    }

    fn command(&self, mnt: &Path) -> Command {
        let mut c = Command::new(&self.writer);
        // 19:00 on D: the open reads D, the first batch 22:00, the second 01:00 on D+1.
        let start = ROTATING_EPOCH + DAY - 5 * 3600;
        c.arg("rotating")
            .arg(mnt.join("logs"))
            .arg(ROTATING_PREFIX)
            .args(["new", "1", &self.events.to_string(), &start.to_string()]);
        c
    }

    fn cut(
        &self,
        disk: &Disk,
        summary: &mut Summary,
        index: u64,
        step: u64,
        seed: u64,
    ) -> Result<(), Error> {
        self.prepare(disk)?;
        let (run, report) = disk.cut(Some(step), seed, |mnt| self.command(mnt))?;
        summary.add(&report);
        let dir = disk.backing.join("logs");
        let mut ledger = EventLogLedger::new();
        let day_d: Vec<String> = (0..DAY_D_EVENTS).map(|n| format!("ack d w0 {n}")).collect();
        let mut problems = ledger.record(&day_d);
        problems.extend(ledger.record(&run.stdout));
        problems.extend(ledger.check_set(&dir, ROTATING_PREFIX));
        // The next start, uncut: it must repair what the cut left, wherever it opens.
        let start = rotating_start(&dir, &mut Rng::new(seed));
        let (next, _) = disk.clean(|mnt| {
            let mut c = Command::new(&self.writer);
            c.arg("rotating")
                .arg(mnt.join("logs"))
                .arg(ROTATING_PREFIX)
                .args(["next", "0", "0", &start.to_string()]);
            c
        })?;
        if !next.finished {
            problems.push(format!(
                "the next open did not finish: {}",
                next.stderr_tail
            ));
        }
        problems.extend(ledger.record(&next.stdout));
        problems.extend(ledger.check_set(&dir, ROTATING_PREFIX));
        problems.extend(verify_every_line(
            &dir,
            LogKind::Rotating,
            "after the next open",
        ));
        summary.acked += ledger.events_acked - DAY_D_EVENTS;
        summary.repairs_verified += ledger.repairs_verified;
        let problems = problems
            .into_iter()
            .map(|p| format!("cut after op {step}: {p}"))
            .collect();
        summary.lose(disk, index, seed, problems);
        Ok(())
    }
}

/// Where [`FreshLogRun`] makes its log: three directories deep, none of which exist before.
const FRESH_DIR: &str = "var/lib/daemon/events";

/// A per-operation log over the file of an earlier run of the same operation:
/// [`EventLog::create_operation`](daemonkit_eventlog::EventLog::create_operation) truncates it
/// and the child logs `events` events. Cut after every operation (`seeds_per_step` crash states
/// each): the earlier run's events are all there or all gone — and all gone once
/// `create_operation` has returned, so they can never mix with this run's — and every event
/// acknowledged is there, in order.
#[derive(Clone, Debug)]
pub struct OperationLogRun {
    /// The `powercut-writer` binary.
    pub writer: PathBuf,
    /// Events to log.
    pub events: u64,
    /// Crash states tried per cut point.
    pub seeds_per_step: u64,
    /// The base seed.
    pub seed: u64,
}

/// Events of the earlier run in [`OperationLogRun`]'s file.
const EARLIER_EVENTS: u64 = 3;

impl OperationLogRun {
    /// Runs every cut point in scratch space under `work`.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn run(&self, work: &Path) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new("per-operation log over an earlier run", self.seed);
        let command = |mnt: &Path| {
            let mut c = Command::new(&self.writer);
            c.arg("operation").arg(mnt.join("ops")).args([
                "upgrade-1",
                "new",
                &self.events.to_string(),
            ]);
            c
        };
        self.prepare(&disk)?;
        let (_, steps) = disk.clean(command)?;
        let mut index = 0;
        for step in 0..=steps {
            for _ in 0..self.seeds_per_step {
                let seed = derive_seed(self.seed, index);
                self.prepare(&disk)?;
                let (run, report) = disk.cut(Some(step), seed, command)?;
                summary.add(&report);
                let problems = self
                    .check(
                        &disk.backing.join("ops/consensus-upgrade-1.jsonl"),
                        &run.stdout,
                    )
                    .into_iter()
                    .map(|p| format!("cut after op {step}: {p}"))
                    .collect();
                summary.acked += run.stdout.iter().filter(|l| l.starts_with("ack ")).count() as u64;
                summary.lose(&disk, index, seed, problems);
                index += 1;
            }
        }
        Ok(summary)
    }

    /// A fresh disk holding the earlier run's log, durably.
    fn prepare(&self, disk: &Disk) -> Result<(), Error> {
        disk.wipe()?;
        let ops = disk.backing.join("ops");
        fs::create_dir(&ops).map_err(io_err("mkdir", &ops))?;
        // Written by the event log itself, straight to the disk: durable as it stands.
        let log = EventLog::create_operation(&ops, CONSENSUS_PREFIX, "upgrade-1")
            .map_err(|e| io_err("write", &ops)(std::io::Error::other(e)))?;
        for seq in 0..EARLIER_EVENTS {
            log.log(&Event::new(
                Level::Info,
                "PowerCut",
                seq.to_string(),
                "old",
                "w0",
            ))
            .map_err(|e| io_err("write", &ops)(std::io::Error::other(e)))?;
        }
        Ok(())
    }

    fn check(&self, path: &Path, stdout: &[String]) -> Vec<String> {
        let created = stdout.iter().any(|l| l == "created");
        let acked = stdout.iter().filter(|l| l.starts_with("ack ")).count() as u64;
        // Only whole lines count: a partial last line is the next open's to cut.
        let mut problems = Vec::new();
        let mut old = 0;
        let mut new = Vec::new();
        match daemonkit_eventlog::read_events(path) {
            Err(e) if acked > 0 => {
                problems.push(format!("{acked} acknowledged, log unreadable: {e}"))
            }
            Err(_) => {}
            Ok(events) => {
                for event in events.flatten() {
                    match event.operation_id.as_str() {
                        "old" => old += 1,
                        _ => new.push(event.msg.parse::<u64>().unwrap_or(u64::MAX)),
                    }
                }
            }
        }
        if old != 0 && old != EARLIER_EVENTS {
            problems.push(format!(
                "{old} of the earlier run's {EARLIER_EVENTS} events survived"
            ));
        }
        if old != 0 && (created || !new.is_empty()) {
            problems.push(format!(
                "the earlier run's events survived a create_operation that returned ({} new events)",
                new.len()
            ));
        }
        let expect: Vec<u64> = (0..new.len() as u64).collect();
        if new != expect {
            problems.push(format!(
                "this run's events out of order or duplicated: {new:?}"
            ));
        }
        if (new.len() as u64) < acked || new.len() as u64 > acked + 1 {
            problems.push(format!(
                "{acked} events acknowledged, {} in the log",
                new.len()
            ));
        }
        problems
    }
}

// ===== the negative controls =====

/// Which broken writer a [`ControlRun`] runs: each loses acknowledged data under some cuts, and
/// the harness's own tests assert that it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// Prints each line's acknowledgement before `fdatasync`ing it.
    AckBeforeSync,
    /// Creates its file and syncs every line, but never syncs the directory.
    NoDirSync,
    /// Replaces a state file by renaming a temporary file it did not sync first (then syncs the
    /// directory): the shape of the kit's [`StateFile`](daemonkit_eventlog::StateFile) less
    /// one `fsync`, which [`StateFileRun`] holds to the same check.
    RenameWithoutSync,
}

/// Runs a [`Control`] writer `cuts` times, each cut at a seeded point of its run.
#[derive(Clone, Debug)]
pub struct ControlRun {
    /// The `powercut-writer` binary.
    pub writer: PathBuf,
    /// The writer.
    pub control: Control,
    /// Lines (or state generations) the writer writes per cut.
    pub writes: u64,
    /// Cuts to run.
    pub cuts: u64,
    /// The base seed.
    pub seed: u64,
}

impl ControlRun {
    /// Runs the cuts in scratch space under `work`.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn run(&self, work: &Path) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new(&format!("{:?}", self.control), self.seed);
        let state_file = disk.backing.join("state");
        for i in 0..self.cuts {
            let seed = derive_seed(self.seed, i);
            disk.wipe()?;
            fs::write(&state_file, state_content(0)).map_err(io_err("write", &state_file))?;
            let command = |mnt: &Path| {
                let mut c = Command::new(&self.writer);
                let n = self.writes.to_string();
                match self.control {
                    Control::AckBeforeSync => c.arg("ack-before-sync"),
                    Control::NoDirSync => c.arg("no-dir-sync"),
                    Control::RenameWithoutSync => c.arg("rename-without-sync"),
                };
                c.arg(mnt);
                match self.control {
                    Control::AckBeforeSync | Control::NoDirSync => c.args(["lines.txt", "t", &n]),
                    Control::RenameWithoutSync => c.arg(&n),
                };
                c
            };
            // Writers are single-threaded, so their operation counts are the same every run.
            let ops = 2 + 4 * self.writes;
            let (run, report) = disk.cut(Some(Rng::new(seed).below(ops)), seed, command)?;
            summary.add(&report);
            let problems = match self.control {
                Control::AckBeforeSync | Control::NoDirSync => {
                    check_lines(&disk.backing.join("lines.txt"), &run.stdout)
                }
                Control::RenameWithoutSync => check_state(&state_file, last_generation(&run, 0)).0,
            };
            summary.acked += run.stdout.iter().filter(|l| l.starts_with("ack ")).count() as u64;
            summary.lose(&disk, i, seed, problems);
        }
        Ok(summary)
    }
}

/// The last generation a state writer acknowledged (`ack GENERATION`), or `before` if none.
fn last_generation(run: &ChildRun, before: u64) -> u64 {
    run.stdout
        .iter()
        .filter_map(|l| l.strip_prefix("ack ")?.parse::<u64>().ok())
        .max()
        .unwrap_or(before)
}

// ===== the durable state file =====

/// The kit's [`StateFile`](daemonkit_eventlog::StateFile) under power cuts: a child replaces the
/// state with `generations` new generations (3 KiB each, so a torn write can split one), and the
/// power fails after a seeded number of operations. After every cut the state file, read
/// through the kit's own reader, must be there, intact, and exactly the last acknowledged
/// generation or the one in flight after it — never missing, never a mix. A disk is kept for
/// `cuts_per_disk` cuts, so later writers start from what a crash left (a temporary file that
/// survived, a rename undone).
#[derive(Clone, Debug)]
pub struct StateFileRun {
    /// The `powercut-writer` binary.
    pub writer: PathBuf,
    /// Generations the child writes per cut (at most).
    pub generations: u64,
    /// Cuts to run.
    pub cuts: u64,
    /// Cuts on one disk before it starts afresh.
    pub cuts_per_disk: u64,
    /// The base seed.
    pub seed: u64,
}

impl StateFileRun {
    /// Runs the cuts, each at a seeded operation of the child's run, in scratch space under
    /// `work`.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn run(&self, work: &Path) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new("state file", self.seed);
        // Operations a cut-free run makes, counted once on a fresh disk.
        self.fresh(&disk)?;
        let (_, run_ops) = disk.clean(|mnt| self.command(mnt))?;
        let mut generation = 0;
        for i in 0..self.cuts {
            if i % self.cuts_per_disk.max(1) == 0 {
                self.fresh(&disk)?;
                generation = 0;
            }
            let seed = derive_seed(self.seed, i);
            let cut_after = Rng::new(seed).below(run_ops + 1);
            generation = self.cut(&disk, &mut summary, i, cut_after, seed, generation)?;
        }
        Ok(summary)
    }

    /// Cuts after every operation of a one-generation replacement in turn, `seeds_per_step`
    /// crash states each, on a fresh disk every time.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn run_every_step(&self, work: &Path, seeds_per_step: u64) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new("state file, every step", self.seed);
        let one = StateFileRun {
            generations: 1,
            ..self.clone()
        };
        self.fresh(&disk)?;
        let (_, steps) = disk.clean(|mnt| one.command(mnt))?;
        let mut index = 0;
        for step in 0..=steps {
            for _ in 0..seeds_per_step {
                self.fresh(&disk)?;
                let seed = derive_seed(self.seed, index);
                one.cut(&disk, &mut summary, index, step, seed, 0)?;
                index += 1;
            }
        }
        Ok(summary)
    }

    /// A fresh disk holding generation 0, written (and synced) by the kit itself.
    fn fresh(&self, disk: &Disk) -> Result<(), Error> {
        disk.wipe()?;
        daemonkit_eventlog::StateFile::new(&disk.backing, STATE_FILE_NAME)
            .and_then(|state| state.write(&state_content(0)))
            .map_err(|e| Error::Io {
                op: "write generation 0 of",
                path: disk.backing.join(STATE_FILE_NAME),
                source: std::io::Error::other(e),
            })
    }

    fn command(&self, mnt: &Path) -> Command {
        let mut c = Command::new(&self.writer);
        c.arg("statefile")
            .arg(mnt)
            .arg(self.generations.to_string());
        c
    }

    /// One cut of a child starting from `generation`; returns the generation the crash left.
    fn cut(
        &self,
        disk: &Disk,
        summary: &mut Summary,
        index: u64,
        cut_after: u64,
        seed: u64,
        generation: u64,
    ) -> Result<u64, Error> {
        let (run, report) = disk.cut(Some(cut_after), seed, |mnt| self.command(mnt))?;
        summary.add(&report);
        summary.acked += run.stdout.iter().filter(|l| l.starts_with("ack ")).count() as u64;
        let last = last_generation(&run, generation);
        let (problems, found) = check_state_file(&disk.backing, last);
        let problems: Vec<String> = problems
            .into_iter()
            .map(|p| format!("cut after op {cut_after}: {p}"))
            .collect();
        let lost = !problems.is_empty();
        summary.lose(disk, index, seed, problems);
        if lost {
            // Start the next cut from a known state rather than from the damage.
            self.fresh(disk)?;
            return Ok(0);
        }
        Ok(found.unwrap_or(last))
    }
}

// ===== the pruner =====

/// The pruner under power cuts: a directory of dated audit files, some older than the 30 days
/// kept, more than `keep` of the rest, one without a timestamp and one that does not match; a
/// pass is cut after a seeded number of its unlinks. After the cut every file the pass must keep
/// is there, whole; and a second, uncut pass over what the cut left — some unlinks reverted —
/// ends with exactly the files a single uncut pass keeps.
#[derive(Clone, Debug)]
pub struct PrunerRun {
    /// The `powercut-writer` binary.
    pub writer: PathBuf,
    /// Cuts to run.
    pub cuts: u64,
    /// The base seed.
    pub seed: u64,
}

/// The pruner scenario's files: (name, kept by a complete pass).
const PRUNER_FILES: [(&str, bool); 12] = [
    ("audit-20250101T000000Z.jsonl", false), // older than 30 days: prunable
    ("audit-20250601T000000Z.jsonl", false),
    ("audit-20251231T235959Z.jsonl", false),
    ("audit-20260105T000000Z.jsonl", false), // over the cap of 4, oldest first
    ("audit-20260110T000000Z.jsonl", false),
    ("audit-20260115T000000Z.jsonl", true),
    ("audit-20260120T000000Z.jsonl", true),
    ("audit-20260125T000000Z.jsonl", true),
    ("audit-20260130T000000Z.jsonl", true),
    ("audit-current.jsonl", true), // no timestamp: protected
    ("notes.txt", true),           // does not match the pattern
    ("audit-20260201T000000Z.jsonl.torn-x", true),
];

/// "Now" for the pruner scenario: every dated file from 2026-01-05 on is within 30 days.
const PRUNER_NOW: &str = "2026-02-01T00:00:00Z";

impl PrunerRun {
    /// Runs the cuts in scratch space under `work`.
    ///
    /// # Errors
    ///
    /// [`Error`] if the harness itself fails.
    pub fn run(&self, work: &Path) -> Result<Summary, Error> {
        let disk = Disk::new(work)?;
        let mut summary = Summary::new("pruner", self.seed);
        let dir = "audit";
        let command = |mnt: &Path| {
            let mut c = Command::new(&self.writer);
            c.arg("prune").arg(mnt.join(dir)).args(["4", PRUNER_NOW]);
            c
        };
        let content = |name: &str| format!("{{\"file\":\"{name}\"}}\n");
        let removals = PRUNER_FILES.iter().filter(|(_, keep)| !keep).count() as u64;
        for i in 0..self.cuts {
            let seed = derive_seed(self.seed, i);
            disk.wipe()?;
            let audit = disk.backing.join(dir);
            fs::create_dir(&audit).map_err(io_err("mkdir", &audit))?;
            for (name, _) in PRUNER_FILES {
                let path = audit.join(name);
                fs::write(&path, content(name)).map_err(io_err("write", &path))?;
            }
            let (run, report) =
                disk.cut(Some(Rng::new(seed).below(removals + 1)), seed, command)?;
            summary.add(&report);
            summary.acked += run
                .stdout
                .iter()
                .filter(|l| l.starts_with("pruned "))
                .count() as u64;
            let mut problems = Vec::new();
            let check = |stage: &str, problems: &mut Vec<String>, exact: bool| {
                for (name, keep) in PRUNER_FILES {
                    let path = audit.join(name);
                    match fs::read_to_string(&path) {
                        Ok(text) if text != content(name) => {
                            problems.push(format!("{stage}: {name} changed"))
                        }
                        Ok(_) if exact && !keep => {
                            problems.push(format!("{stage}: {name} should have been pruned"))
                        }
                        Err(_) if keep => problems.push(format!("{stage}: {name} removed")),
                        _ => {}
                    }
                }
            };
            check("after the cut", &mut problems, false);
            let (second, _) = disk.clean(command)?;
            if !second.finished {
                problems.push(format!(
                    "second pass did not finish: {}",
                    second.stderr_tail
                ));
            }
            check("after a second pass", &mut problems, true);
            summary.lose(&disk, i, seed, problems);
        }
        Ok(summary)
    }
}
