//! Where the demo puts its socket and state when not told, and what it refuses: the
//! kernel's `daemonkit::paths` rules on the binary operators run.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEMO: &str = env!("CARGO_BIN_EXE_daemonkit-demo");

/// Uids no real account uses: the one running the demo and a stranger.
const USER: u32 = 60_201;
const STRANGER: u32 = 60_202;
/// The demo's exit code for a configuration it refuses (EX_CONFIG).
const EX_CONFIG: i32 = 78;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Prints `SKIPPED: why` and returns true, or panics when DAEMONKIT_REQUIRE_ALL=1.
fn skip(why: &str) -> bool {
    if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("prerequisite missing (DAEMONKIT_REQUIRE_ALL=1): {why}");
    }
    eprintln!("SKIPPED: {why}");
    true
}

/// A temp dir shaped like /tmp: world-writable with the sticky bit.
fn shared_tmp() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// The demo with no --socket nor --state-dir, its directories from `env` only.
fn demo(as_user: Option<u32>, env: &[(&str, &Path)]) -> Command {
    let mut cmd = match as_user {
        Some(uid) => {
            let mut cmd = Command::new("setpriv");
            let id = uid.to_string();
            cmd.args(["--reuid", &id, "--regid", &id, "--clear-groups", DEMO]);
            cmd
        }
        None => Command::new(DEMO),
    };
    for var in [
        "XDG_RUNTIME_DIR",
        "RUNTIME_DIRECTORY",
        "STATE_DIRECTORY",
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "WATCHDOG_USEC",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// Runs a demo that must refuse to start, within a few seconds.
fn refused(mut cmd: Command) -> Output {
    let child = cmd.spawn().unwrap();
    let out = wait_output(child, Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(EX_CONFIG),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Starts the demo, waits for `socket` to appear, then stops it; returns its stderr.
fn serves_at(mut cmd: Command, socket: &Path) -> String {
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the demo exited ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "no socket at {socket:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = wait_output(child, Duration::from_secs(10));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_temp_dir_fallback_is_created_private_and_verified() {
    let tmp = shared_tmp();
    let me = rustix::process::geteuid().as_raw();
    let base = tmp.path().join(format!("daemonkit-demo-{me}"));
    serves_at(
        demo(None, &[("TMPDIR", tmp.path())]),
        &base.join("control.sock"),
    );
    for dir in [&base, &base.join("state")] {
        let meta = fs::symlink_metadata(dir).unwrap();
        assert!(meta.is_dir(), "{dir:?}");
        assert_eq!(meta.mode() & 0o7777, 0o700, "{dir:?}");
        assert_eq!(meta.uid(), me, "{dir:?}");
    }
}

#[test]
fn systemd_directories_come_first_and_the_first_of_several_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let (run, other, state) = (
        dir.path().join("run"),
        dir.path().join("b"),
        dir.path().join("lib"),
    );
    for d in [&run, &other, &state] {
        fs::create_dir(d).unwrap();
    }
    let mut list = run.clone().into_os_string();
    list.push(":");
    list.push(&other);
    let mut cmd = demo(
        None,
        &[("STATE_DIRECTORY", &state), ("XDG_RUNTIME_DIR", dir.path())],
    );
    cmd.env("RUNTIME_DIRECTORY", list);
    serves_at(cmd, &run.join("control.sock"));
    let events: Vec<_> = fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!events.is_empty(), "no event log in $STATE_DIRECTORY");
    assert!(fs::read_dir(&other).unwrap().next().is_none());
}

#[test]
fn a_temp_dir_planted_by_another_user_is_refused_naming_owner_and_mode() {
    if !is_root() && skip("switching uid and chown need root") {
        return;
    }
    let tmp = shared_tmp();
    let planted = tmp.path().join(format!("daemonkit-demo-{USER}"));
    fs::create_dir(&planted).unwrap();
    chown(&planted, Some(STRANGER), Some(STRANGER)).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o777)).unwrap();

    let out = refused(demo(Some(USER), &[("TMPDIR", tmp.path())]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("owner uid {STRANGER}, mode 0777")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("must be owned by uid {USER}")),
        "{stderr}"
    );
    // Nothing was created in it.
    assert!(fs::read_dir(&planted).unwrap().next().is_none());
}

#[test]
fn a_state_symlink_in_the_fallback_is_refused() {
    let tmp = shared_tmp();
    let me = rustix::process::geteuid().as_raw();
    let base = tmp.path().join(format!("daemonkit-demo-{me}"));
    fs::create_dir(&base).unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), base.join("state")).unwrap();

    let out = refused(demo(None, &[("TMPDIR", tmp.path())]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(fs::read_dir(elsewhere.path()).unwrap().next().is_none());
}

#[test]
fn a_group_writable_fallback_of_our_own_is_refused() {
    let tmp = shared_tmp();
    let me = rustix::process::geteuid().as_raw();
    let base = tmp.path().join(format!("daemonkit-demo-{me}"));
    fs::create_dir(&base).unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o770)).unwrap();
    let out = refused(demo(None, &[("TMPDIR", tmp.path())]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mode 0770") && stderr.contains("chmod 0700"),
        "{stderr}"
    );
}

// ===== an explicit --socket =====

#[test]
fn an_explicit_socket_under_a_world_writable_dir_without_sticky_bit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = demo(None, &[]);
    cmd.arg("--socket")
        .arg(open.join("control.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    let child = cmd.spawn().unwrap();
    let out = wait_output(child, Duration::from_secs(10));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lacks the sticky bit") && stderr.contains("mode 0777"),
        "{stderr}"
    );
    assert!(!open.join("control.sock").exists());
}

#[test]
fn an_explicit_socket_under_a_sticky_shared_dir_is_served_with_a_warning() {
    let tmp = shared_tmp();
    let state = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("control.sock");
    let mut cmd = demo(None, &[]);
    cmd.arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(state.path());
    let stderr = serves_at(cmd, &socket);
    let warning = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["reason"] == "ControlPlaneSocketDirShared");
    let warning = warning.unwrap_or_else(|| panic!("no ControlPlaneSocketDirShared in {stderr}"));
    assert_eq!(warning["level"], "WARN");
}

#[test]
fn an_explicit_socket_in_a_directory_owned_by_another_user_is_refused() {
    if !is_root() && skip("chown needs root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    chown(&theirs, Some(STRANGER), Some(STRANGER)).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = demo(None, &[]);
    cmd.arg("--socket")
        .arg(theirs.join("control.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    let out = wait_output(cmd.spawn().unwrap(), Duration::from_secs(10));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("owned by neither root nor") && stderr.contains(&format!("uid {STRANGER}")),
        "{stderr}"
    );
    assert!(!theirs.join("control.sock").exists());
}
