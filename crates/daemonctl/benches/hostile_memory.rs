//! Peak memory and wall time of a real `daemonctl status` against hostile servers, next
//! to the same command against a healthy one, measured in the same run.
//!
//! `cargo bench -p daemonctl --bench hostile_memory`; `RUNS=n` repeats each case (the
//! figure is the largest peak RSS and the median time). With `BENCH_JSON=<file>`, one JSON
//! object per figure is appended to the file.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::Duration;

use common::{Answer, FakeDaemon, daemonctl, run};

struct Case {
    name: &'static str,
    answer: Answer,
    args: &'static [&'static str],
}

fn measure(case: &Case, runs: usize) -> (i64, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = FakeDaemon::serve(&dir.path().join("control.sock"), case.answer.clone());
    let mut peaks = Vec::new();
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut cmd = daemonctl();
        cmd.arg("status")
            .arg("--socket")
            .arg(&daemon.socket)
            .args(case.args);
        let out = run(cmd);
        peaks.push(out.max_rss_kib);
        times.push(out.elapsed);
    }
    times.sort();
    (peaks.into_iter().max().unwrap_or(0), times[times.len() / 2])
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let healthy = br#"{"web":{"state":"running","restarts":0}}"#.to_vec();
    let cases = [
        Case {
            name: "healthy status (baseline)",
            answer: Answer::Body(200, healthy),
            args: &[],
        },
        Case {
            name: "1 GiB Content-Length body",
            answer: Answer::GiB,
            args: &[],
        },
        Case {
            name: "endless chunked body",
            answer: Answer::EndlessChunked,
            args: &[],
        },
        Case {
            name: "endless chunked body, --max-body 1 MiB",
            answer: Answer::EndlessChunked,
            args: &["--max-body", "1048576"],
        },
        Case {
            name: "endless close-delimited body",
            answer: Answer::EndlessUnframed,
            args: &[],
        },
        Case {
            name: "endless response head",
            answer: Answer::EndlessHead,
            args: &[],
        },
    ];
    let mut results = Vec::new();
    for case in &cases {
        results.push((case.name, measure(case, runs)));
    }
    let (baseline_rss, baseline_time) = results[0].1;
    println!("daemonctl status, {runs} runs per case (peak RSS: largest; time: median)");
    println!("{:<42} {:>14} {:>10}", "server sends", "peak RSS", "time");
    for (name, (rss, time)) in &results {
        println!(
            "{name:<42} {:>10} KiB {:>8.1}ms   (baseline {baseline_rss} KiB, {:.1}ms)",
            rss,
            time.as_secs_f64() * 1e3,
            baseline_time.as_secs_f64() * 1e3
        );
    }
    if let Some(path) = std::env::var_os("BENCH_JSON") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open BENCH_JSON");
        for (name, (rss, time)) in &results {
            for (figure, value, unit, baseline) in [
                ("peak_rss", *rss as f64, "KiB", baseline_rss as f64),
                (
                    "wall_time",
                    time.as_secs_f64() * 1e3,
                    "ms",
                    baseline_time.as_secs_f64() * 1e3,
                ),
            ] {
                let line = serde_json::json!({
                    "bench": "daemonctl_hostile_memory",
                    "figure": format!("{figure}: {name}"),
                    "value": value,
                    "unit": unit,
                    "baseline": baseline,
                });
                writeln!(file, "{line}").expect("write BENCH_JSON");
            }
        }
    }
}
