//! The long power-cut run: the event log's 16-writer scenario for many more cuts than CI runs.
//!
//! ```text
//! cargo run -p powercut --release --bin powercut-soak -- --cuts 5000 [--seed N] [--writers 16] [--events 8] [--log append|rotating]
//! ```
//!
//! `--log rotating` runs the rotating log's scenario (a clock crossing midnight every few
//! batches, a 4 KiB size limit) instead of the single append-only file.
//!
//! Prints the cuts run, the base seed, what the cuts dropped and every loss (there must be
//! none; the exit status is 1 otherwise), the time per cut, and as a baseline the time of the
//! same cycle without a cut (mount, run the writers to the end, clean unmount) measured in the
//! same run. With `BENCH_JSON=<file>` set, appends one JSON object per figure.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use powercut::scenario::{EventLogRun, LogKind, base_seed};

fn main() -> ExitCode {
    let mut cuts = 5000u64;
    let mut seed = base_seed(0x50a6_0001);
    let mut writers = 16u64;
    let mut events = 8u64;
    let mut log = LogKind::Append;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        });
        match (pair[0].as_str(), value) {
            ("--log", _) if pair.get(1).is_some_and(|v| v == "append") => log = LogKind::Append,
            ("--log", _) if pair.get(1).is_some_and(|v| v == "rotating") => log = LogKind::Rotating,
            ("--cuts", Some(v)) => cuts = v,
            ("--seed", Some(v)) => seed = v,
            ("--writers", Some(v)) => writers = v,
            ("--events", Some(v)) => events = v,
            _ => {
                eprintln!(
                    "usage: powercut-soak [--cuts N] [--seed N] [--writers N] [--events N] [--log append|rotating]"
                );
                return ExitCode::from(2);
            }
        }
    }
    if let Some(why) = powercut::fuse_unavailable() {
        eprintln!("powercut-soak: FUSE unavailable: {why}");
        return ExitCode::from(2);
    }
    let Some(writer) = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("powercut-writer"))
        .filter(|w| w.is_file())
    else {
        eprintln!(
            "powercut-soak: powercut-writer not found next to this binary (cargo build -p powercut)"
        );
        return ExitCode::from(2);
    };
    let work = std::env::temp_dir().join(format!("powercut-soak-{}", std::process::id()));
    let result = soak(&work, writer, log, cuts, seed, writers, events);
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("powercut-soak: {e}");
            ExitCode::from(2)
        }
    }
}

fn soak(
    work: &std::path::Path,
    writer: PathBuf,
    log: LogKind,
    cuts: u64,
    seed: u64,
    writers: u64,
    events: u64,
) -> Result<bool, powercut::Error> {
    let run = |cuts, seed| EventLogRun {
        writer: writer.clone(),
        log,
        writers,
        events,
        cuts,
        cuts_per_disk: 25,
        seed,
    };
    // Baseline: cycles whose cut falls only after the writers are done, measured in this run.
    let baseline_cycles = 20u64.min(cuts.max(1));
    let started = Instant::now();
    let clean = run(baseline_cycles, seed).run_uncut(&work.join("baseline"))?;
    let baseline_ms = started.elapsed().as_secs_f64() * 1000.0 / baseline_cycles as f64;
    if !clean.losses.is_empty() {
        println!("{clean}");
        return Ok(false);
    }

    let started = Instant::now();
    let summary = run(cuts, seed).run(&work.join("cuts"))?;
    let per_cut_ms = started.elapsed().as_secs_f64() * 1000.0 / summary.cuts.max(1) as f64;
    println!("{summary}");
    println!(
        "{:.1} ms per cut (baseline: {:.1} ms per cycle run to the end and unmounted cleanly)",
        per_cut_ms, baseline_ms
    );
    if let Some(path) = std::env::var_os("BENCH_JSON") {
        let figures = [
            ("cuts", summary.cuts as f64, "cuts", f64::NAN),
            ("losses", summary.losses.len() as f64, "losses", f64::NAN),
            (
                "acknowledged events",
                summary.acked as f64,
                "events",
                f64::NAN,
            ),
            ("time per cut", per_cut_ms, "ms", baseline_ms),
        ];
        // The append log's figures keep the names they had before the rotating log joined.
        let name = match log {
            LogKind::Rotating => "rotating log: ",
            _ => "",
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            for (figure, value, unit, baseline) in figures {
                let baseline = if baseline.is_nan() {
                    "null".to_owned()
                } else {
                    format!("{baseline:.3}")
                };
                let _ = writeln!(
                    f,
                    r#"{{"bench":"powercut-soak","figure":"{name}{figure}","value":{value:.3},"unit":"{unit}","baseline":{baseline}}}"#
                );
            }
        }
    }
    Ok(summary.losses.is_empty())
}
