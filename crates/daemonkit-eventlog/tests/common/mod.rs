//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses a different subset

use std::ffi::OsStr;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use daemonkit_eventlog::{Event, Level, read_events};

/// A number in `0..n`, different on each call.
pub fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now()) % n
}

/// Runs this test binary's ignored test `child` as a child process with `envs`, kills it
/// with SIGKILL after `1 + random_below(kill_within)` acknowledgements (`ACK <id>` lines
/// on its stdout) and then up to `tail_micros` more (so the kill does not always land
/// right after an ack: make it a sync or a write), and returns every id it acknowledged,
/// those still in the pipe included.
pub fn run_child_until_killed(
    child: &str,
    envs: &[(&str, &OsStr)],
    kill_within: u64,
    tail_micros: u64,
) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            child,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(id) = line.strip_prefix("ACK ") {
                let _ = tx.send(id.to_owned());
            }
        }
    });
    let kill_after = 1 + random_below(kill_within);
    let mut acked = Vec::new();
    while (acked.len() as u64) < kill_after {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(id) => acked.push(id),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "child stopped acknowledging after {} events: {e}",
                    acked.len()
                );
            }
        }
    }
    std::thread::sleep(Duration::from_micros(random_below(tail_micros)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    acked.extend(rx.try_iter());
    acked
}

/// An event with every field set; `msg` tells events apart.
pub fn event(msg: impl Into<String>) -> Event {
    Event::new(
        Level::Info,
        "TestMilestone",
        msg,
        "op-20260619T120000Z",
        "node-3",
    )
}

/// The `msg` of every event in `path`, panicking on any malformed line or I/O error.
pub fn messages(path: &Path) -> Vec<String> {
    read_events(path)
        .expect("open event file")
        .map(|e| e.expect("every line is a valid event").msg)
        .collect()
}

/// A temporary directory on tmpfs (`/dev/shm`) where there is one, else in the usual temp dir.
///
/// For tests about concurrency rather than the disk: on this class of machine a real `fdatasync`
/// takes about 3 ms, and 16,000 events at ~15 per sync would take seconds. tmpfs runs exactly
/// the same code (write, then `fdatasync`), only the sync returns at once.
pub fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("create a temp dir")
}

/// Logs `n` events into `dir/events.jsonl`, then appends `torn` as a crash would leave
/// it; returns the length of the complete part.
pub fn log_then_tear(dir: &std::path::Path, n: usize, torn: &[u8]) -> u64 {
    use std::io::Write;
    let log = daemonkit_eventlog::EventLog::open_append(dir, "events.jsonl").unwrap();
    for i in 0..n {
        log.log(&event(format!("event {i}"))).unwrap();
    }
    let complete = std::fs::metadata(log.path()).unwrap().len();
    drop(log);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("events.jsonl"))
        .unwrap();
    file.write_all(torn).unwrap();
    complete
}

/// A missing prerequisite (root, a package): prints `SKIPPED: <why>` and returns normally, or
/// panics when `DAEMONKIT_REQUIRE_ALL=1` (CI), where a skipped test would hide a failure.
pub fn skip(why: &str) {
    if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("DAEMONKIT_REQUIRE_ALL=1 but a prerequisite is missing: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A clock tests move by hand: seconds since the Unix epoch in an atomic.
#[derive(Clone)]
pub struct TestClock(pub std::sync::Arc<std::sync::atomic::AtomicI64>);

impl TestClock {
    /// A clock showing `at` (an RFC 3339 timestamp).
    pub fn at(at: &str) -> TestClock {
        let ts: jiff::Timestamp = at.parse().expect("valid timestamp literal");
        TestClock(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
            ts.as_second(),
        )))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: &str) {
        let ts: jiff::Timestamp = at.parse().expect("valid timestamp literal");
        self.0
            .store(ts.as_second(), std::sync::atomic::Ordering::SeqCst);
    }

    /// The clock as a `daemonkit_eventlog::Clock`.
    pub fn clock(&self) -> impl daemonkit_eventlog::Clock + 'static {
        let seconds = std::sync::Arc::clone(&self.0);
        move || {
            jiff::Timestamp::from_second(seconds.load(std::sync::atomic::Ordering::SeqCst))
                .expect("the test clock stays in range")
        }
    }
}

/// Runs `f` with a JSON tracing subscriber on this thread and returns what it logged, one
/// JSON object per record.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, Vec<serde_json::Value>) {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, || {
        // See torn_tail_reported.rs: re-evaluate call-site interest with this subscriber.
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per record"))
        .collect();
    (out, records)
}
