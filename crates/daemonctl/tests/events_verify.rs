//! `daemonctl events verify FILE`, run as the real binary.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const GOOD: &str = r#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"UpgradeStarted","msg":"begin \u003cv0.75.0\u003e","operationId":"op-1","nodeId":"node-3"}"#;

fn verify(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_daemonctl"))
        .args(["events", "verify"])
        .arg(file)
        .output()
        .expect("run daemonctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_valid_file_prints_the_event_count_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    fs::write(&file, format!("{GOOD}\n{GOOD}\n{GOOD}\n")).unwrap();

    let out = verify(&file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}: 3 valid events\n", file.display())
    );
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn an_empty_file_has_zero_valid_events_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    fs::write(&file, "").unwrap();

    let out = verify(&file);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains(": 0 valid events"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn malformed_lines_are_listed_with_their_numbers_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let missing_node = GOOD.replace(r#","nodeId":"node-3""#, "");
    fs::write(
        &file,
        format!("{GOOD}\nnot json\n{GOOD}\n{missing_node}\n{{\"ts\":"),
    )
    .unwrap();

    let out = verify(&file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let at = |n: u32| format!("{}:{n}: ", file.display());
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with(&at(2)), "{stdout}");
    assert!(
        lines[1].starts_with(&at(4)) && lines[1].contains("nodeId"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(&at(5)) && lines[2].contains("incomplete last line"),
        "{stdout}"
    );
    assert_eq!(
        lines[3],
        format!("{}: 2 valid events, 3 malformed lines", file.display())
    );
}

#[test]
fn an_unreadable_file_is_a_one_line_error_on_stderr_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing.jsonl");

    let out = verify(&file);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn a_directory_without_event_files_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = verify(dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}

// ===== many files =====

fn verify_many(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_daemonctl"))
        .args(["events", "verify"])
        .args(args)
        .output()
        .expect("run daemonctl")
}

/// 30 daily files as a rotating log leaves them, `events-20260101.jsonl`…
fn thirty_days(dir: &Path) -> Vec<std::path::PathBuf> {
    (1..=30)
        .map(|day| {
            let file = dir.join(format!("events-202601{day:02}.jsonl"));
            fs::write(&file, format!("{GOOD}\n{GOOD}\n")).unwrap();
            file
        })
        .collect()
}

#[test]
fn thirty_good_files_give_per_file_results_and_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let files = thirty_days(dir.path());
    let args: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();

    let out = verify_many(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 31, "{stdout}");
    assert_eq!(lines[0], format!("{}: 2 valid events", files[0].display()));
    assert_eq!(lines[30], "total: 30 files, 60 valid events");

    // A directory stands for its *.jsonl files: the same result.
    let out = verify_many(&[dir.path()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), stdout);
}

#[test]
fn one_bad_file_among_many_is_exit_1_and_the_others_are_still_verified() {
    let dir = tempfile::tempdir().unwrap();
    let files = thirty_days(dir.path());
    fs::write(&files[7], format!("{GOOD}\nnot json\n")).unwrap();

    let out = verify_many(&[dir.path()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("{}:2: ", files[7].display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{}: 1 valid event, 1 malformed line",
            files[7].display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("total: 30 files, 59 valid events, 1 malformed line\n"),
        "{stdout}"
    );
}

#[test]
fn an_unreadable_file_among_many_is_exit_2_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = thirty_days(dir.path());
    let missing = dir.path().join("events-20260299.jsonl");
    let out = verify_many(&[files[0].as_path(), &missing, files[1].as_path()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("events-20260299.jsonl"));
    assert!(
        text(&out.stdout).ends_with("total: 3 files, 4 valid events, 1 unreadable\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn problems_quoting_the_line_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ev\x1b[2J.jsonl");
    let evil = GOOD.replace("\"INFO\"", "\"\\u001b]0;pwned\\u0007\\u009b31m\"");
    fs::write(&file, format!("{evil}\n\x1b[2J\u{9b}raw\n")).unwrap();
    let out = verify(&file);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        !stdout
            .chars()
            .any(|c| (c < ' ' && c != '\n') || ('\u{7f}'..='\u{9f}').contains(&c)),
        "{stdout:?}"
    );
    assert!(stdout.contains("ev\\x1b[2J.jsonl:1: "), "{stdout}");
}
