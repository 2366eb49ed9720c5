//! daemonctl against a malicious or broken daemon: a fake server on a real Unix socket,
//! the real daemonctl binary, its exit code, its output and its peak memory.

mod common;

use common::{Answer, FakeDaemon, daemonctl, has_terminal_controls, run};

/// Memory daemonctl may use at most, whatever the server sends: the 16 MiB body limit
/// plus the program itself, with room to spare.
const RSS_BOUND_KIB: i64 = 64 << 10;

fn fake(answer: Answer) -> (tempfile::TempDir, FakeDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = FakeDaemon::serve(&dir.path().join("control.sock"), answer);
    (dir, daemon)
}

fn status(daemon: &FakeDaemon, extra: &[&str]) -> common::Run {
    let mut cmd = daemonctl();
    cmd.arg("status")
        .arg("--socket")
        .arg(&daemon.socket)
        .args(extra);
    run(cmd)
}

/// A healthy flat status: the baseline for memory.
fn healthy() -> Answer {
    Answer::Body(200, br#"{"web":{"state":"running","restarts":0}}"#.to_vec())
}

fn assert_one_line_refusal(run: &common::Run, needle: &str) {
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(run.stdout, b"", "{run:?}");
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    assert!(has_terminal_controls(&run.stderr).is_none());
}

#[test]
fn a_1_gib_body_is_refused_at_once_with_bounded_memory() {
    let (_dir, base) = fake(healthy());
    let baseline = status(&base, &[]);
    assert_eq!(baseline.code, Some(0), "{baseline:?}");

    let (_dir2, daemon) = fake(Answer::GiB);
    let out = status(&daemon, &[]);
    assert_one_line_refusal(&out, "1073741824 bytes, over the 16 MiB limit");
    eprintln!(
        "peak RSS: healthy answer {} KiB, 1 GiB body {} KiB",
        baseline.max_rss_kib, out.max_rss_kib
    );
    assert!(out.max_rss_kib < RSS_BOUND_KIB, "{} KiB", out.max_rss_kib);
}

#[test]
fn an_endless_chunked_body_stops_at_the_limit_with_bounded_memory() {
    let (_dir, daemon) = fake(Answer::EndlessChunked);
    let out = status(&daemon, &[]);
    assert_one_line_refusal(&out, "over the 16 MiB limit");
    assert!(out.stderr().contains("--max-body"), "{}", out.stderr());
    eprintln!("peak RSS: endless chunked body {} KiB", out.max_rss_kib);
    assert!(out.max_rss_kib < RSS_BOUND_KIB, "{} KiB", out.max_rss_kib);

    // A lower limit stops it sooner and smaller.
    let small = status(&daemon, &["--max-body", "1048576"]);
    assert_one_line_refusal(&small, "over the 1 MiB limit");
    eprintln!(
        "peak RSS: endless chunked body, --max-body 1 MiB {} KiB",
        small.max_rss_kib
    );
    assert!(small.max_rss_kib < out.max_rss_kib, "{small:?} vs {out:?}");
}

#[test]
fn an_endless_unframed_body_stops_at_the_limit() {
    let (_dir, daemon) = fake(Answer::EndlessUnframed);
    let out = status(&daemon, &["--max-body", "65536"]);
    assert_one_line_refusal(&out, "over the 64 KiB limit");
}

#[test]
fn max_body_raises_the_limit_for_a_legitimately_large_answer() {
    // 17 MiB of valid status: over the default, under a raised limit.
    let filler = "x".repeat(17 << 20);
    let body = format!(r#"{{"web":{{"state":"running","note":"{filler}"}}}}"#).into_bytes();
    let (_dir, daemon) = fake(Answer::Body(200, body));
    assert_one_line_refusal(&status(&daemon, &[]), "over the 16 MiB limit");
    let raised = status(&daemon, &["--max-body", "33554432"]);
    assert_eq!(raised.code, Some(0), "{}", raised.stderr());
    assert!(raised.stdout().contains("web"));
}

#[test]
fn an_endless_response_head_is_refused() {
    let (_dir, daemon) = fake(Answer::EndlessHead);
    let out = status(&daemon, &[]);
    assert_one_line_refusal(&out, "response head over the 64 KiB limit");
    assert!(out.max_rss_kib < RSS_BOUND_KIB, "{} KiB", out.max_rss_kib);
}

#[test]
fn a_never_answering_server_times_out_with_exit_2() {
    let (_dir, daemon) = fake(Answer::Silent);
    let out = status(&daemon, &["--timeout", "300ms"]);
    assert_one_line_refusal(&out, "did not answer /status completely within 300ms");
    assert!(out.elapsed.as_secs() < 3, "{:?}", out.elapsed);
}

#[test]
fn invalid_json_is_exit_2_with_one_line() {
    let (_dir, daemon) = fake(Answer::Body(200, b"<html>\x1b[2Jhello".to_vec()));
    let out = status(&daemon, &[]);
    assert_one_line_refusal(&out, "something that is not JSON");
}

#[test]
fn json_of_the_wrong_shape_is_exit_2() {
    let (_dir, daemon) = fake(Answer::Body(200, b"[1,2,3]".to_vec()));
    assert_one_line_refusal(&status(&daemon, &[]), "not a status document");
}

#[test]
fn http_500_is_exit_2_with_the_daemons_error_escaped() {
    let body = br#"{"error":"database gone\u001b[2J\u001b]0;owned\u0007"}"#.to_vec();
    let (_dir, daemon) = fake(Answer::Body(500, body));
    let out = status(&daemon, &[]);
    assert_one_line_refusal(
        &out,
        "with 500 Internal Server Error: database gone\\x1b[2J",
    );

    let (_dir2, daemon) = fake(Answer::Body(503, b"\x1b[31mplain text\r\n".to_vec()));
    let out = status(&daemon, &[]);
    assert_one_line_refusal(&out, "503 Service Unavailable: \\x1b[31mplain text\\r\\n");
}

/// A status document with an escape sequence, CR/LF, C1 and bidi characters in every
/// field the table shows.
fn hostile_status() -> Vec<u8> {
    let bad = r#"\u001b]0;pwned\u0007\u001b[2J\r\nweb  running  0s ago\u009b31m\u202egnp"#;
    format!(
        r#"{{"evil{bad}":{{"state":"degraded{bad}","restarts":1,
            "state_since":"2026-01-01T00:00:00Z",
            "error":{{"reason":"R{bad}","message":"M{bad}","resolution":"S{bad}",
                      "since":"2026-01-01T00:00:00Z"}},
            "extra{bad}":"E{bad}"}}}}"#
    )
    .into_bytes()
}

