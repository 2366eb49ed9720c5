//! The writers the power-cut tests run in child processes, each printing a line on stdout for
//! every write it acknowledges, after acknowledging it.
//!
//! ```text
//! powercut-writer eventlog DIR FILE TAG WRITERS EVENTS   daemonkit-eventlog, WRITERS threads
//! powercut-writer rotating DIR PREFIX TAG WRITERS EVENTS START
//!                                                        RotatingLog, WRITERS threads, its clock
//!                                                        from START (Unix seconds) on, each
//!                                                        read a ROTATING_CLOCK_STEP later
//! powercut-writer fresh-log DIR FILE TAG EVENTS          create DIR (create_dir_all), then log
//! powercut-writer operation DIR OPERATION TAG EVENTS     EventLog::create_operation, then log
//! powercut-writer ack-before-sync DIR FILE TAG EVENTS    negative control: ack, then fdatasync
//! powercut-writer no-dir-sync DIR FILE TAG EVENTS        negative control: never fsync DIR
//! powercut-writer statefile DIR GENERATIONS              daemonkit_eventlog::StateFile, DIR/state
//! powercut-writer rename-without-sync DIR GENERATIONS    negative control: temp file + rename,
//!                                                        without the temp file's fdatasync
//! powercut-writer prune DIR KEEP NOW                     one daemonkit-filepruner pass
//! ```
//!
//! Output lines: `open KEPT CUT SIDE_FILE|-` once the event log is open (what its torn-tail
//! repair did), `created` once `create_operation` returned, `ack TAG NODE SEQ` per acknowledged
//! event, `ack TAG SEQ` per acknowledged line of
//! the plain writers, `ack GENERATION` per state file generation, `pruned NAME` per removal.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use daemonkit_eventlog::{
    CONSENSUS_PREFIX, Event, EventLog, Level, RotatingLog, Rotation, StateFile, TornTailRepair,
};
use daemonkit_filepruner::{FilenameTimestamp, Pattern, Pruner};
use powercut::check::{STATE_FILE_NAME, state_content, state_generation};
use powercut::scenario::{ROTATING_CLOCK_STEP, ROTATING_MAX_BYTES};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        ["eventlog", dir, file, tag, writers, events] => {
            eventlog(dir, file, tag, num(writers), num(events))
        }
        ["rotating", dir, prefix, tag, writers, events, start] => {
            rotating(dir, prefix, tag, num(writers), num(events), num(start))
        }
        ["fresh-log", dir, file, tag, events] => fresh_log(dir, file, tag, num(events)),
        ["operation", dir, id, tag, events] => operation(dir, id, tag, num(events)),
        ["ack-before-sync", dir, file, tag, events] => lines(dir, file, tag, num(events), true),
        ["no-dir-sync", dir, file, tag, events] => lines(dir, file, tag, num(events), false),
        ["statefile", dir, generations] => state_file(dir, num(generations)),
        ["rename-without-sync", dir, generations] => rename_without_sync(dir, num(generations)),
        ["prune", dir, keep, now] => prune(dir, num(keep), now),
        _ => Err("usage: see the source of powercut-writer".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("powercut-writer: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn num(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

fn ack(line: std::fmt::Arguments<'_>) {
    // One locked, newline-terminated write per line: stdout is line-buffered, so each
    // acknowledgement reaches the pipe whole before the next write begins.
    println!("{line}");
}

fn eventlog(dir: &str, file: &str, tag: &str, writers: u64, events: u64) -> Result {
    let log = EventLog::open_append(dir, file)?;
    log_concurrently(log.torn_tail_repair(), tag, writers, events, |e| log.log(e))
}

fn rotating(dir: &str, prefix: &str, tag: &str, writers: u64, events: u64, start: u64) -> Result {
    // A clock that moves a step on every read, so the writers cross a UTC midnight every few
    // batches; the harness starts each child where the day it wants the log to open is.
    let seconds = Arc::new(AtomicI64::new(i64::try_from(start)?));
    let clock = move || {
        let now = seconds.fetch_add(ROTATING_CLOCK_STEP, Ordering::SeqCst);
        // The harness's days are all within jiff's range (years 2026 to a few centuries on).
        jiff::Timestamp::from_second(now).unwrap_or(jiff::Timestamp::MAX)
    };
    let limit = std::num::NonZeroU64::new(ROTATING_MAX_BYTES).ok_or("zero size limit")?;
    let rotation = Rotation::daily(prefix)?.max_bytes(limit).clock(clock);
    let log = RotatingLog::open(dir, rotation)?;
    log_concurrently(log.torn_tail_repair(), tag, writers, events, |e| log.log(e))
}

/// Reports `repair` (`open KEPT CUT SIDE_FILE|-`), then logs `events` events from each of
/// `writers` threads through `log`, printing `ack TAG NODE SEQ` after each acknowledgement.
fn log_concurrently(
    repair: Option<&TornTailRepair>,
    tag: &str,
    writers: u64,
    events: u64,
    log: impl Fn(&Event) -> std::result::Result<(), daemonkit_eventlog::Error> + Sync,
) -> Result {
    match repair {
        Some(r) => {
            let side = r
                .side_file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            ack(format_args!(
                "open {} {} {}",
                r.kept_len,
                r.cut_len,
                side.unwrap_or_default()
            ));
        }
        None => ack(format_args!("open - 0 -")),
    }
    std::thread::scope(|s| {
        for w in 0..writers {
            let log = &log;
            s.spawn(move || {
                for seq in 0..events {
                    let node = format!("w{w}");
                    let event = Event::new(Level::Info, "PowerCut", seq.to_string(), tag, &node);
                    if log(&event).is_err() {
                        // The power is off: nothing more will be acknowledged.
                        return;
                    }
                    ack(format_args!("ack {tag} {node} {seq}"));
                }
            });
        }
    });
    Ok(())
}

fn fresh_log(dir: &str, file: &str, tag: &str, events: u64) -> Result {
    // As a daemon does on its first start (the demo's events.rs): make the directory, open.
    std::fs::create_dir_all(dir)?;
    let log = EventLog::open_append(dir, file)?;
    for seq in 0..events {
        log.log(&Event::new(
            Level::Info,
            "PowerCut",
            seq.to_string(),
            tag,
            "w0",
        ))?;
        ack(format_args!("ack {tag} w0 {seq}"));
    }
    Ok(())
}

fn operation(dir: &str, operation: &str, tag: &str, events: u64) -> Result {
    let log = EventLog::create_operation(dir, CONSENSUS_PREFIX, operation)?;
    ack(format_args!("created"));
    for seq in 0..events {
        log.log(&Event::new(
            Level::Info,
            "PowerCut",
            seq.to_string(),
            tag,
            "w0",
        ))?;
        ack(format_args!("ack {tag} w0 {seq}"));
    }
    Ok(())
}

/// The plain line writers of the negative controls.
fn lines(dir: &str, file: &str, tag: &str, events: u64, ack_first: bool) -> Result {
    let path = Path::new(dir).join(file);
    let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
    if ack_first {
        // This one syncs its directory, so only the early acknowledgement can lose data.
        File::open(dir)?.sync_all()?;
    }
    for seq in 0..events {
        f.write_all(format!("{tag} {seq}\n").as_bytes())?;
        if ack_first {
            ack(format_args!("ack {tag} {seq}"));
            f.sync_data()?;
        } else {
            f.sync_data()?;
            ack(format_args!("ack {tag} {seq}"));
        }
    }
    Ok(())
}

/// Replaces the kit's state file `DIR/state` by the next generations.
fn state_file(dir: &str, generations: u64) -> Result {
    let state = StateFile::new(dir, STATE_FILE_NAME)?;
    let current = state.read()?.ok_or("no state file")?;
    let first = state_generation(&current).ok_or("the state file holds no whole generation")? + 1;
    for generation in first..first + generations {
        state.write(&state_content(generation))?;
        ack(format_args!("ack {generation}"));
    }
    Ok(())
}

/// Replaces `DIR/state` by the next generations through `DIR/state.tmp` and a rename, without
/// syncing the temporary file first.
fn rename_without_sync(dir: &str, generations: u64) -> Result {
    let dir = PathBuf::from(dir);
    let state = dir.join("state");
    let current = std::fs::read(&state)?;
    let first = state_generation(&current).ok_or("state file unreadable")? + 1;
    for generation in first..first + generations {
        let tmp = dir.join("state.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&state_content(generation))?;
        drop(f);
        std::fs::rename(&tmp, &state)?;
        File::open(&dir)?.sync_all()?;
        ack(format_args!("ack {generation}"));
    }
    Ok(())
}

fn prune(dir: &str, keep: u64, now: &str) -> Result {
    let strategy = FilenameTimestamp::new("%Y%m%dT%H%M%SZ", Duration::from_secs(30 * 86_400))?;
    let report = Pruner::new(strategy).prune_at(
        dir,
        &Pattern::new("audit-*.jsonl")?,
        usize::try_from(keep)?,
        now.parse()?,
    )?;
    for removed in &report.removed {
        ack(format_args!("pruned {}", removed.name.to_string_lossy()));
    }
    Ok(())
}
