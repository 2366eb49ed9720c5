//! Whose socket daemonctl talks to: the socket directory rule, the server's peer
//! credentials, and the default path's private directory. Servers and daemonctl run as
//! other users through `setpriv` (the tests that need that run as root, else they skip).

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Answer, FakeDaemon, daemonctl, is_root, run, skip};

const HEALTHY: &[u8] = br#"{"web":{"state":"running","restarts":0}}"#;

/// Uids no real account uses, for the service, a stranger and an operator.
const SERVICE: u32 = 60_101;
const STRANGER: u32 = 60_102;
const OPERATOR: u32 = 60_103;
const OPERATORS_GROUP: u32 = 60_110;

fn mkdir(path: &Path, uid: u32, gid: u32, mode: u32) {
    fs::create_dir_all(path).unwrap();
    chown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A base directory everybody may traverse (tempfile makes them 0700).
fn base() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The helper below, run in a child process as `uid:gid`.
struct ServerAs(Child);

impl ServerAs {
    fn start(uid: u32, gid: u32, socket: &Path) -> ServerAs {
        let child = Command::new("setpriv")
            .args([
                "--reuid",
                &uid.to_string(),
                "--regid",
                &gid.to_string(),
                "--clear-groups",
            ])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "fake_daemon_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FAKE_DAEMON_SOCKET", socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("run setpriv");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "the fake daemon did not bind {socket:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        ServerAs(child)
    }
}

impl Drop for ServerAs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Not a test: the fake daemon that `ServerAs` runs under another uid.
#[test]
#[ignore = "helper: run by the other tests in a child process as another user"]
fn fake_daemon_child() {
    // Run by hand (`--include-ignored`) there is nothing to serve.
    let Some(socket) = std::env::var_os("FAKE_DAEMON_SOCKET").map(PathBuf::from) else {
        eprintln!("SKIPPED: a helper that ServerAs runs as another user");
        return;
    };
    let _daemon = FakeDaemon::serve(&socket, Answer::Body(200, HEALTHY.to_vec()));
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o660)).unwrap();
    loop {
        std::thread::park();
    }
}

fn status_as(
    user: Option<(u32, u32)>,
    socket: Option<&Path>,
    env: &[(&str, &Path)],
) -> common::Run {
    let mut cmd = match user {
        Some((uid, gid)) => {
            let mut cmd = Command::new("setpriv");
            cmd.args([
                "--reuid",
                &uid.to_string(),
                "--regid",
                &gid.to_string(),
                "--clear-groups",
            ])
            .arg(env!("CARGO_BIN_EXE_daemonctl"))
            .env_remove("DAEMONCTL_SOCKET")
            .env_remove("DAEMONCTL_DAEMON");
            cmd
        }
        None => daemonctl(),
    };
    cmd.arg("status")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("RUNTIME_DIRECTORY");
    if let Some(socket) = socket {
        cmd.arg("--socket").arg(socket);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd)
}

fn assert_refused(out: &common::Run, needles: &[&str]) {
    assert_eq!(out.code, Some(2), "{out:?}");
    let stderr = out.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

// ===== the socket's directory =====

#[test]
fn a_socket_dir_writable_by_group_or_others_is_refused_naming_owner_and_mode() {
    for mode in [0o777, 0o770, 0o1777, 0o775] {
        let dir = tempfile::tempdir().unwrap();
        let daemon = FakeDaemon::serve(
            &dir.path().join("control.sock"),
            Answer::Body(200, HEALTHY.to_vec()),
        );
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
        let out = status_as(None, Some(&daemon.socket), &[]);
        let me = rustix::process::geteuid().as_raw();
        assert_refused(
            &out,
            &[
                &format!("mode {mode:04o}"),
                &format!("uid {me})"),
                "may write to it",
            ],
        );
    }
}

#[test]
fn a_private_socket_dir_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = FakeDaemon::serve(
        &dir.path().join("control.sock"),
        Answer::Body(200, HEALTHY.to_vec()),
    );
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o750)).unwrap();
    let out = status_as(None, Some(&daemon.socket), &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn a_symlinked_socket_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    let _daemon = FakeDaemon::serve(
        &real.join("control.sock"),
        Answer::Body(200, HEALTHY.to_vec()),
    );
    std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
    let out = status_as(None, Some(&dir.path().join("link/control.sock")), &[]);
    assert_refused(&out, &["symbolic link", "link"]);
}

// ===== the server's peer credentials =====

#[test]
fn a_server_run_by_a_stranger_is_refused() {
    if !is_root() && skip("switching uid needs root") {
        return;
    }
    let base = base();
    // The stranger binds in its own directory; root then moves the live socket into the
    // service's directory, as a stranger with any write access there could.
    let own = base.path().join("stranger");
    mkdir(&own, STRANGER, STRANGER, 0o755);
    let service_dir = base.path().join("service");
    mkdir(&service_dir, SERVICE, SERVICE, 0o755);
    let _server = ServerAs::start(STRANGER, STRANGER, &own.join("control.sock"));
    fs::rename(own.join("control.sock"), service_dir.join("control.sock")).unwrap();

    let out = status_as(None, Some(&service_dir.join("control.sock")), &[]);
    assert_refused(
        &out,
        &[
            &format!("runs as uid {STRANGER}"),
            &format!("owner of the socket's directory (uid {SERVICE})"),
        ],
    );
}

