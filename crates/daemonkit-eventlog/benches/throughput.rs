//! Durable events per second with 1, 16 and 64 concurrent writers: this crate's group commit
//! against the seed's design (one mutex around write + fsync per event), and the rotating log
//! against the plain one, all measured in the same run on the same disk; then the latency of
//! the append that crosses a day boundary (opens the next file) against an ordinary append.
//!
//! Run: `cargo bench -p daemonkit-eventlog`. Options after `--`: `--secs S` per measurement
//! (default 2), `--rounds R` (default 3; the median is reported), `--writers 1,16,64`,
//! `--crossings N` (default 30), `--designs seed,group,rotating` (a subset runs only those
//! designs and prints raw figures, for tracing one design with `perf`). With
//! `BENCH_JSON=<file>`, one JSON object per figure is appended to the file (see
//! docs/benchmarks.md for the names).
//!
//! Beside events/s it prints syncs/s (events/s over events per sync; the seed does one per
//! event) and CPU time per event (user + system of every thread, from `/proc/self/stat`), so
//! that a speedup splits into batch size × sync rate and the CPU a design spends per event.
//!
//! Files go under Cargo's target tmp dir, which must be on a real disk, not tmpfs: on tmpfs a
//! sync costs nothing and both designs measure only the CPU.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use daemonkit_eventlog::{Event, EventLog, Level, RotatingLog, Rotation};

const WRITER_COUNTS: [usize; 3] = [1, 16, 64];

/// The seed's design: one lock held across the write and the fsync of every event.
struct SeedLog {
    file: Mutex<File>,
}

impl SeedLog {
    fn open(path: &Path) -> SeedLog {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open baseline log");
        SeedLog {
            file: Mutex::new(file),
        }
    }

