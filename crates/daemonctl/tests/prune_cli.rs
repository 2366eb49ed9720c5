//! `daemonctl prune`, run as the real binary against real directories.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use jiff::{SignedDuration, Timestamp};

const FORMAT: &str = "%Y%m%dT%H%M%SZ";

fn daemonctl(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_daemonctl"));
    cmd.arg("prune").args(args);
    cmd
}

fn run(args: &[&str]) -> Output {
    daemonctl(args).output().expect("run daemonctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `audit-<timestamp>.jsonl`, stamped `days_ago` days before now.
fn audit(days_ago: i64) -> String {
    let stamp = Timestamp::now() - SignedDuration::from_hours(24 * days_ago);
    format!("audit-{}.jsonl", stamp.strftime(FORMAT))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Two files older than 90 days, three recent ones, one without a timestamp.
fn audit_dir() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let names = vec![audit(400), audit(200), audit(30), audit(20), audit(10)];
    for name in &names {
        fs::write(dir.path().join(name), b"{}\n").unwrap();
    }
    fs::write(dir.path().join("audit-current.jsonl"), b"{}\n").unwrap();
    (dir, names)
}

fn by_name_age(dir: &Path, keep: &str, extra: &[&str]) -> Output {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        dir,
        "--pattern",
        "audit-*.jsonl",
        "--keep",
        keep,
        "--max-age",
        "90d",
        "--timestamp-format",
        FORMAT,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn removes_old_files_then_the_oldest_beyond_keep_and_exits_0() {
    let (dir, names) = audit_dir();

    let out = by_name_age(dir.path(), "2", &[]);

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut expected = vec![
        names[3].clone(),
        names[4].clone(),
        "audit-current.jsonl".to_owned(),
    ];
    expected.sort();
    assert_eq!(listing(dir.path()), expected);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("removed       {}  (prunable)", names[0])),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "removed       {}  (over the --keep cap)",
            names[2]
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("protected     audit-current.jsonl"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(": 3 removed, 2 kept, 1 protected, 0 failed, 0 vanished\n"),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn dry_run_removes_nothing_and_says_what_would_go() {
    let (dir, _) = audit_dir();
    let before = listing(dir.path());

    let out = by_name_age(dir.path(), "2", &["--dry-run"]);

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(listing(dir.path()), before);
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("would remove").count(), 3, "{stdout}");
    assert!(
        stdout.contains("3 would be removed") && stdout.contains("(dry run: nothing was removed)"),
        "{stdout}"
    );
}

#[test]
fn json_prints_the_report_as_one_object() {
    let (dir, names) = audit_dir();

    let out = by_name_age(dir.path(), "2", &["--json"]);

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["dry_run"], false);
    assert_eq!(
        report["removed"],
        serde_json::json!([
            {"name": names[0], "reason": "prunable"},
            {"name": names[1], "reason": "prunable"},
            {"name": names[2], "reason": "over_cap"},
        ])
    );
    assert_eq!(report["kept"], serde_json::json!([names[3], names[4]]));
    assert_eq!(report["protected"][0]["name"], "audit-current.jsonl");
    assert_eq!(report["failures"], serde_json::json!([]));
}

#[test]
fn any_prunes_when_one_strategy_agrees() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("big.log"), vec![b'x'; 2048]).unwrap();
    fs::write(dir.path().join("small.log"), b"x").unwrap();
    let old = dir.path().join("old.log");
    fs::write(&old, b"x").unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let path = dir.path().to_str().unwrap();

    let all = run(&[
        path,
        "--pattern",
        "*.log",
        "--keep",
        "10",
        "--max-size",
        "1024",
        "--mtime-age",
        "7d",
    ]);
    assert_eq!(all.status.code(), Some(0), "{}", text(&all.stderr));
    assert_eq!(listing(dir.path()).len(), 3, "no file is both big and old");

    let any = run(&[
        path,
        "--pattern",
        "*.log",
        "--keep",
        "10",
        "--max-size",
        "1024",
        "--mtime-age",
        "7d",
        "--any",
    ]);
    assert_eq!(any.status.code(), Some(0), "{}", text(&any.stderr));
    assert_eq!(listing(dir.path()), ["small.log"]);
}

#[test]
fn a_pattern_that_leaves_the_directory_exits_2_with_one_line() {
    let (dir, _) = audit_dir();
    let before = listing(dir.path());

    let out = run(&[
        dir.path().to_str().unwrap(),
        "--pattern",
        "../*",
        "--keep",
        "0",
        "--max-size",
        "0",
    ]);

    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("daemonctl: invalid file pattern `../*`"),
        "{stderr}"
    );
    assert_eq!(listing(dir.path()), before);
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn a_bad_duration_exits_2_with_one_line() {
    let (dir, _) = audit_dir();

    let out = run(&[
        dir.path().to_str().unwrap(),
        "--pattern",
        "*",
        "--keep",
        "0",
        "--mtime-age",
        "7 fortnights",
    ]);

    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("invalid --mtime-age `7 fortnights`"),
        "{stderr}"
    );
}