#[test]
fn the_owner_of_the_socket_dir_may_serve_root() {
    if !is_root() && skip("switching uid needs root") {
        return;
    }
    let base = base();
    let service_dir = base.path().join("service");
    mkdir(&service_dir, SERVICE, SERVICE, 0o750);
    let _server = ServerAs::start(SERVICE, SERVICE, &service_dir.join("control.sock"));
    let out = status_as(None, Some(&service_dir.join("control.sock")), &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn an_operator_in_the_services_group_reaches_its_socket() {
    if !is_root() && skip("switching uid needs root") {
        return;
    }
    let base = base();
    let service_dir = base.path().join("service");
    mkdir(&service_dir, SERVICE, OPERATORS_GROUP, 0o750);
    let _server = ServerAs::start(SERVICE, OPERATORS_GROUP, &service_dir.join("control.sock"));
    let out = status_as(
        Some((OPERATOR, OPERATORS_GROUP)),
        Some(&service_dir.join("control.sock")),
        &[],
    );
    assert_eq!(out.code, Some(0), "{out:?}");

    // Someone outside the group cannot even connect: permission, not a trust question.
    let out = status_as(
        Some((STRANGER, STRANGER)),
        Some(&service_dir.join("control.sock")),
        &[],
    );
    assert_eq!(out.code, Some(2), "{out:?}");
}

// ===== the default path =====

#[test]
fn a_planted_default_dir_is_refused_for_its_owner() {
    if !is_root() && skip("switching uid needs root") {
        return;
    }
    // A shared temp dir (1777, like /tmp) where a stranger created the operator's
    // per-user directory first, mode 0755, and serves in it.
    let tmp = base();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = tmp.path().join(format!("daemonkit-demo-{OPERATOR}"));
    mkdir(&planted, STRANGER, STRANGER, 0o755);
    let socket = planted.join("control.sock");
    let _server = ServerAs::start(STRANGER, STRANGER, &socket);
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();

    let out = status_as(Some((OPERATOR, OPERATOR)), None, &[("TMPDIR", tmp.path())]);
    assert_refused(
        &out,
        &[
            &format!("owner uid {STRANGER}, mode 0755"),
            &format!("must be owned by uid {OPERATOR}"),
        ],
    );
}

#[test]
fn the_users_own_private_default_dir_is_used() {
    if !is_root() && skip("switching uid needs root") {
        return;
    }
    let tmp = base();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let own = tmp.path().join(format!("daemonkit-demo-{OPERATOR}"));
    mkdir(&own, OPERATOR, OPERATOR, 0o700);
    let _server = ServerAs::start(OPERATOR, OPERATOR, &own.join("control.sock"));
    let out = status_as(Some((OPERATOR, OPERATOR)), None, &[("TMPDIR", tmp.path())]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn daemon_name_picks_another_daemons_default_socket() {
    let xdg = tempfile::tempdir().unwrap();
    let dir = xdg.path().join("inventory-agent");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let _daemon = FakeDaemon::serve(
        &dir.join("control.sock"),
        Answer::Body(200, HEALTHY.to_vec()),
    );
    let mut cmd = daemonctl();
    cmd.args(["status", "--daemon", "inventory-agent"])
        .env("XDG_RUNTIME_DIR", xdg.path())
        .env_remove("RUNTIME_DIRECTORY");
    let out = run(cmd);
    assert_eq!(out.code, Some(0), "{out:?}");

    // The same through the environment, and before the command.
    let mut cmd = daemonctl();
    cmd.arg("status")
        .env("DAEMONCTL_DAEMON", "inventory-agent")
        .env("XDG_RUNTIME_DIR", xdg.path());
    assert_eq!(run(cmd).code, Some(0));
    let mut cmd = daemonctl();
    cmd.args(["--daemon", "inventory-agent", "health"])
        .env("XDG_RUNTIME_DIR", xdg.path());
    assert_eq!(run(cmd).code, Some(0));

    let mut cmd = daemonctl();
    cmd.args(["status", "--daemon", "../etc"]);
    assert_refused(&run(cmd), &["invalid --daemon name"]);
}

#[test]
fn help_prints_the_resolved_default_socket() {
    let xdg = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_daemonctl"))
        .args(["status", "--help"])
        .env("XDG_RUNTIME_DIR", xdg.path())
        .env_remove("DAEMONCTL_SOCKET")
        .env_remove("DAEMONCTL_DAEMON")
        .env_remove("RUNTIME_DIRECTORY")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let expected = xdg.path().join("daemonkit-demo/control.sock");
    assert!(help.contains(&expected.display().to_string()), "{help}");
    // --socket is not offered where it does nothing.
    for sub in [&["events", "verify", "--help"][..], &["prune", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_daemonctl"))
            .args(sub)
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("--socket"),
            "{sub:?}"
        );
    }
}
