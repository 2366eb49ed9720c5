//! 10,000 idle supervised monitors with 1 s heartbeats: resident memory per monitor, CPU
//! share over 10 s, and the time of one tracker snapshot.
//!
//! Run: `cargo bench -p daemonkit --bench supervisor` (set `MONITORS` / `SECONDS` to
//! change the load). The Go daemonkit used about 11 KB per monitor (113 MB RSS for
//! 10,000) and 0.9 ms per snapshot on the same class of machine.

use std::time::{Duration, Instant};

use daemonkit::{RestartPolicy, Supervisor, monitor_fn};
use tokio_util::sync::CancellationToken;

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

fn main() {
    let monitors = env_or("MONITORS", 10_000) as usize;
    let seconds = env_or("SECONDS", 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        // Let the runtime's threads settle before the baseline reading.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_bytes();

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
        let json_start = Instant::now();
        let json = serde_json::to_vec(&tracker.snapshot()).expect("serialise");
        let snapshot_json = json_start.elapsed();

        let per_monitor = (after.saturating_sub(before)) as f64 / monitors as f64;
        println!("supervisor bench: {monitors} idle monitors, 1 s heartbeats, 2 worker threads");
        println!("  RSS before          {:>10.1} MB", before as f64 / 1e6);
        println!("  RSS with monitors   {:>10.1} MB", after as f64 / 1e6);
        println!(
            "  per monitor         {:>10.0} B   (Go daemonkit: ~11,300 B; aim <= 1,536 B)",
            per_monitor
        );
        println!(
            "  CPU share over {seconds}s  {:>9.2} %   (of one core)",
            cpu_share * 100.0
        );
        println!(
            "  snapshot()          {:>10.3} ms  (Go daemonkit: ~0.9 ms)",
            snapshot.as_secs_f64() * 1e3
        );
        println!(
            "  snapshot + JSON     {:>10.3} ms  ({} bytes)",
            snapshot_json.as_secs_f64() * 1e3,
            json.len()
        );

        cancel.cancel();
        let report = running.shutdown(Duration::from_secs(5)).await;
        assert!(report.late.is_empty());
    });
}
