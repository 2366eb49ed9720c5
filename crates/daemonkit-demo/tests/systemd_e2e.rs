//! The demo under a real systemd: systemd boots as PID 1 in a `systemd-nspawn` container
//! built from this machine's own `/usr`, with the test-built `daemonkit-demo` and
//! `daemonctl`, the units from `contrib/systemd/` and the `contrib/sysusers.d/` snippet
//! installed as an operator would. Every check goes through `systemctl`, `journalctl`,
//! `systemd-analyze` and `daemonctl` inside the container.
//!
//! Needs root and `systemd-nspawn` (Debian package `systemd-container`). Without them the
//! test prints `SKIPPED: <why>` on stderr; with `DAEMONKIT_REQUIRE_ALL=1` (set by
//! `.ci/run`) it fails instead.
//!
//! The host is never changed: the container's root is a temp dir holding a copy of
//! `/etc`, the container has its own network namespace, `/usr` is bound read-only, and
//! the container and its directory are removed when the test ends, however it ends.
//!
//! Run it alone, with its figures (the unit's exposure score, timings):
//! `cargo test -p daemonkit-demo --test systemd_e2e -- --nocapture`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DEMO: &str = env!("CARGO_BIN_EXE_daemonkit-demo");
const UNIT: &str = "daemonkit-demo.service";
const SOCKET_UNIT: &str = "daemonkit-demo.socket";
/// The control socket, as the units name it.
const SOCKET: &str = "/run/daemonkit-demo/control.sock";
/// The state directory (`StateDirectory=`) inside the container.
const STATE: &str = "var/lib/daemonkit-demo";
/// The unit's `ExecStart=` binary.
const BIN: &str = "/usr/local/bin/daemonkit-demo";
/// A member of the service's group, and a user who is not.
const OPERATOR: &str = "dkoperator";
const STRANGER: &str = "dkstranger";
/// The exposure score the hardened unit must not exceed ("OK" in systemd's words).
const SCORE_LIMIT: f64 = 2.5;

// ===== prerequisites =====

/// Why this test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (systemd-nspawn boots a container)".into());
    }
    for tool in ["systemd-nspawn", "nsenter", "runuser"] {
        if find_in_path(tool).is_none() {
            return Some(format!(
                "{tool} not found (systemd-nspawn: Debian package systemd-container)"
            ));
        }
    }
    if !Path::new("/usr/lib/systemd/systemd").exists() {
        return Some("/usr/lib/systemd/systemd not found (Debian package systemd)".into());
    }
    if !daemonctl().exists() {
        return Some(format!(
            "{} not built (cargo build -p daemonctl, or cargo test --workspace)",
            daemonctl().display()
        ));
    }
    None
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
}

/// The daemonctl binary, built next to the demo by `cargo test --workspace`.
fn daemonctl() -> PathBuf {
    Path::new(DEMO).with_file_name("daemonctl")
}

// ===== the container =====

/// A systemd booted in a `systemd-nspawn` container whose root is a temp dir. Killed
/// and removed on drop.
struct Container {
    nspawn: Child,
    /// The host PID of the container's systemd (the child of `systemd-nspawn`).
    init: i32,
    /// Holds `root/` (the container's root), `bin/` (bound on /usr/local/bin) and
    /// `nspawn.log`.
    base: tempfile::TempDir,
}

impl Container {
    /// Builds the root directory, installs the demo, boots and waits for systemd to
    /// finish booting.
    fn boot() -> Container {
        let base = tempfile::Builder::new()
            .prefix("daemonkit-e2e-")
            .tempdir()
            .unwrap();
        // 0755 all the way: in a 0700 directory every unprivileged service fails with
        // 200/CHDIR.
        std::fs::set_permissions(base.path(), PermissionsExt::from_mode(0o755)).unwrap();
        let root = base.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, PermissionsExt::from_mode(0o755)).unwrap();