    fn log(&self, event: &Event) {
        // Marshal outside the lock, as Go's Logger.Log does.
        let mut line = serde_json::to_vec(&serde_json::json!({
            "ts": event.ts.to_string(),
            "level": event.level.as_str(),
            "reason": event.reason,
            "msg": event.msg,
            "operationId": event.operation_id,
            "nodeId": event.node_id,
        }))
        .expect("serialise");
        line.push(b'\n');
        let mut file = self.file.lock().expect("baseline lock");
        file.write_all(&line).expect("baseline write");
        file.sync_all().expect("baseline fsync");
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Design {
    Seed,
    GroupCommit,
    Rotating,
}

/// One of the logs under test, open.
enum Open {
    Seed(SeedLog),
    Plain(EventLog),
    Rotating(RotatingLog),
}

impl Open {
    fn log(&self, event: &Event) {
        match self {
            Open::Seed(log) => log.log(event),
            Open::Plain(log) => log.log(event).expect("log"),
            Open::Rotating(log) => log.log(event).expect("log"),
        }
    }
}

/// This process's count of write system calls so far (`syscw` in `/proc/self/io`).
///
/// Group commit issues one `write` per batch, so events / writes is the mean batch size: how
/// many events each `fdatasync` made durable.
fn write_syscalls() -> Option<u64> {
    let io = fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .and_then(|n| n.trim().parse().ok())
}

/// This process's CPU time so far (user + system, all threads), in seconds, from
/// `/proc/self/stat` (clock ticks, 100 per second on Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// What one measurement found.
struct Measurement {
    /// Durable events per second.
    rate: f64,
    /// Events per `write` (so per sync), when `/proc/self/io` is readable.
    per_sync: Option<f64>,
    /// Syncs per second (events per second over events per sync).
    syncs: Option<f64>,
    /// CPU time (user + system, every thread) per event, in microseconds.
    cpu_us: Option<f64>,
}

/// Runs `writers` threads logging as fast as they can for `secs`, in an empty `dir`.
///
/// The rotating log runs with the system clock: no day boundary falls in a measurement (unless
/// one runs across midnight UTC), so this is its cost outside the rotation instant — the
/// per-batch checks of the clock and of the file's identity.
fn measure(design: Design, writers: usize, secs: f64, dir: &Path) -> Measurement {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("create bench dir");
    let log = match design {
        Design::Seed => Open::Seed(SeedLog::open(&dir.join("bench.jsonl"))),
        Design::GroupCommit => {
            Open::Plain(EventLog::open_append(dir, "bench.jsonl").expect("open event log"))
        }
        Design::Rotating => Open::Rotating(
            RotatingLog::open(dir, Rotation::daily("bench").expect("valid prefix"))
                .expect("open rotating log"),
        ),
    };
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let barrier = Barrier::new(writers + 1);

    let writes_before = write_syscalls();
    let cpu_before = cpu_seconds();
    let elapsed = std::thread::scope(|s| {
        for w in 0..writers {
            let (log, stop, total, barrier) = (&log, &stop, &total, &barrier);
            s.spawn(move || {
                let mut event = Event::new(
                    Level::Info,
                    "BenchmarkMilestone",
                    String::new(),
                    "bench-20260619T120000Z",
                    "node-3",
                );
                let mut n = 0u64;
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    event.msg = format!("writer {w} event {n}: upgrade step completed");
                    log.log(&event);
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        start
    });
    // The scope has joined every writer, so events in flight at the stop are counted and timed.
    let events = total.load(Ordering::Relaxed) as f64;
    let rate = events / elapsed.elapsed().as_secs_f64();
    let per_sync = match (writes_before, write_syscalls()) {
        (Some(before), Some(after)) if after > before => Some(events / (after - before) as f64),
        _ => None,
    };
    let cpu_us = match (cpu_before, cpu_seconds()) {
        (Some(before), Some(after)) if events > 0.0 => Some((after - before) * 1e6 / events),
        _ => None,
    };
    drop(log);
    let _ = fs::remove_dir_all(dir);
    Measurement {
        rate,
        per_sync,
        syncs: per_sync.map(|p| rate / p),
        cpu_us,
    }
}

/// Latency of single appends from one writer to a rotating log whose injected clock is moved
/// past midnight before every other append: (median ordinary append, median crossing append),
/// in microseconds. The crossing append opens the next day's file (create, lock, directory
/// fsync) before its write and fdatasync.
fn crossing_latency(crossings: usize, dir: &Path) -> (f64, f64) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("create bench dir");
    let day = std::sync::Arc::new(AtomicU64::new(20_000)); // days since the epoch
    let clock = {
        let day = day.clone();
        move || {
            let days = day.load(Ordering::SeqCst) as i64;
            jiff::Timestamp::from_second(days * 86_400 + 3_600).expect("in range")
        }
    };
    let log = RotatingLog::open(dir, Rotation::daily("bench").expect("prefix").clock(clock))
        .expect("open rotating log");
    let event = Event::new(
        Level::Info,
        "BenchmarkMilestone",
        "one event of the crossing bench",
        "bench",
        "node-3",
    );
    let time = |log: &RotatingLog| {
        let start = Instant::now();
        log.log(&event).expect("log");
        start.elapsed().as_secs_f64() * 1e6
    };
    time(&log); // warm-up
    let (mut ordinary, mut crossing) = (Vec::new(), Vec::new());
    for _ in 0..crossings {
        ordinary.push(time(&log));
        day.fetch_add(1, Ordering::SeqCst);
        crossing.push(time(&log));
    }
    drop(log);
    let _ = fs::remove_dir_all(dir);
    (median(ordinary), median(crossing))
}

/// Appends one figure to `$BENCH_JSON`, if set.
fn bench_json(figure: &str, value: f64, unit: &str, baseline: Option<f64>) {
    let Some(path) = std::env::var_os("BENCH_JSON") else {
        return;
    };
    let mut line = serde_json::json!({
        "bench": "eventlog-throughput",
        "figure": figure,
        "value": value,
        "unit": unit,
    });
    // The key is there only when the figure has a same-run baseline.
    if let Some(baseline) = baseline {
        line["baseline"] = serde_json::json!(baseline);
    }
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!(
            "cannot append to BENCH_JSON={}: {e}",
            path.to_string_lossy()
        );
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let started = Instant::now();
    let secs: f64 = arg("--secs").and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(3);
    let crossings: usize = arg("--crossings")
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let writer_counts: Vec<usize> = arg("--writers")
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| WRITER_COUNTS.to_vec());
    let designs = arg("--designs").unwrap_or_else(|| "seed,group,rotating".to_owned());
    let run = |name: &str| designs.split(',').any(|d| d.trim() == name);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("eventlog-bench");

    println!("daemonkit-eventlog throughput: durable events/s (median of {rounds} x {secs} s)");
    println!("directory: {}", dir.display());
    println!();
    println!(
        "{:>7} | {:>12} | {:>12} | {:>7} | {:>9} | {:>12} | {:>9}",
        "writers", "seed", "group commit", "speedup", "per sync", "rotating", "rot/plain*"
    );
    println!(
        "{:-<7}-+-{:-<12}-+-{:-<12}-+-{:-<7}-+-{:-<9}-+-{:-<12}-+-{:-<9}",
        "", "", "", "", "", "", ""
    );
    // Per writer count: (writers, seed syncs/s, group syncs/s, seed CPU, group CPU).
    let mut cycles = Vec::new();
    for writers in writer_counts {
        let (mut seed, mut group, mut rotating, mut per_sync, mut paired) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut seed_syncs, mut group_syncs, mut seed_cpu, mut group_cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // Group commit against the seed run just before it, per round.
        let mut speedups = Vec::new();
        for _ in 0..rounds {
            // Interleave the designs so drift in the disk's speed hits all alike.
            if run("seed") {
                let m = measure(Design::Seed, writers, secs, &dir);
                seed.push(m.rate);
                // The seed does one write and one fsync per event.
                seed_syncs.push(m.rate);
                seed_cpu.extend(m.cpu_us);
            }
            if run("group") {
                let m = measure(Design::GroupCommit, writers, secs, &dir);
                group.push(m.rate);
                if let Some(seed) = seed.last() {
                    speedups.push(m.rate / seed);
                }
                per_sync.extend(m.per_sync);
                group_syncs.extend(m.syncs);
                group_cpu.extend(m.cpu_us);
            }
            if run("rotating") {
                let r = measure(Design::Rotating, writers, secs, &dir).rate;
                rotating.push(r);
                // The rotating log against the plain one measured just before it: pairs
                // cancel most of the drift of a shared disk.
                if let Some(plain) = group.last() {
                    paired.push(r / plain);
                }
            }
        }
        let show = |xs: Vec<f64>| (!xs.is_empty()).then(|| median(xs));
        if seed.is_empty() || group.is_empty() || rotating.is_empty() {
            // A partial run (for tracing one design) prints what it measured, records nothing.
            println!(
                "{writers:>7} | seed {:?} | group {:?} | per sync {:?} | rotating {:?} | CPU us/event seed {:?} group {:?}",
                show(seed),
                show(group),
                show(per_sync),
                show(rotating),
                show(seed_cpu),
                show(group_cpu),
            );
            continue;
        }
        cycles.push((
            writers,
            median(seed_syncs),
            show(group_syncs),
            show(seed_cpu),
            show(group_cpu),
        ));
        let (seed, group, rotating) = (median(seed), median(group), median(rotating));
        let paired = median(paired);
        let speedup = median(speedups);
        let per_sync = (!per_sync.is_empty()).then(|| median(per_sync));
        println!(
            "{writers:>7} | {seed:>12.0} | {group:>12.0} | {speedup:>6.1}x | {:>9} | {rotating:>12.0} | {:>8.3}x",
            per_sync.map_or("n/a".to_owned(), |p| format!("{p:.1}")),
            paired
        );
        bench_json(&format!("events_w{writers}"), group, "events/s", Some(seed));
        bench_json(&format!("speedup_w{writers}"), speedup, "ratio", None);
        bench_json(
            &format!("rotating_w{writers}"),
            rotating,
            "events/s",
            Some(group),
        );
        bench_json(
            &format!("rotating_vs_plain_w{writers}"),
            paired,
            "ratio",
            None,
        );
        if let Some(p) = per_sync {
            bench_json(&format!("events_per_sync_w{writers}"), p, "events", None);
        }
    }

    println!(
        "speedup and *: medians of the per-round ratios (group commit against the seed run just \
         before it; rotating against the plain run just before it): pairs cancel most of the \
         drift of a shared disk, whose sync latency moves several-fold within a minute here"
    );

    // Where the speedup comes from: events per sync times syncs per second (group commit's
    // against the seed's), and what each event costs in CPU (every thread, user + system).
    if !cycles.is_empty() {
        println!();
        println!(
            "{:>7} | {:>12} | {:>12} | {:>11} | {:>13} | {:>13}",
            "writers", "seed syncs/s", "group syncs/s", "group/seed", "seed CPU/ev", "group CPU/ev"
        );
        let us = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1} us"));
        for (writers, seed_syncs, group_syncs, seed_cpu, group_cpu) in cycles {
            println!(
                "{writers:>7} | {seed_syncs:>12.0} | {:>13} | {:>11} | {:>13} | {:>13}",
                group_syncs.map_or("n/a".to_owned(), |g| format!("{g:.0}")),
                group_syncs.map_or("n/a".to_owned(), |g| format!("{:.2}x", g / seed_syncs)),
                us(seed_cpu),
                us(group_cpu)
            );
            if let Some(g) = group_syncs {
                bench_json(&format!("syncs_w{writers}"), g, "syncs/s", Some(seed_syncs));
            }
            if let Some(g) = group_cpu {
                bench_json(&format!("cpu_us_per_event_w{writers}"), g, "us", seed_cpu);
            }
        }
    }

    // The rotation's own cost per batch (clock read, identity checks), without the disk:
    // one writer on tmpfs, where a sync returns at once, so the time per append is CPU.
    if designs != "seed,group,rotating" {
        return;
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let shm_dir = shm.join(format!("eventlog-bench-{}", std::process::id()));
        let (mut plain, mut rotating) = (Vec::new(), Vec::new());
        for _ in 0..rounds.max(5) {
            plain.push(1e6 / measure(Design::GroupCommit, 1, secs / 2.0, &shm_dir).rate);
            rotating.push(1e6 / measure(Design::Rotating, 1, secs / 2.0, &shm_dir).rate);
        }
        let (plain, rotating) = (median(plain), median(rotating));
        println!();
        println!(
            "append cost without a disk (tmpfs, 1 writer, median of {} rounds):",
            rounds.max(5)
        );
        println!("    plain log                        {plain:>9.2} us");
        println!(
            "    rotating log                     {rotating:>9.2} us  ({:+.2} us per batch: a clock read)",
            rotating - plain
        );
        bench_json("rotating_tmpfs_append_us", rotating, "us", Some(plain));
    }

    let (ordinary, crossing) = crossing_latency(crossings, &dir);
    println!();
    println!("append latency, 1 writer, median of {crossings} each:");
    println!("    ordinary append                  {ordinary:>9.0} us");
    println!(
        "    append crossing a day boundary   {crossing:>9.0} us  ({:.1}x: opens, locks and syncs the new file's directory entry)",
        crossing / ordinary
    );
    bench_json("rotation_append_us", crossing, "us", Some(ordinary));
    println!(
        "\ntotal bench time: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
