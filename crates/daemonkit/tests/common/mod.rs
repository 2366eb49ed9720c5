//! Test support: capture tracing records so tests can count `reason`s.
//!
//! One process-wide subscriber records every event with the thread it happened on; a
//! test reads back the records of its own thread. (Per-thread scoped subscribers race
//! with tracing's global interest cache when tests run in parallel and can drop events.)
//! Tests that capture use a current-thread runtime, so their tasks run on their thread.
#![allow(dead_code)]

#[path = "capture.rs"]
mod capture;
#[allow(unused_imports)]
pub use capture::{Captured, Record, capture};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
