//! 10,000 idle supervised monitors with 1 s heartbeats: resident memory per monitor, CPU
//! share over 10 s, and the time of one tracker snapshot.
//!
//! Run: `cargo bench -p daemonkit --bench supervisor` (set `MONITORS` / `SECONDS` to
//! change the load).
//!
//! Baselines, measured in the same run: for memory, the floor of any heartbeat monitor
//! on tokio — one spawned task per monitor that waits on its cancellation token and
//! ticks a 1 s interval — measured in a child process (this binary re-executed with
//! `DK_BENCH_FLOOR=1`) so that the allocator's free lists do not mix the two; for the
//! snapshot, cloning a `Vec` of the same number of (name, status) `Arc` pairs, the least
//! any copy of the statuses can do.
//!
//! Beside resident memory, the bench counts the bytes its allocator holds (a counting
//! global allocator): the live heap per monitor and per floor task, which the allocator's
//! free lists and the machine's state do not move.
//!
//! A snapshot shares the tracker's map until the next write, which copies it; so the
//! bench also times a snapshot followed by one status write (the copy moved to the
//! writer), against one write alone.
//!
//! With `BENCH_JSON=<file>`, one JSON object per figure is appended to the file:
//! `idle_monitor_bytes` (baseline: the task floor), `idle_monitor_heap_bytes` (baseline:
//! the floor's heap bytes), `snapshot_10k_ms` (baseline: the `Vec` clone),
//! `snapshot_write_10k_ms` (baseline: one write alone), `idle_cpu_percent`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use daemonkit::{MonitorState, RestartPolicy, StatusTracker, Supervisor, monitor_fn};
use tokio_util::sync::CancellationToken;

/// The system allocator, counting the bytes it holds for the program.
struct Counting;

static HEAP: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the counter is a
// relaxed atomic that no allocation depends on.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap_bytes() -> isize {
    HEAP.load(Ordering::Relaxed)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The floor: `monitors` bare tasks, each a cancellation wait and a 1 s interval; prints
