//! Durable events per second with 1, 16 and 64 concurrent writers: this crate's group commit
//! against the seed's design (one mutex around write + fsync per event), measured in the same
//! run on the same disk.
//!
//! Run: `cargo bench -p daemonkit-eventlog`. Options after `--`: `--secs S` per measurement
//! (default 2), `--rounds R` (default 3; the median is reported), `--writers 1,16,64`.
//!
//! Files go under Cargo's target tmp dir, which must be on a real disk, not tmpfs: on tmpfs a
//! sync costs nothing and both designs measure only the CPU.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use daemonkit_eventlog::{Event, EventLog, Level};

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

/// What one measurement found.
struct Measurement {
    /// Durable events per second.
    rate: f64,
    /// Events per `write` (so per sync), when `/proc/self/io` is readable.
    per_sync: Option<f64>,
}

/// Runs `writers` threads logging as fast as they can for `secs`.
fn measure(design: Design, writers: usize, secs: f64, path: &Path) -> Measurement {
    let _ = fs::remove_file(path);
    let dir = path.parent().expect("bench file has a parent");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name");
    let seed = (design == Design::Seed).then(|| SeedLog::open(path));
    let group = (design == Design::GroupCommit)
        .then(|| EventLog::open_append(dir, name).expect("open event log"));
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let barrier = Barrier::new(writers + 1);

    let writes_before = write_syscalls();
    let elapsed = std::thread::scope(|s| {
        for w in 0..writers {
            let (seed, group, stop, total, barrier) = (&seed, &group, &stop, &total, &barrier);
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
                    match (seed, group) {
                        (Some(seed), _) => seed.log(&event),
                        (_, Some(group)) => group.log(&event).expect("log"),
                        _ => unreachable!("one design is open"),
                    }
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
    drop((seed, group));
    let _ = fs::remove_file(path);
    Measurement { rate, per_sync }
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
    let secs: f64 = arg("--secs").and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(3);
    let writer_counts: Vec<usize> = arg("--writers")
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| WRITER_COUNTS.to_vec());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("eventlog-bench");
    fs::create_dir_all(&dir).expect("create bench dir");
    let path = dir.join("bench.jsonl");

    println!("daemonkit-eventlog throughput: durable events/s (median of {rounds} x {secs} s)");
    println!("directory: {}", dir.display());
    println!();
    println!(
        "{:>7} | {:>26} | {:>19} | {:>7} | {:>15}",
        "writers", "seed: mutex+fsync/event", "group commit", "speedup", "events per sync"
    );
    println!(
        "{:-<7}-+-{:-<26}-+-{:-<19}-+-{:-<7}-+-{:-<15}",
        "", "", "", "", ""
    );
    for writers in writer_counts {
        let mut seed = Vec::new();
        let mut group = Vec::new();
        let mut per_sync = Vec::new();
        for _ in 0..rounds {
            // Interleave the designs so drift in the disk's speed hits both alike.
            seed.push(measure(Design::Seed, writers, secs, &path).rate);
            let m = measure(Design::GroupCommit, writers, secs, &path);
            group.push(m.rate);
            per_sync.extend(m.per_sync);
        }
        let (seed, group) = (median(seed), median(group));
        let per_sync = if per_sync.is_empty() {
            "n/a".to_owned()
        } else {
            format!("{:.1}", median(per_sync))
        };
        println!(
            "{writers:>7} | {seed:>26.0} | {group:>19.0} | {:>6.1}x | {per_sync:>15}",
            group / seed
        );
    }
}
