//! What `StateFile` costs over the hand-written protocol it replaces: the median latency of a
//! durable replacement (`write`) and of a read, against, measured in the same run on the same
//! disk, the bare "write a temp file, fsync, rename, fsync the directory" with `std::fs` (no
//! header, no checksum, no dirfd) and a bare `std::fs::read`.
//!
//! Run: `cargo bench -p daemonkit-eventlog --bench state_file`. Options after `--`:
//! `--writes N` per measurement (default 200). With `BENCH_JSON=<file>`, one JSON object per
//! figure is appended to it.
//!
//! Files go under Cargo's target tmp dir, which must be on a real disk, not tmpfs: on tmpfs a
//! sync costs nothing.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use daemonkit_eventlog::StateFile;

const SIZES: [usize; 3] = [256, 4096, 64 * 1024];

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(n: usize, mut f: impl FnMut(usize)) -> Duration {
    median(
        (0..n)
            .map(|i| {
                let start = Instant::now();
                f(i);
                start.elapsed()
            })
            .collect(),
    )
}

/// The protocol by hand, as a daemon writes it today.
fn hand_written(dir: &Path, content: &[u8]) {
    let tmp = dir.join("baseline.tmp");
    let mut f = File::create(&tmp).expect("create temp");
    f.write_all(content).expect("write temp");
    f.sync_all().expect("sync temp");
    drop(f);
    fs::rename(&tmp, dir.join("baseline")).expect("rename");
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("sync dir");
}

fn main() {
    let mut writes = 200usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--writes") {
        writes = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(writes);
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir");
    let state = StateFile::new(dir.path(), "state").expect("state file");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mut figures = Vec::new();
    println!(
        "state file, median of {writes} operations each, in {}",
        dir.path().display()
    );
    println!(
        "{:>9}  {:>18} {:>18}  {:>14} {:>14}",
        "size", "StateFile::write", "hand-written", "StateFile::read", "fs::read"
    );
    for size in SIZES {
        let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        // Alternate the two so drift in the disk's latency hits both alike.
        let mut ours = Vec::new();
        let mut base = Vec::new();
        for i in 0..writes {
            let mut content = content.clone();
            content[0] = i as u8;
            let start = Instant::now();
            state.write(&content).expect("state write");
            ours.push(start.elapsed());
            let start = Instant::now();
            hand_written(dir.path(), &content);
            base.push(start.elapsed());
        }
        let (write, write_base) = (median(ours), median(base));
        let read = time(writes, |_| {
            state.read().expect("state read").expect("present");
        });
        let read_base = time(writes, |_| {
            fs::read(dir.path().join("baseline")).expect("baseline read");
        });
        println!(
            "{size:>7} B  {:>15.1} µs {:>15.1} µs  {:>11.1} µs {:>11.1} µs",
            us(write),
            us(write_base),
            us(read),
            us(read_base)
        );
        figures.push((
            format!("write latency, {size} B"),
            us(write),
            us(write_base),
        ));
        figures.push((format!("read latency, {size} B"), us(read), us(read_base)));
    }
    if let Some(path) = std::env::var_os("BENCH_JSON") {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open BENCH_JSON");
        for (figure, value, baseline) in figures {
            let line = serde_json::json!({
                "bench": "eventlog_state_file",
                "figure": figure,
                "value": value,
                "unit": "us",
                "baseline": baseline,
            });
            writeln!(file, "{line}").expect("write BENCH_JSON");
        }
    }
}