#[test]
fn an_unsupported_timestamp_format_exits_2_with_one_line() {
    let (dir, _) = audit_dir();

    let out = by_name_age_with_format(dir.path(), "%d-%b-%Y");

    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("`%b` is not supported"), "{stderr}");
}

fn by_name_age_with_format(dir: &Path, format: &str) -> Output {
    run(&[
        dir.to_str().unwrap(),
        "--pattern",
        "*",
        "--keep",
        "0",
        "--max-age",
        "1d",
        "--timestamp-format",
        format,
    ])
}

#[test]
fn a_missing_directory_exits_2_naming_it() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("gone");

    let out = run(&[
        missing.to_str().unwrap(),
        "--pattern",
        "*",
        "--keep",
        "0",
        "--max-size",
        "0",
    ]);

    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot open directory") && stderr.contains("gone"),
        "{stderr}"
    );
}

#[test]
fn no_strategy_is_a_usage_error() {
    let (dir, _) = audit_dir();

    let out = run(&[
        dir.path().to_str().unwrap(),
        "--pattern",
        "*",
        "--keep",
        "0",
    ]);

    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--max-age"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn failed_removals_are_listed_and_exit_1() {
    let (dir, names) = audit_dir();
    // A directory its user may not write to: unlink fails with EACCES. Root
    // (or any DAC override) would remove anyway, so then the child runs as
    // `nobody`, which can read and enter the directory but not write it.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
    let overrides_permissions = fs::write(dir.path().join("probe"), b"").is_ok();
    let _ = fs::remove_file(dir.path().join("probe"));
    let path = dir.path().to_str().unwrap();
    let mut cmd = daemonctl(&[
        path,
        "--pattern",
        "audit-*.jsonl",
        "--keep",
        "10",
        "--max-age",
        "90d",
        "--timestamp-format",
        FORMAT,
    ]);
    if overrides_permissions {
        cmd.uid(65534).gid(65534);
    }

    let out = cmd.output().expect("run daemonctl");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();

    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for old in &names[..2] {
        assert!(
            stdout.contains(&format!("FAILED        {old}  (cannot remove")),
            "{stdout}"
        );
        assert!(dir.path().join(old).exists());
    }
    assert!(
        stdout.contains("0 removed, 3 kept, 1 protected, 2 failed"),
        "{stdout}"
    );
}

// ===== hostile file names =====

/// Names that fake a `removed` line, rewrite the terminal, reorder text, or are not UTF-8.
fn hostile_names() -> Vec<Vec<u8>> {
    vec![
        b"audit-a\nremoved       audit-fake.jsonl  (prunable).jsonl".to_vec(),
        b"audit-b\x1b]0;pwned\x07\x1b[2J.jsonl".to_vec(),
        "audit-c\u{202e}lnosj.exe\u{9b}31m.jsonl"
            .as_bytes()
            .to_vec(),
        b"audit-d\xff\xfe.jsonl".to_vec(),
    ]
}

fn hostile_dir() -> tempfile::TempDir {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    for name in hostile_names() {
        fs::write(dir.path().join(std::ffi::OsStr::from_bytes(&name)), b"x").unwrap();
    }
    dir
}

fn prune_all(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        dir.to_str().unwrap(),
        "--pattern",
        "audit-*",
        "--keep",
        "100",
        "--max-size",
        "0",
        "--dry-run",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn file_names_are_printed_escaped_so_none_fakes_a_line_or_a_control() {
    let dir = hostile_dir();
    let out = prune_all(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // One line per file and the summary: the newline in a name made no line of its own.
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert_eq!(stdout.matches("would remove ").count(), 4, "{stdout}");
    assert!(
        !stdout.chars().any(|c| (c < ' ' && c != '\n')
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{202a}'..='\u{202e}').contains(&c)),
        "{stdout:?}"
    );
    assert!(stdout.contains("audit-a\\nremoved"), "{stdout}");
    assert!(
        stdout.contains("audit-b\\x1b]0;pwned\\x07\\x1b[2J.jsonl"),
        "{stdout}"
    );
    assert!(
        stdout.contains("audit-c\\u{202e}lnosj.exe\\u{009b}31m.jsonl"),
        "{stdout}"
    );
    assert!(stdout.contains("audit-d\\xff\\xfe.jsonl"), "{stdout}");
}

#[test]
fn json_carries_the_exact_names_even_when_not_utf8() {
    let dir = hostile_dir();
    let out = prune_all(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<Vec<u8>> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| match &r["name"] {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            other => other["bytes"]
                .as_array()
                .unwrap_or_else(|| panic!("name neither a string nor bytes: {other}"))
                .iter()
                .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
                .collect(),
        })
        .collect();
    names.sort();
    let mut expected = hostile_names();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(
        report["removed"][3]["name"],
        serde_json::json!({"bytes": hostile_names()[3]})
    );
    assert_eq!(report["dir"], dir.path().to_str().unwrap());
}
