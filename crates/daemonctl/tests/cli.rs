//! The command line itself: completions, the man page, and where --socket is accepted.

mod common;

use std::process::{Command, Output};

fn daemonctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_daemonctl"))
        .args(args)
        .env_remove("DAEMONCTL_SOCKET")
        .output()
        .expect("run daemonctl")
}

#[test]
fn bash_completions_are_valid_bash_and_know_every_command() {
    let out = daemonctl(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let script = String::from_utf8(out.stdout).unwrap();
    for word in [
        "status",
        "describe",
        "watch",
        "verify",
        "tail",
        "prune",
        "--max-body",
        "--daemon",
    ] {
        assert!(script.contains(word), "{word} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daemonctl.bash");
    std::fs::write(&file, &script).unwrap();
    match Command::new("bash").arg("-n").arg(&file).output() {
        Ok(check) => assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        ),
        Err(_) => {
            common::skip("bash is not installed, so the script's syntax is not checked");
        }
    }
}

#[test]
fn other_shells_get_completions_too() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = daemonctl(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("describe"),
            "{shell}"
        );
    }
}

#[test]
fn the_man_page_is_roff_for_section_1() {
    let out = daemonctl(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH daemonctl 1"), "{page}");
    assert!(
        page.contains(".SH SUBCOMMANDS") && page.contains("describe"),
        "{page}"
    );
}

#[test]
fn socket_before_a_file_command_is_refused_not_ignored() {
    let out = daemonctl(&["--socket", "/tmp/x.sock", "events", "verify", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("do nothing with `events`"));
    let out = daemonctl(&["events", "verify", "--socket", "/tmp/x.sock", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses the unknown flag");
}

#[test]
fn prune_help_does_not_refer_to_itself() {
    let out = daemonctl(&["prune", "-h"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("see `daemonctl prune --help`"), "{help}");
    assert!(
        help.contains("The full rules and an example: daemonctl prune --help"),
        "{help}"
    );
}
