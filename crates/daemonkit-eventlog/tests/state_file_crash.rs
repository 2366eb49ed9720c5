//! A state file whose writer is killed with SIGKILL mid-write is always exactly the old or the
//! new content: never missing, never a mix, never reported corrupt.
//!
//! The test re-runs its own test binary as the child (`state_writer_child`, ignored in normal
//! runs), which replaces the state with one generation after another and prints `ACK <n>` on
//! stdout after each `write` returns. The parent kills it at a random moment, 20 times, and reads
//! the state back after each kill. (A kill leaves the page cache intact; what a power cut does is
//! the power-cut harness's test, `crates/powercut/tests/state_file.rs`.)

mod common;

use std::path::{Path, PathBuf};

use daemonkit_eventlog::StateFile;

const DIR_ENV: &str = "DAEMONKIT_STATEFILE_CRASH_DIR";
const NAME: &str = "state";
const RUNS: usize = 20;

/// Generation `n` of the state: its number on the first line, then a filler whose length varies
/// from 2 KiB to about 42 KiB, so writes span pages and the file's length changes every time.
fn content(n: u64) -> Vec<u8> {
    let mut bytes = format!("generation {n}\n").into_bytes();
    let len = 2048 + (n * 7919 % 40_000) as usize;
    let fill = format!("{n:08} ");
    while bytes.len() < len {
        bytes.extend_from_slice(fill.as_bytes());
    }
    bytes
}

/// The generation whose content `bytes` is, exactly.
fn generation(bytes: &[u8]) -> Option<u64> {
    let first = bytes.split(|&b| b == b'\n').next()?;
    let n = std::str::from_utf8(first)
        .ok()?
        .strip_prefix("generation ")?
        .parse()
        .ok()?;
    (content(n) == bytes).then_some(n)
}

/// The child's role: replace the state with the next generation until killed.
#[test]
#[ignore = "child process of `a_killed_writer_leaves_the_old_or_the_new_state`, which runs it"]
fn state_writer_child() {
    let dir = PathBuf::from(
        std::env::var_os(DIR_ENV).expect("run by a_killed_writer_leaves_the_old_or_the_new_state"),
    );
    let state = StateFile::new(&dir, NAME).unwrap();
    let current = state
        .read()
        .unwrap()
        .expect("the parent wrote generation 0");
    let first = generation(&current).expect("a whole generation") + 1;
    for n in first.. {
        state.write(&content(n)).unwrap();
        println!("ACK {n}");
    }
}

/// Starts the child, kills it with SIGKILL after a random number of acknowledgements (and a
/// random fraction of a write more: a write takes two fsyncs, a few ms), and returns the
/// last generation it acknowledged.
fn run_child_until_killed(dir: &Path) -> u64 {
    common::run_child_until_killed(
        "state_writer_child",
        &[(DIR_ENV, dir.as_os_str())],
        20,
        8_000,
    )
    .iter()
    .map(|n| n.parse::<u64>().expect("a generation number"))
    .max()
    .unwrap_or(0)
}

#[test]
fn a_killed_writer_leaves_the_old_or_the_new_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), NAME).unwrap();
    state.write(&content(0)).unwrap();
    let mut last_acked = 0;
    let mut in_flight_survived = 0;
    for run in 0..RUNS {
        let acked = run_child_until_killed(dir.path());
        assert!(
            acked > last_acked,
            "run {run}: no progress past {last_acked}"
        );
        last_acked = acked;
        let bytes = match state.read() {
            Ok(Some(bytes)) => bytes,
            Ok(None) => panic!("run {run}: the state file is missing"),
            Err(e) => panic!("run {run}: {e}"),
        };
        match generation(&bytes) {
            Some(n) if n == acked => {}
            Some(n) if n == acked + 1 => {
                in_flight_survived += 1;
                last_acked = n;
            }
            Some(n) => panic!("run {run}: generation {n}, but {acked} was acknowledged last"),
            None => panic!(
                "run {run}: {} bytes that are no whole generation: a mix",
                bytes.len()
            ),
        }
    }
    eprintln!(
        "{RUNS} kills: the state was always whole; the last acknowledged generation {} times, \
         the one in flight {in_flight_survived} times",
        RUNS - in_flight_survived
    );
}
