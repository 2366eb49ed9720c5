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
fn a_directory_is_unreadable_and_exits_2() {
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