/// the resident bytes per task.
fn floor(monitors: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_bytes();
        let heap_before = heap_bytes();
        let cancel = CancellationToken::new();
        let tasks: Vec<_> = (0..monitors)
            .map(|_| {
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    let mut beat = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            _ = beat.tick() => {}
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_bytes();
        let heap = (heap_bytes() - heap_before) as f64 / monitors as f64;
        println!(
            "{} {heap}",
            after.saturating_sub(before) as f64 / monitors as f64
        );
        cancel.cancel();
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// A tracker of `monitors` entries on its own: the time of one status write alone, and
/// of a snapshot followed by one write (which then copies the map the snapshot shares).
fn snapshot_then_write(monitors: usize, rounds: u32) -> (Duration, Duration) {
    let tracker = StatusTracker::new();
    let handles: Vec<_> = (0..monitors)
        .map(|i| {
            tracker
                .register(&format!("monitor-{i:05}"))
                .expect("unique")
        })
        .collect();
    let states = [MonitorState::Running, MonitorState::Stopped];
    let start = Instant::now();
    for round in 0..rounds as usize {
        handles[round % monitors].set_state(states[round % 2]);
    }
    let alone = start.elapsed() / rounds;
    let start = Instant::now();
    for round in 0..rounds as usize {
        let snapshot = tracker.snapshot();
        handles[round % monitors].set_state(states[round % 2]);
        std::hint::black_box(snapshot);
    }
    (alone, start.elapsed() / rounds)
}

fn bench_json(figure: &str, value: f64, unit: &str, baseline: Option<f64>) {
    let Some(path) = std::env::var_os("BENCH_JSON") else {
        return;
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open BENCH_JSON");
    let line = serde_json::json!({
        "bench": "supervisor",
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
    });
    writeln!(file, "{line}").expect("write BENCH_JSON");
}

fn main() {
    let monitors = env_or("MONITORS", 10_000) as usize;
    if std::env::var_os("DK_BENCH_FLOOR").is_some() {
        floor(monitors);
        return;
    }
    let started = Instant::now();
    let seconds = env_or("SECONDS", 10);
    let floor_output = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env("DK_BENCH_FLOOR", "1")
        .env("MONITORS", monitors.to_string())
        .output()
        .expect("run the floor child");
    let floor_figures: Vec<f64> = String::from_utf8_lossy(&floor_output.stdout)
        .split_whitespace()
        .map(|figure| figure.parse().expect("a number"))
        .collect();
    let [floor_bytes, floor_heap] = floor_figures[..] else {
        panic!("the floor child prints its resident and heap bytes per task");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        // Let the runtime's threads settle before the baseline reading.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_bytes();
        let heap_before = heap_bytes();

        let policy = RestartPolicy::builder()
            .heartbeat(Duration::from_secs(1))
            .build()
            .expect("valid policy");
        let supervisor = (0..monitors)
            .fold(Supervisor::builder().policy(policy), |builder, i| {
                builder.monitor(monitor_fn(format!("monitor-{i:05}"), |cancel| async move {
                    cancel.cancelled().await;
                    Ok(())
                }))
            })
            .build()
            .expect("unique names");
        let tracker = supervisor.tracker().clone();
        let cancel = CancellationToken::new();
        let running = supervisor.start(&cancel);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_bytes();
        let heap = (heap_bytes() - heap_before) as f64 / monitors as f64;

        let cpu_before = cpu_time();
        let wall = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let cpu_share = (cpu_time() - cpu_before).as_secs_f64() / wall.elapsed().as_secs_f64();

        let rounds = 200;
        let mut len = 0;
        let start = Instant::now();
        for _ in 0..rounds {
            len += std::hint::black_box(tracker.snapshot()).len();
        }
        let snapshot = start.elapsed() / rounds;
        assert_eq!(len, monitors * rounds as usize);
        let pairs: Vec<_> = tracker
            .snapshot()
            .iter()
            .map(|(name, status)| (Arc::<str>::from(name), Arc::new(status.clone())))
            .collect();
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(pairs.clone());
        }
        let vec_clone = start.elapsed() / rounds;
        let (write_alone, snapshot_write) = snapshot_then_write(monitors, rounds);
        let json_start = Instant::now();
        let json = serde_json::to_vec(&tracker.snapshot()).expect("serialise");
        let snapshot_json = json_start.elapsed();

        let per_monitor = (after.saturating_sub(before)) as f64 / monitors as f64;
        println!("supervisor bench: {monitors} idle monitors, 1 s heartbeats, 2 worker threads");
        println!("  RSS before          {:>10.1} MB", before as f64 / 1e6);
        println!("  RSS with monitors   {:>10.1} MB", after as f64 / 1e6);
        println!("  per monitor         {per_monitor:>10.0} B");
        println!("  floor: bare task    {floor_bytes:>10.0} B   (a task with a cancellation wait and a 1 s interval, same run)");
        println!("  live heap/monitor   {heap:>10.0} B");
        println!("  floor: heap/task    {floor_heap:>10.0} B");
        println!(
            "  CPU share over {seconds}s  {:>9.2} %   (of one core)",
            cpu_share * 100.0
        );
        println!(
            "  snapshot()          {:>10.3} ms",
            snapshot.as_secs_f64() * 1e3
        );
        println!(
            "  floor: Vec clone    {:>10.3} ms  ({monitors} Arc pairs, same run)",
            vec_clone.as_secs_f64() * 1e3
        );
        println!(
            "  snapshot, then one write {:>5.3} ms  (the write copies the shared map; {monitors} monitors, no supervisor)",
            snapshot_write.as_secs_f64() * 1e3
        );
        println!(
            "  one write alone     {:>10.3} ms",
            write_alone.as_secs_f64() * 1e3
        );
        println!(
            "  snapshot + JSON     {:>10.3} ms  ({} bytes)",
            snapshot_json.as_secs_f64() * 1e3,
            json.len()
        );

        let snapshot_name = format!("snapshot_{}k_ms", monitors / 1000);
        bench_json("idle_monitor_bytes", per_monitor, "B", Some(floor_bytes));
        bench_json("idle_monitor_heap_bytes", heap, "B", Some(floor_heap));
        bench_json(
            &format!("snapshot_write_{}k_ms", monitors / 1000),
            snapshot_write.as_secs_f64() * 1e3,
            "ms",
            Some(write_alone.as_secs_f64() * 1e3),
        );
        bench_json(
            &snapshot_name,
            snapshot.as_secs_f64() * 1e3,
            "ms",
            Some(vec_clone.as_secs_f64() * 1e3),
        );
        bench_json("idle_cpu_percent", cpu_share * 100.0, "%", None);

        cancel.cancel();
        let report = running.shutdown(Duration::from_secs(5)).await;
        assert!(report.late.is_empty());
    });
    println!(
        "supervisor bench total: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