#[test]
fn escapes_in_every_field_are_printed_escaped_in_every_output() {
    let (_dir, daemon) = fake(Answer::Body(200, hostile_status()));
    for args in [
        vec!["status"],
        vec!["status", "-o", "wide"],
        vec!["status", "-o", "json"],
        vec!["status", "--json"],
        vec!["get", "/status"],
    ] {
        let mut cmd = daemonctl();
        cmd.args(&args).arg("--socket").arg(&daemon.socket);
        let out = run(cmd);
        assert_eq!(
            out.code,
            Some(if args[0] == "get" { 0 } else { 1 }),
            "{args:?}: {out:?}"
        );
        if let Some(found) = has_terminal_controls(&out.stdout) {
            panic!("{args:?} printed a terminal control: {found}");
        }
        let stdout = out.stdout();
        if args.contains(&"json") || args.contains(&"--json") || args[0] == "get" {
            // Still the exact document.
            let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let sent: serde_json::Value = serde_json::from_slice(&hostile_status()).unwrap();
            assert_eq!(printed, sent, "{args:?}");
        } else {
            // Header plus one row: the forged "web running" row is not a row.
            assert_eq!(stdout.lines().count(), 2, "{args:?}: {stdout}");
            assert!(
                stdout.contains("evil\\x1b]0;pwned\\x07\\x1b[2J\\r\\nweb"),
                "{stdout}"
            );
            assert!(stdout.contains("\\u{009b}31m\\u{202e}gnp"), "{stdout}");
            for field in ["degraded\\x1b", "R\\x1b", "S\\x1b"] {
                assert!(stdout.contains(field), "{field} missing: {stdout}");
            }
            if args.contains(&"wide") {
                assert!(stdout.contains("M\\x1b"), "{stdout}");
            }
        }
    }
}

#[test]
fn describe_escapes_every_field_it_shows() {
    let (_dir, daemon) = fake(Answer::Body(200, hostile_status()));
    let name = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\r\nweb  running  0s ago\u{9b}31m\u{202e}gnp";
    let mut cmd = daemonctl();
    cmd.args(["describe", name, "--socket"]).arg(&daemon.socket);
    let out = run(cmd);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        has_terminal_controls(&out.stdout).is_none(),
        "{}",
        out.stdout()
    );
    let stdout = out.stdout();
    for field in [
        "State:",
        "Reason:",
        "Message:",
        "Resolution:",
        "Since:",
        "extra\\x1b",
    ] {
        assert!(stdout.contains(field), "{field} missing: {stdout}");
    }
    assert!(stdout.contains("E\\x1b]0;pwned"), "{stdout}");
}

#[test]
fn health_and_get_print_escaped() {
    let (_dir, daemon) = fake(Answer::Body(200, br#"{"status":"ok\u001b[2J"}"#.to_vec()));
    let mut cmd = daemonctl();
    cmd.args(["health", "--socket"]).arg(&daemon.socket);
    let out = run(cmd);
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout(), "ok\\x1b[2J\n");
}