        // /etc is the host's, copied; /usr is the host's, bound read-only; the merged-/usr
        // symlinks as on the host. nspawn looks for os-release before binding /usr.
        run_host(
            Command::new("cp")
                .arg("-a")
                .arg("/etc")
                .arg(root.join("etc")),
        );
        for dir in ["bin", "lib", "lib64", "sbin"] {
            if let Ok(target) = std::fs::read_link(Path::new("/").join(dir)) {
                std::os::unix::fs::symlink(target, root.join(dir)).unwrap();
            }
        }
        for dir in ["usr/lib", "var", "run", "tmp", "root", "proc", "sys", "dev"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::copy("/usr/lib/os-release", root.join("usr/lib/os-release")).unwrap();
        // The host's mounts and encrypted volumes are not the container's: their units
        // would wait for devices that do not exist in it.
        for table in ["fstab", "crypttab"] {
            let _ = std::fs::remove_file(root.join("etc").join(table));
        }
        std::fs::write(root.join("etc/fstab"), "").unwrap();
        // Only what this test starts runs: none of the host's enabled services or timers.
        for wants in ["multi-user.target.wants", "timers.target.wants"] {
            let dir = root.join("etc/systemd/system").join(wants);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
        }

        // The install an operator does: binaries, units, sysusers.d snippet.
        let bin = base.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, PermissionsExt::from_mode(0o755)).unwrap();
        for from in [PathBuf::from(DEMO), daemonctl()] {
            let to = bin.join(from.file_name().unwrap());
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).unwrap();
            }
        }
        let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib");
        for unit in [UNIT, SOCKET_UNIT] {
            std::fs::copy(
                contrib.join("systemd").join(unit),
                root.join("etc/systemd/system").join(unit),
            )
            .unwrap();
        }
        std::fs::create_dir_all(root.join("etc/sysusers.d")).unwrap();
        std::fs::copy(
            contrib.join("sysusers.d/daemonkit-demo.conf"),
            root.join("etc/sysusers.d/daemonkit-demo.conf"),
        )
        .unwrap();
        std::fs::write(
            root.join("etc/sysusers.d/e2e-users.conf"),
            format!(
                "u {OPERATOR} - \"operator\" / /usr/sbin/nologin\n\
                 m {OPERATOR} daemonkit-demo\n\
                 u {STRANGER} - \"stranger\" / /usr/sbin/nologin\n"
            ),
        )
        .unwrap();
        // Restarts in 100 ms rather than 5 s: the policy is under test, not the delay.
        write_drop_in(&root, "e2e", "[Service]\nRestartSec=100ms\n");

        let log = std::fs::File::create(base.path().join("nspawn.log")).unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .arg("--quiet")
            .arg("--directory")
            .arg(&root)
            .arg("--bind-ro=/usr")
            .arg(format!("--bind-ro={}:/usr/local/bin", bin.display()))
            .args([
                "--register=no",
                "--keep-unit",
                "--boot",
                "--private-network",
            ])
            .args(["--console=pipe"])
            .arg(format!("--machine=dk-e2e-{}", std::process::id()))
            .arg("systemd.firstboot=off")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start systemd-nspawn");
        let mut container = Container {
            nspawn,
            init: 0,
            base,
        };
        container.wait_for_boot();
        container
    }

    fn root(&self) -> PathBuf {
        self.base.path().join("root")
    }

    fn nspawn_log(&self) -> String {
        std::fs::read_to_string(self.base.path().join("nspawn.log")).unwrap_or_default()
    }

    fn wait_for_boot(&mut self) {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                panic!("systemd-nspawn exited ({status}):\n{}", self.nspawn_log());
            }
            if self.init == 0 {
                self.init = child_of(self.nspawn.id() as i32).unwrap_or(0);
            }
            if self.init != 0 {
                let state = self.run(&["systemctl", "is-system-running"]);
                let state = String::from_utf8_lossy(&state.stdout);
                if matches!(state.trim(), "running" | "degraded") {
                    eprintln!(
                        "e2e: systemd booted ({}) in {} ms",
                        state.trim(),
                        started.elapsed().as_millis()
                    );
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "systemd did not finish booting in 30 s:\n{}",
                self.nspawn_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `args` inside the container (all its namespaces), with a clean environment.
    fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg("-t")
            .arg(self.init.to_string())
            .arg("-a")
            .arg("--")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter")
    }

    /// Runs `args` inside the container; panics unless it succeeds; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `args` as `user` inside the container.
    fn as_user(&self, user: &str, args: &[&str]) -> Output {
        let mut all = vec!["runuser", "-u", user, "--"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `daemonctl --socket SOCKET <args>` as `user`.
    fn daemonctl(&self, user: &str, args: &[&str]) -> Output {
        let mut all = vec!["daemonctl", "--socket", SOCKET];
        all.extend_from_slice(args);
        self.as_user(user, &all)
    }

    /// A property of the demo's service, as `systemctl show -P` gives it.
    fn show(&self, property: &str) -> String {
        self.ok(&["systemctl", "show", "-P", property, UNIT])
            .trim()
            .to_owned()
    }

    fn main_pid(&self) -> String {
        self.show("MainPID")
    }

    fn n_restarts(&self) -> u32 {
        self.show("NRestarts").parse().unwrap()
    }

    /// Waits (at most `limit`) for `cond`, then returns how long it took.
    fn wait_until(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
        let started = Instant::now();
        loop {
            if cond() {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "no {what} within {limit:?}; the unit's log:\n{}",
                self.unit_log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Adds (or replaces) a drop-in for the demo's service and reloads systemd.
    fn drop_in(&self, name: &str, text: &str) {
        write_drop_in(&self.root(), name, text);
        self.ok(&["systemctl", "daemon-reload"]);
    }

    fn remove_drop_in(&self, name: &str) {
        std::fs::remove_file(drop_in_path(&self.root(), name)).unwrap();
        self.ok(&["systemctl", "daemon-reload"]);
    }

    /// Stops the service (and the socket unit) and forgets its failures and start count.
    fn reset(&self) {
        self.ok(&["systemctl", "stop", SOCKET_UNIT, UNIT]);
        let _ = self.run(&["systemctl", "reset-failed", SOCKET_UNIT, UNIT]);
    }

    /// Every journal line about the service (its records and systemd's), as text.
    fn unit_log(&self) -> Vec<String> {
        let out = self.run(&["journalctl", "--no-pager", "-q", "-o", "cat", "-u", UNIT]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The service's journal entries matching `matches` (`FIELD=value`), as JSON.
    fn journal(&self, matches: &[&str]) -> Vec<Value> {
        let mut args = vec!["journalctl", "--no-pager", "-q", "-o", "json", "-u", UNIT];
        args.extend_from_slice(matches);
        let out = self.run(&args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The event-log records in the state directory, read from the host side.
    fn events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let Ok(dir) = std::fs::read_dir(self.root().join(STATE)) else {
            return events;
        };
        let mut paths: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("events-") && name.ends_with(".jsonl") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                events.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
            }
        }
        events
    }

    fn count_events(&self, reason: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["reason"] == reason)
            .count()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() && self.init != 0 {
            eprintln!(
                "e2e: the unit's log at the failure:\n{}",
                self.unit_log().join("\n")
            );
        }
        if self.init == 0 {
            // Booting failed before the init was seen; it may have started since, and
            // killing nspawn alone would leave it running.
            self.init = child_of(self.nspawn.id() as i32).unwrap_or(0);
        }
        // SIGKILL to the container's init ends its PID namespace, hence every process in
        // it; nspawn then exits and its mounts (in its own mount namespace) go with it.
        // (Pid::from_raw(0) is None: nothing to kill before the container's init was found.)
        if let Some(pid) = rustix::process::Pid::from_raw(self.init) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.nspawn.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        // The TempDir (the container's root) is removed after this.
    }
}

fn drop_in_path(root: &Path, name: &str) -> PathBuf {
    root.join("etc/systemd/system")
        .join(format!("{UNIT}.d"))
        .join(format!("{name}.conf"))
}

fn write_drop_in(root: &Path, name: &str, text: &str) {
    let path = drop_in_path(root, name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The PID of a child of `parent`, from /proc.
fn child_of(parent: i32) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(&parent.to_string()) {
            return Some(pid);
        }
    }
    None
}

fn run_host(command: &mut Command) {
    let out = command.output().expect("run a host command");
    assert!(out.status.success(), "{command:?}: {}", describe(&out));
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn phase(name: &str) {
    eprintln!("e2e: {name}");
}

// ===== the test =====

#[test]
fn the_demo_under_a_real_systemd() {
    if let Some(why) = missing_prerequisite() {
        if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
            panic!("prerequisite missing and DAEMONKIT_REQUIRE_ALL=1: {why}");
        }
        eprintln!("SKIPPED: {why}");
        return;
    }
    let started = Instant::now();
    let c = Container::boot();
    c.ok(&["systemd-sysusers"]);
    // An old event log for the pruner to remove (retention is 7 days).
    let state = c.root().join(STATE);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("events-20200101.jsonl"), "").unwrap();
    // A newer old one too: opening the log checks the set's newest file for a torn tail,
    // which may hold it (`in_use`) during the first prune pass; the older one goes then.
    std::fs::write(state.join("events-20200102.jsonl"), "").unwrap();

    hardened_unit_scores_ok(&c);
    start_returns_once_the_socket_answers(&c);
    the_socket_answers_the_group_only(&c);
    the_hardened_demo_writes_its_event_log_and_prunes(&c);
    records_are_journal_fields(&c);
    degraded_monitors_are_queryable(&c);
    reload_keeps_the_daemon_serving(&c);
    the_event_log_survives_a_restart(&c);
    a_hung_daemon_is_killed_by_the_watchdog_and_restarted(&c);
    sigkill_is_restarted(&c);
    stop_is_clean_and_quick(&c);
    stop_is_bounded_with_a_stuck_monitor(&c);
    the_socket_unit_starts_the_service_on_first_use(&c);
    exit_69_is_restarted(&c);
    exit_78_is_not_restarted(&c);
    runtime_and_state_directories_come_from_the_environment(&c);

    eprintln!(
        "e2e: all checks passed in {} ms",
        started.elapsed().as_millis()
    );
}

/// `systemd-analyze security` scores the hardened unit "OK" or better.
fn hardened_unit_scores_ok(c: &Container) {
    phase("systemd-analyze security");
    let out = c.run(&["systemd-analyze", "security", "--no-pager", UNIT]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {}", describe(&out)));
    // "→ Overall exposure level for daemonkit-demo.service: 0.2 SAFE 😀"
    let verdict = line.rsplit_once(": ").unwrap().1;
    let score: f64 = verdict.split_whitespace().next().unwrap().parse().unwrap();
    eprintln!("e2e: systemd-analyze security {UNIT}: {verdict}");
    println!("exposure score of {UNIT}: {verdict}");
    assert!(
        score <= SCORE_LIMIT,
        "exposure {score} > {SCORE_LIMIT}:\n{text}"
    );
}

/// `systemctl start` (Type=notify) returns only once the control socket answers.
fn start_returns_once_the_socket_answers(c: &Container) {
    phase("systemctl start");
    let started = Instant::now();
    c.ok(&["systemctl", "start", UNIT]);
    let took = started.elapsed();
    // At once, no retry: READY=1 came after the socket listened.
    let out = c.daemonctl(OPERATOR, &["health"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    eprintln!("e2e: systemctl start returned in {} ms", took.as_millis());
    assert_eq!(c.show("ActiveState"), "active");
    assert_eq!(c.show("SubState"), "running");
    assert_eq!(
        c.show("StatusText"),
        format!("running 4 monitors; control socket {SOCKET}")
    );
}

/// `daemonctl status` works for a member of the service's group and is refused for
/// another unprivileged user: the socket is 0660, group daemonkit-demo.
fn the_socket_answers_the_group_only(c: &Container) {
    phase("socket permissions");
    let out = c.daemonctl(OPERATOR, &["status"]);
    // 0 (all healthy) or 1 (flaky backing off): either way the daemon answered.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        describe(&out)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    for monitor in ["steady", "flaky", "watcher", "pruner"] {
        assert!(table.contains(monitor), "{table}");
    }
    let out = c.daemonctl(STRANGER, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        describe(&out)
    );
    let mode = c.ok(&["stat", "-c", "%a %U %G", SOCKET]);
    assert_eq!(mode.trim(), "660 daemonkit-demo daemonkit-demo");
}

/// Under every protection of the unit the demo still writes its event log (0640, its
/// own user) and prunes logs past retention.
fn the_hardened_demo_writes_its_event_log_and_prunes(c: &Container) {
    phase("event log and pruning under the hardened unit");
    c.wait_until(
        "DaemonStarted in the event log",
        Duration::from_secs(10),
        || c.count_events("DaemonStarted") == 1,
    );
    let old = c.root().join(STATE).join("events-20200101.jsonl");
    c.wait_until("the old event log pruned", Duration::from_secs(10), || {
        !old.exists()
    });
    let pruned = c.journal(&["REASON=PruneCompleted"]);
    assert!(
        pruned
            .iter()
            .any(|e| e["REMOVED"].as_str().is_some_and(|n| n != "0")),
        "{pruned:#?}"
    );

    let file = std::fs::read_dir(c.root().join(STATE))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "jsonl")
                && !p.to_string_lossy().contains("events-2020")
        })
        .unwrap();
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640, "{}", file.display());
    let owner = c.ok(&["id", "-u", "daemonkit-demo"]);
    assert_eq!(meta.uid().to_string(), owner.trim());
}

/// Records reach the journal through its native protocol: their fields are journal
/// fields (`REASON=`, `MONITOR=`), levels are priorities.
fn records_are_journal_fields(c: &Container) {
    phase("journal fields");
    let mut crashes = Vec::new();
    c.wait_until(
        "a REASON=MonitorCrash entry",
        Duration::from_secs(10),
        || {
            crashes = c.journal(&["REASON=MonitorCrash", "MONITOR=flaky"]);
            !crashes.is_empty()
        },
    );
    let crash = &crashes[0];
    assert_eq!(crash["PRIORITY"], "3", "error → 3: {crash:#}");
    assert_eq!(crash["SYSLOG_IDENTIFIER"], "daemonkit-demo", "{crash:#}");
    assert_eq!(crash["_SYSTEMD_UNIT"], UNIT, "{crash:#}");
    assert!(crash["CONSECUTIVE_CRASHES"].is_string(), "{crash:#}");
    assert!(
        crash["MESSAGE"]
            .as_str()
            .is_some_and(|m| !m.starts_with('{')),
        "the message is text, not a JSON line: {crash:#}"
    );
    let ready = c.journal(&["REASON=DaemonReady", &format!("_PID={}", c.main_pid())]);
    assert_eq!(ready.len(), 1, "{ready:#?}");
    assert_eq!(ready[0]["PRIORITY"], "6", "info → 6: {:#}", ready[0]);
    let fallback = c.journal(&["REASON=JournaldUnavailable"]);
    assert!(fallback.is_empty(), "{fallback:#?}");
}

/// `journalctl -u daemonkit-demo REASON=MonitorDegraded MONITOR=flaky` finds a monitor
/// that keeps crashing (here with back-off shrunk to milliseconds).
fn degraded_monitors_are_queryable(c: &Container) {
    phase("journal: MonitorDegraded");
    c.drop_in(
        "fast-crashes",
        &format!(
            "[Service]\nExecStart=\nExecStart={BIN} --socket {SOCKET} --state-dir /{STATE} \
             --backoff-initial 10ms --backoff-cap 20ms --flaky-after 5ms\n"
        ),
    );
    c.reset();
    c.ok(&["systemctl", "start", UNIT]);
    let pid = format!("_PID={}", c.main_pid());
    let mut degraded = Vec::new();
    c.wait_until(
        "a REASON=MonitorDegraded entry",
        Duration::from_secs(10),
        || {
            degraded = c.journal(&["REASON=MonitorDegraded", "MONITOR=flaky", &pid]);
            !degraded.is_empty()
        },
    );
    assert_eq!(degraded[0]["PRIORITY"], "3", "{:#}", degraded[0]);
    c.reset();
    c.remove_drop_in("fast-crashes");
    // The next checks expect the unit as shipped, running.
    c.ok(&["systemctl", "start", UNIT]);
}

/// `systemctl reload` leaves the same process serving; with a reload hook, systemd
/// sees RELOADING=1 and then READY=1.
fn reload_keeps_the_daemon_serving(c: &Container) {
    phase("systemctl reload");
    let pid = c.main_pid();
    c.ok(&["systemd-analyze", "log-level", "debug"]);
    let reloaded = c.run(&["systemctl", "reload", UNIT]);
    c.ok(&["systemd-analyze", "log-level", "info"]);
    assert!(reloaded.status.success(), "{}", describe(&reloaded));
    assert_eq!(c.main_pid(), pid);
    assert_eq!(c.show("ActiveState"), "active");

    let pid_match = format!("_PID={pid}");
    let mut outcome = String::new();
    c.wait_until(
        "the demo's record of the reload",
        Duration::from_secs(10),
        || {
            for reason in ["Reloaded", "ReloadIgnored", "ReloadFailed"] {
                if !c
                    .journal(&[&format!("REASON={reason}"), &pid_match])
                    .is_empty()
                {
                    outcome = reason.to_owned();
                    return true;
                }
            }
            false
        },
    );
    // The demo has a reload hook: systemd must see RELOADING=1 and then READY=1.
    assert_eq!(outcome, "Reloaded");
    {
        let out = c.ok(&["journalctl", "--no-pager", "-q", "-o", "cat", "_PID=1"]);
        let from = format!("Got notification message from PID {pid} (");
        let notes: Vec<&str> = out.lines().filter(|l| l.contains(&from)).collect();
        let reloading = notes
            .iter()
            .position(|l| l.contains("RELOADING=1"))
            .unwrap_or_else(|| panic!("no RELOADING=1: {notes:#?}"));
        assert!(
            notes[reloading..].iter().any(|l| l.contains("READY=1")),
            "no READY=1 after RELOADING=1: {notes:#?}"
        );
    }
    let out = c.daemonctl(OPERATOR, &["health"]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// `systemctl restart`: a new process appends to the same event log.
fn the_event_log_survives_a_restart(c: &Container) {
    phase("event log across a restart");
    let pid = c.main_pid();
    let started = c.count_events("DaemonStarted");
    let stopped = c.count_events("DaemonStopped");
    c.ok(&["systemctl", "restart", UNIT]);
    assert_ne!(c.main_pid(), pid);
    c.wait_until("a second DaemonStarted", Duration::from_secs(10), || {
        c.count_events("DaemonStarted") == started + 1
    });
    assert_eq!(c.count_events("DaemonStopped"), stopped + 1);
}

/// A stopped (SIGSTOP) demo stops pinging the watchdog: systemd logs a watchdog timeout
/// and restarts it.
fn a_hung_daemon_is_killed_by_the_watchdog_and_restarted(c: &Container) {
    phase("watchdog");
    c.drop_in("watchdog", "[Service]\nWatchdogSec=1s\nLimitCORE=0\n");
    c.reset();
    c.ok(&["systemctl", "start", UNIT]);
    let pid = c.main_pid();
    let restarts = c.n_restarts();
    c.ok(&["kill", "-s", "STOP", &pid]);
    let took = c.wait_until(
        "a restart after the watchdog timeout",
        Duration::from_secs(10),
        || {
            c.n_restarts() == restarts + 1
                && c.show("ActiveState") == "active"
                && c.main_pid() != pid
        },
    );
    eprintln!(
        "e2e: watchdog restart {} ms after SIGSTOP",
        took.as_millis()
    );
    let log = c.unit_log();
    assert!(
        log.iter().any(|l| l.contains("Watchdog timeout")),
        "{}",
        log.join("\n")
    );
    c.remove_drop_in("watchdog");
}

/// SIGKILL is a crash: systemd restarts the service.
fn sigkill_is_restarted(c: &Container) {
    phase("SIGKILL");
    c.reset();
    c.ok(&["systemctl", "start", UNIT]);
    let pid = c.main_pid();
    let restarts = c.n_restarts();
    c.ok(&["kill", "-s", "KILL", &pid]);
    c.wait_until("a restart after SIGKILL", Duration::from_secs(10), || {
        c.n_restarts() == restarts + 1 && c.show("ActiveState") == "active" && c.main_pid() != pid
    });
}

/// `systemctl stop`: SIGTERM, STOPPING=1, a clean exit well within TimeoutStopSec.
fn stop_is_clean_and_quick(c: &Container) {
    phase("systemctl stop");
    c.reset();
    c.ok(&["systemctl", "start", UNIT]);
    let pid = c.main_pid();
    let started = Instant::now();
    c.ok(&["systemctl", "stop", UNIT]);
    let took = started.elapsed();
    eprintln!("e2e: systemctl stop returned in {} ms", took.as_millis());
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_eq!(c.show("Result"), "success");
    assert_eq!(c.show("ExecMainStatus"), "0");
    let stopped = c.journal(&["REASON=DaemonStopped", &format!("_PID={pid}")]);
    assert_eq!(stopped.len(), 1, "{stopped:#?}");
}

/// With a monitor that ignores cancellation (`--flaky-mode hang`) or blocks its thread
/// (`block`), the daemon's own shutdown deadline still ends the process well within
/// `TimeoutStopSec` under a real init.
fn stop_is_bounded_with_a_stuck_monitor(c: &Container) {
    phase("systemctl stop with a stuck monitor");
    for mode in ["hang", "block"] {
        c.drop_in(
            "flaky-mode",
            &format!(
                "[Service]\nExecStart=\nExecStart={BIN} --socket {SOCKET} --state-dir /{STATE} \
                 --flaky-mode {mode} --flaky-after 10ms --shutdown-timeout 1s\n"
            ),
        );
        c.reset();
        c.ok(&["systemctl", "start", UNIT]);
        // Let flaky reach its stuck state.
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        c.ok(&["systemctl", "stop", UNIT]);
        let took = started.elapsed();
        let (result, status) = (c.show("Result"), c.show("ExecMainStatus"));
        eprintln!(
            "e2e: stop with --flaky-mode {mode}: {} ms, Result={result}, exit status {status}",
            took.as_millis()
        );
        // The daemon ended itself by its shutdown timeout (1 s) plus the margin: systemd
        // never had to escalate to SIGKILL at TimeoutStopSec (Result=timeout), and the
        // late monitor makes the documented exit 1 (Result=exit-code).
        assert!(took < Duration::from_secs(5), "{mode}: stop took {took:?}");
        assert_eq!(result, "exit-code", "{mode}: Result={result}");
        assert_eq!(status, "1", "{mode}: exit status {status}");
    }
    c.remove_drop_in("flaky-mode");
}

/// With only the .socket unit started, the first `daemonctl health` starts the service,
/// which serves the socket systemd passes it, and is answered.
fn the_socket_unit_starts_the_service_on_first_use(c: &Container) {
    phase("socket activation");
    c.reset();
    c.ok(&["systemctl", "start", SOCKET_UNIT]);
    assert_eq!(c.show("ActiveState"), "inactive");
    let out = c.daemonctl(OPERATOR, &["health"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    assert_eq!(c.show("ActiveState"), "active");
    let pid = c.main_pid();
    let received = c.journal(&["REASON=ListenFdsReceived", &format!("_PID={pid}")]);
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0]["NAMES"], "control", "{:#}", received[0]);
    c.reset();
}

/// Exit 69 (a failed start-up probe, EX_UNAVAILABLE) is restarted. The demo has no
/// start-up probe to fail, so a shell stands in for its first start, exits 69, and
/// execs the demo on the restart.
fn exit_69_is_restarted(c: &Container) {
    phase("exit 69");
    c.reset();
    let marker = "/run/daemonkit-demo/e2e-failed-once";
    let _ = c.run(&["rm", "-f", marker]);
    c.drop_in(
        "exit69",
        &format!(
            "[Service]\nExecStart=\nExecStart=/bin/sh -c 'if [ -e {marker} ]; then exec {BIN} \
             --socket {SOCKET} --state-dir /{STATE}; fi; : > {marker}; exit 69'\n"
        ),
    );
    let mark = c.unit_log().len();
    let _ = c.run(&["systemctl", "start", "--no-block", UNIT]);
    c.wait_until("the restart after exit 69", Duration::from_secs(10), || {
        c.show("ActiveState") == "active" && c.show("SubState") == "running"
    });
    let log = c.unit_log();
    let since = &log[mark..];
    let exited = since
        .iter()
        .position(|l| l.contains("status=69"))
        .unwrap_or_else(|| panic!("no exit 69: {}", since.join("\n")));
    assert!(
        since[exited..]
            .iter()
            .any(|l| l.contains("Scheduled restart job")),
        "{}",
        since.join("\n")
    );
    assert!(c.n_restarts() >= 1);
    let out = c.daemonctl(OPERATOR, &["health"]);
    assert!(out.status.success(), "{}", describe(&out));
    c.reset();
    c.remove_drop_in("exit69");
}

/// Exit 78 (EX_CONFIG: here an invalid `--heartbeat 0s`) is not restarted
/// (`RestartPreventExitStatus=78`): restarting cannot fix a configuration.
fn exit_78_is_not_restarted(c: &Container) {
    phase("exit 78");
    c.reset();
    c.drop_in(
        "exit78",
        &format!(
            "[Service]\nExecStart=\nExecStart={BIN} --socket {SOCKET} --state-dir /{STATE} \
             --heartbeat 0s\n"
        ),
    );
    let mark = c.unit_log().len();
    let start = c.run(&["systemctl", "start", UNIT]);
    assert!(!start.status.success(), "{}", describe(&start));
    assert_eq!(c.show("ActiveState"), "failed");
    assert_eq!(c.show("ExecMainStatus"), "78");
    // Ten times RestartSec: a restart would have happened by now.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(c.show("ActiveState"), "failed");
    let log = c.unit_log();
    let since = &log[mark..];
    assert!(
        since.iter().any(|l| l.contains("status=78")),
        "{}",
        since.join("\n")
    );
    assert!(
        !since.iter().any(|l| l.contains("Scheduled restart job")),
        "{}",
        since.join("\n")
    );
    c.reset();
    c.remove_drop_in("exit78");
}

/// Without flags, the demo takes its socket from $RUNTIME_DIRECTORY and its event log
/// from $STATE_DIRECTORY.
fn runtime_and_state_directories_come_from_the_environment(c: &Container) {
    phase("RuntimeDirectory/StateDirectory without flags");
    c.drop_in(
        "no-flags",
        &format!("[Service]\nExecStart=\nExecStart={BIN}\n"),
    );
    c.reset();
    let started = c.count_events("DaemonStarted");
    c.ok(&["systemctl", "start", UNIT]);
    let out = c.daemonctl(OPERATOR, &["health"]);
    assert!(out.status.success(), "{}", describe(&out));
    c.wait_until(
        "DaemonStarted in the state directory",
        Duration::from_secs(10),
        || c.count_events("DaemonStarted") == started + 1,
    );
    c.reset();
    c.remove_drop_in("no-flags");
}
