//! Every user-facing example runs to completion, so none of them rots: the daemons are
//! started as a user would (no flags), asked over their control socket what the example
//! claims to show, and stopped with SIGTERM; the others run to their end.
//!
//! Each example gets private directories through the variables it honours
//! (`RUNTIME_DIRECTORY`, `STATE_DIRECTORY`, `TMPDIR`), so runs never meet.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Builds every example of the workspace's crates once; returns `target/<profile>`.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        common::cargo_build(&[
            "-p",
            "daemonkit",
            "-p",
            "daemonkit-eventlog",
            "-p",
            "daemonkit-filepruner",
            "--examples",
        ])
    })
}

fn example(name: &str) -> PathBuf {
    built().join("examples").join(name)
}

/// An example's private directories.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        for sub in ["run", "state", "tmp"] {
            std::fs::create_dir(root.path().join(sub)).unwrap();
        }
        Sandbox { root }
    }
    fn path(&self, sub: &str) -> PathBuf {
        self.root.path().join(sub)
    }
    fn socket(&self) -> PathBuf {
        self.path("run").join("control.sock")
    }
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env("RUNTIME_DIRECTORY", self.path("run"))
            .env("STATE_DIRECTORY", self.path("state"))
            .env("TMPDIR", self.path("tmp"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}

/// A child killed if the test fails before it exits.
struct Running(Option<Child>);

impl Running {
    fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }
    fn terminate(mut self) -> Output {
        let child = self.0.take().unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        wait(child, Duration::from_secs(10))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn exited(status: ExitStatus, code: i32, output: &Output) {
    assert_eq!(
        status.code(),
        Some(code),
        "signal {:?}; stdout:\n{}\nstderr:\n{}",
        status.signal(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GET path` over the control socket: (status code, body); `None` while it cannot be
/// reached.
fn get(socket: &Path, path: &str) -> Option<(u16, String)> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// Polls `GET path` until `done(code, body)`, for at most 10 s.
fn until(socket: &Path, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((code, body)) = get(socket, path)
            && done(code, &body)
        {
            return (code, body);
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never satisfied the test"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(sandbox: &Sandbox, name: &str) -> Running {
    Running(Some(sandbox.command(example(name)).spawn().unwrap()))
}

#[test]
fn quickstart_serves_its_monitor_and_stops_cleanly() {
    let sandbox = Sandbox::new();
    let child = start(&sandbox, "quickstart");
    until(&sandbox.socket(), "/status", |code, body| {
        code == 200 && body.contains(r#""heartbeat":{"state":"running""#)
    });
    let output = child.terminate();
    exited(output.status, 0, &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("stopped cleanly after"), "{stdout}");
    // Flat records: the reason at the top level, as log pipelines match it.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(r#""reason":"Tick""#), "{stderr}");
}

#[test]
fn probes_exits_69_naming_the_reason_and_the_fix() {
    let sandbox = Sandbox::new();
    let child = sandbox.command(example("probes")).spawn().unwrap();
    let output = wait(child, Duration::from_secs(10));
    exited(output.status, 69, &output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("start-up probe failed: DataDirNotWritable: "),
        "{stderr}"
    );
    assert!(stderr.contains("resolution: mkdir -p "), "{stderr}");
}

#[test]
fn component_routes_serves_a_route_and_waits_for_a_missing_prerequisite() {
    let sandbox = Sandbox::new();
    let child = start(&sandbox, "component_routes");
    until(&sandbox.socket(), "/inventory/items", |code, body| {
        code == 200 && body.contains(r#""items":"#)
    });
    let (code, body) = until(&sandbox.socket(), "/ready", |_, body| {
        body.contains("SpoolMissing")
    });
    assert_eq!(code, 503, "{body}");
    let output = child.terminate();
    exited(output.status, 0, &output);
}

#[test]
fn connectivity_shows_a_degraded_monitor_without_restarting_it() {
    let sandbox = Sandbox::new();
    let child = start(&sandbox, "connectivity");
    until(&sandbox.socket(), "/status", |_, body| {
        body.contains(r#""state":"running""#)
    });
    // The uplink goes away after 3 s.
    let (_, body) = until(&sandbox.socket(), "/status", |_, body| {
        body.contains(r#""state":"degraded""#)
    });
    assert!(body.contains(r#""reason":"UplinkDown""#), "{body}");
    assert!(body.contains(r#""restarts":0"#), "{body}");
    let output = child.terminate();
    exited(output.status, 0, &output);
}

#[test]
fn disk_guard_reports_low_space_durably_and_serves_the_figures() {
    let sandbox = Sandbox::new();
    std::fs::set_permissions(
        sandbox.path("state"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // Every disk is "low" against a 100 % warning level.
    let child = Running(Some(
        sandbox
            .command(example("disk_guard"))
            .env("DISK_GUARD_WARN_PERCENT", "100")
            .spawn()
            .unwrap(),
    ));
    let (_, body) = until(&sandbox.socket(), "/disk/space", |code, body| {
        code == 200 && body.contains(r#""low":true"#)
    });
    assert!(body.contains(r#""available_bytes":"#), "{body}");
    let (_, status) = until(&sandbox.socket(), "/status", |_, body| {
        body.contains(r#""state":"degraded""#)
    });
    assert!(
        status.contains(r#""reason":"InsufficientSpace""#),
        "{status}"
    );
    assert!(
        status.contains(r#""retention":{"state":"running""#),
        "{status}"
    );
    let output = child.terminate();
    exited(output.status, 0, &output);

    // The crossing is in today's event file.
    let files: Vec<_> = std::fs::read_dir(sandbox.path("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let events = std::fs::read_to_string(&files[0]).unwrap();
    assert!(events.contains(r#""reason":"DiskSpaceLow""#), "{events}");
}

#[test]
fn systemd_notifies_readiness_keeps_the_watchdog_fed_and_serves_an_activated_socket() {
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        let why = "systemd-socket-activate is not installed (Debian package systemd)";
        if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
            panic!("{why}");
        }
        eprintln!("SKIPPED: {why}");
        return;
    }
    let sandbox = Sandbox::new();
    let notify_path = sandbox.path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let socket = sandbox.path("activated.sock");
    let child = Running(Some(
        sandbox
            .command("systemd-socket-activate")
            .arg("--listen")
            .arg(&socket)
            .arg(format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()))
            .arg("--setenv=WATCHDOG_USEC=200000")
            .arg(example("systemd"))
            .spawn()
            .unwrap(),
    ));
    // The first connection starts the service on the passed socket.
    let (code, _) = until(&socket, "/health", |code, _| code == 200);
    assert_eq!(code, 200);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = notify.recv(&mut buf).expect("sd_notify messages");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(child.pid() > 0);
    let output = child.terminate();
    exited(output.status, 0, &output);
    while let Ok(n) = notify.recv(&mut buf) {
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if seen.contains("STOPPING=1") {
            break;
        }
    }
    assert!(seen.contains("STOPPING=1"), "{seen}");
}

#[test]
fn eventlog_appends_rotates_repairs_and_verifies() {
    let sandbox = Sandbox::new();
    let child = sandbox.command(example("eventlog")).spawn().unwrap();
    let output = wait(child, Duration::from_secs(10));
    exited(output.status, 0, &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("cut a torn tail of 33 bytes"), "{stdout}");
    assert_eq!(stdout.matches("all valid").count(), 2, "{stdout}");
}

#[test]
fn retention_prints_a_dry_run_then_prunes() {
    let sandbox = Sandbox::new();
    let child = sandbox.command(example("retention")).spawn().unwrap();
    let output = wait(child, Duration::from_secs(10));
    exited(output.status, 0, &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("== dry run of "), "{stdout}");
    assert!(
        stdout.contains("remove   audit-20261001T000000Z.jsonl (OverCap)"),
        "{stdout}"
    );
    assert!(stdout.contains("protect  audit-current.jsonl"), "{stdout}");
}

#[test]
fn the_user_guides_quick_start_is_the_inventory_agent_example_as_written() {
    let guide = include_str!("../../../docs/user-guide.md");
    let example = include_str!("../examples/inventory_agent.rs");
    // The example is its header comment, then exactly the guide's code block.
    let code = example
        .split_once("\n\n")
        .map(|(_, code)| code)
        .expect("a header, a blank line, the code");
    assert!(
        guide.contains(&format!("```rust\n{code}```\n")),
        "docs/user-guide.md §1 and examples/inventory_agent.rs differ"
    );
}

#[test]
fn inventory_agent_serves_not_ready_without_its_data_directory() {
    let sandbox = Sandbox::new();
    let child = start(&sandbox, "inventory_agent");
    let (code, body) = until(&sandbox.socket(), "/ready", |_, body| {
        body.contains("DataDirNotWritable") || body.contains("DataDiskFull")
    });
    assert_eq!(code, 503, "{body}");
    until(&sandbox.socket(), "/inventory/hosts", |code, body| {
        code == 200 && body.contains(r#""hosts":12"#)
    });
    let output = child.terminate();
    exited(output.status, 0, &output);
}

/// Issue 10's consumer-shaped daemon: NOT READY until its upgrade directory exists (the
/// daemon serves meanwhile), then the upgrade monitor runs, records the applied version
/// in its durable state file and its route reports it; the audit trail records the start.
#[test]
fn host_agent_waits_for_its_upgrade_dir_then_records_the_applied_version() {
    let sandbox = Sandbox::new();
    let child = start(&sandbox, "host_agent");
    let (code, body) = until(&sandbox.socket(), "/status", |_, body| {
        body.contains("UpgradeDirOwnershipCheckFailed")
    });
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""traffic-shaper":{"state":"running""#),
        "{body}"
    );
    let upgrades = sandbox.path("state").join("upgrades");
    std::fs::create_dir(&upgrades).unwrap();
    std::fs::write(upgrades.join("v1.2.3"), b"").unwrap();
    until(
        &sandbox.socket(),
        "/consensus-node/upgrade",
        |code, body| code == 200 && body.contains(r#""upgrade":"running""#),
    );
    let state = sandbox.path("state").join("applied-version.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&state).is_ok_and(|s| s.contains("\"v1.2.3\"")) {
        assert!(
            Instant::now() < deadline,
            "no applied version in {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.terminate();
    exited(output.status, 0, &output);
    let audit = std::fs::read_dir(sandbox.path("state"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("audit-"))
        .expect("an audit file");
    let audit = std::fs::read_to_string(audit.path()).unwrap();
    assert!(audit.contains(r#""reason":"DaemonStarted""#), "{audit}");
}
