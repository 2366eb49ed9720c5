//! `daemonctl events tail`, run as the real binary on a rotating set of real files.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// An event line whose message is `n`.
fn line(n: u32) -> String {
    format!(
        r#"{{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"Step","msg":"{n}","operationId":"op-1","nodeId":"node-3"}}"#
    )
}

fn lines(range: std::ops::RangeInclusive<u32>) -> String {
    range.map(|n| line(n) + "\n").collect()
}

fn tail(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_daemonctl"))
        .args(["events", "tail"])
        .args(args)
        .arg(path)
        .output()
        .expect("run daemonctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Three days of a rotating set, including a size-rotated part, and a stranger.
fn rotating_set(dir: &Path) {
    fs::write(dir.join("events-20260101.jsonl"), lines(1..=3)).unwrap();
    fs::write(dir.join("events-20260102.jsonl"), lines(4..=5)).unwrap();
    fs::write(dir.join("events-20260102-1.jsonl"), lines(6..=6)).unwrap();
    fs::write(dir.join("notes.txt"), "not an event file\n").unwrap();
}

#[test]
fn prints_the_newest_lines_across_the_set_in_order() {
    let dir = tempfile::tempdir().unwrap();
    rotating_set(dir.path());
    let out = tail(&["-n", "4"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), lines(3..=6));

    let out = tail(&["-n", "100"], dir.path());
    assert_eq!(text(&out.stdout), lines(1..=6));
}

#[test]
fn prints_the_newest_lines_of_one_file() {
    let dir = tempfile::tempdir().unwrap();
    rotating_set(dir.path());
    let out = tail(&["-n", "2"], &dir.path().join("events-20260101.jsonl"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), lines(2..=3));
}

#[test]
fn several_sets_in_one_directory_need_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    rotating_set(dir.path());
    fs::write(dir.path().join("audit-20260105.jsonl"), lines(99..=99)).unwrap();
    let out = tail(&[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("audit, events") && stderr.contains("--prefix"),
        "{stderr}"
    );

    let out = tail(&["-n", "1", "--prefix", "events"], dir.path());
    assert_eq!(text(&out.stdout), lines(6..=6));
}

#[test]
fn lines_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events-20260101.jsonl");
    fs::write(&file, b"\x1b]0;pwned\x07 \xff\xc2\x9b31m\n").unwrap();
    let out = tail(&[], &file);
    assert_eq!(text(&out.stdout), "\\x1b]0;pwned\\x07 \\xff\\u{009b}31m\n");
}

// ===== --follow =====

struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(dir: &Path) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_daemonctl"))
            .args([
                "events",
                "tail",
                "-n",
                "1",
                "--follow",
                "--interval",
                "20ms",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    fn expect(&self, n: u32) {
        let got = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("line {n} never came"));
        assert_eq!(got, line(n));
    }

    fn expect_nothing(&self) {
        if let Ok(got) = self.lines.recv_timeout(Duration::from_millis(200)) {
            panic!("unexpected line {got}");
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(file: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn follow_prints_appended_lines_and_follows_rotation_to_a_newer_file() {
    let dir = tempfile::tempdir().unwrap();
    rotating_set(dir.path());
    let follower = Follower::start(dir.path());
    follower.expect(6);

    append(&dir.path().join("events-20260102-1.jsonl"), &lines(7..=7));
    follower.expect(7);

    // The writer rotates: the old file gets its last line, a newer one starts.
    append(&dir.path().join("events-20260102-1.jsonl"), &lines(8..=8));
    fs::write(dir.path().join("events-20260103.jsonl"), lines(9..=10)).unwrap();
    follower.expect(8);
    follower.expect(9);
    follower.expect(10);

    // A line being written is printed only once complete.
    let newest = dir.path().join("events-20260103.jsonl");
    let eleven = line(11);
    append(&newest, &eleven[..20]);
    follower.expect_nothing();
    append(&newest, &format!("{}\n", &eleven[20..]));
    follower.expect(11);

    // A file of another set or name does not disturb it.
    fs::write(dir.path().join("audit-20260109.jsonl"), lines(99..=99)).unwrap();
    append(&newest, &lines(12..=12));
    follower.expect(12);
}
