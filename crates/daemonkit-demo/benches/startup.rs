//! From exec to READY=1, and to the first answered /health, for the demo daemon; plus
//! its idle resident memory.
//!
//! Run: `cargo bench -p daemonkit-demo --bench startup` (`RUNS` sets the sample count).
//! Baseline in the same run: exec of `/bin/true` to its exit (the floor of any process
//! start on this machine). Idle memory is read from `/proc/<pid>/status` 2 s after the
//! first start: `VmRSS`, split into `RssAnon` (heap, stacks) and `RssFile` (mapped code
//! and libraries).
//!
//! With `BENCH_JSON=<file>`, one JSON object per figure is appended to the file:
//! `ready_ms` and `first_health_ms` (p50; baseline: exec of `/bin/true`, p50),
//! `demo_idle_rss_kb`, `demo_idle_rss_anon_kb`, `demo_idle_rss_file_kb`.

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEMO: &str = env!("CARGO_BIN_EXE_daemonkit-demo");

fn health(socket: &std::path::Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).is_ok() && response.starts_with("HTTP/1.1 200")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `VmRSS`, `RssAnon` and `RssFile` of `pid`, in KiB.
fn rss_kb(pid: u32) -> [u64; 3] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    ["VmRSS:", "RssAnon:", "RssFile:"].map(|field| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    })
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
        "bench": "startup",
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
    });
    writeln!(file, "{line}").expect("write BENCH_JSON");
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");

    let mut baseline = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        Command::new("/bin/true").status().expect("/bin/true");
        baseline.push(start.elapsed());
    }

    let (mut ready, mut first_health) = (Vec::new(), Vec::new());
    let mut ready_before_serving = 0;
    let mut idle_rss = [0; 3];
    for run in 0..runs {
        let notify_path = dir.path().join(format!("notify-{run}.sock"));
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let socket = dir.path().join(format!("run-{run}/control.sock"));
        let start = Instant::now();
        let mut child = Command::new(DEMO)
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.path().join(format!("state-{run}")))
            .env("NOTIFY_SOCKET", &notify_path)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("start the demo");
        let mut buf = [0u8; 1024];
        loop {
            let n = notify.recv(&mut buf).expect("READY=1 within 10 s");
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break;
            }
        }
        ready.push(start.elapsed());
        if !health(&socket) {
            ready_before_serving += 1;
            while !health(&socket) {}
        }
        first_health.push(start.elapsed());
        if run == 0 {
            std::thread::sleep(Duration::from_secs(2));
            idle_rss = rss_kb(child.id());
        }
        child.kill().ok();
        child.wait().ok();
    }

    for v in [&mut baseline, &mut ready, &mut first_health] {
        v.sort();
    }
    println!("demo start-up, {runs} runs (release build, logs at warn)");
    println!("                         p50        p90        max");
    for (name, v) in [
        ("exec /bin/true (base)", &baseline),
        ("exec -> READY=1", &ready),
        ("exec -> first /health", &first_health),
    ] {
        println!(
            "  {name:<22} {:>7.2} ms {:>7.2} ms {:>7.2} ms",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(percentile(v, 1.0))
        );
    }
    println!("  READY=1 before the socket served: {ready_before_serving} of {runs}");
    let [rss, anon, file] = idle_rss;
    println!(
        "  idle RSS after 2 s: {rss} KiB VmRSS ({anon} KiB anonymous, {file} KiB file-backed)"
    );
    let base = ms(percentile(&baseline, 0.5));
    bench_json("ready_ms", ms(percentile(&ready, 0.5)), "ms", Some(base));
    bench_json(
        "first_health_ms",
        ms(percentile(&first_health, 0.5)),
        "ms",
        Some(base),
    );
    bench_json("demo_idle_rss_kb", rss as f64, "KiB", None);
    bench_json("demo_idle_rss_anon_kb", anon as f64, "KiB", None);
    bench_json("demo_idle_rss_file_kb", file as f64, "KiB", None);
    println!(
        "  READY=1 p50 / exec of /bin/true p50: {:.2}x",
        ms(percentile(&ready, 0.5)) / base
    );
    println!(
        "startup bench total: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
