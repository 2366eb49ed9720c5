//! Test support: capture tracing records so tests can count `reason`s.
//!
//! One process-wide subscriber records every event with the thread it happened on; a
//! test reads back the records of its own thread. (Per-thread scoped subscribers race
//! with tracing's global interest cache when tests run in parallel and can drop events.)
//! Tests that capture use a current-thread runtime, so their tasks run on their thread.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured record: its level and fields (values as text).
#[derive(Debug, Clone)]
pub struct Record {
    pub level: tracing::Level,
    pub fields: BTreeMap<String, String>,
    thread: ThreadId,
}

impl Record {
    pub fn reason(&self) -> &str {
        self.fields.get("reason").map(String::as_str).unwrap_or("")
    }
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

static RECORDS: OnceLock<Mutex<Vec<Record>>> = OnceLock::new();

fn records() -> &'static Mutex<Vec<Record>> {
    RECORDS.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("install the capture");
        Mutex::new(Vec::new())
    })
}

/// The records emitted on the capturing thread since [`capture`] was called.
#[derive(Clone)]
pub struct Captured {
    thread: ThreadId,
    from: usize,
}

impl Captured {
    pub fn all(&self) -> Vec<Record> {
        records().lock().unwrap()[self.from..]
            .iter()
            .filter(|r| r.thread == self.thread)
            .cloned()
            .collect()
    }
    pub fn with_reason(&self, reason: &str) -> Vec<Record> {
        self.all()
            .into_iter()
            .filter(|r| r.reason() == reason)
            .collect()
    }
    pub fn count(&self, reason: &str) -> usize {
        self.with_reason(reason).len()
    }
}

struct Capture;

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let record = Record {
            level: *event.metadata().level(),
            fields,
            thread: std::thread::current().id(),
        };
        records().lock().unwrap().push(record);
    }
}

/// Starts capturing this thread's records.
pub fn capture() -> Captured {
    let from = records().lock().unwrap().len();
    Captured {
        thread: std::thread::current().id(),
        from,
    }
}

/// The path of one of the child processes the tests spawn (`sd_daemon_child`,
/// `sd_notify_child`, `sd_activation_echo`), binaries of the unpublished
/// `daemonkit-test-helpers` crate. The first call in a test binary builds them with the
/// same profile and target directory as the test itself, so `cargo test -p daemonkit
/// --test NAME` works alone.
pub fn helper(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| cargo_build(&["-p", "daemonkit-test-helpers", "--bins"]))
        .join(name)
}

/// The old name of [`helper`].
pub fn example(name: &str) -> PathBuf {
    helper(name)
}

/// Runs `cargo build ARGS` for the profile and target directory of the running test,
/// and returns that profile's output directory (`target/<profile>`).
pub fn cargo_build(args: &[&str]) -> PathBuf {
    // Test binaries live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target/<profile> has a parent");
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .arg("build")
        .arg("--quiet")
        .args(args)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        command.arg("--release");
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed: {status}");
    profile_dir
}
