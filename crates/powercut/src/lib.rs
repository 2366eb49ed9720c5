//! A filesystem that forgets what was not synced: power-cut testing for daemonkit.
//!
//! Killing a process (SIGKILL) cannot tell a correct `fsync` discipline from a missing one: the
//! kernel's page cache keeps every byte the process wrote. A power cut does not. [`PowerCut`]
//! mounts (through FUSE) a view of a backing directory that tracks, per file, the bytes up to
//! its last `fsync`/`fdatasync`, and per directory, the entries up to its last `fsync`; on
//! [`crash`](PowerCut::crash) it rewrites the backing directory as a power cut would leave it —
//! unsynced appends lost or kept as a prefix torn at a sector or page, unsynced creates,
//! unlinks and renames each applied or not — with every choice made by a seed, so a failure
//! reproduces from its seed. The idea is that of LazyFS and ALICE; the model, and where it is
//! stricter or looser than ext4, is in `docs/architecture.md`, "What durable means here".
//!
//! The crate is for tests (it is not published): [`child::run_until_cut`] runs a writer in a
//! child process until the cut falls, and [`check`] holds the checks the kit is held to.
//!
//! # Examples
//!
//! A writer that skips the directory `fsync` after creating its file can lose the file, even
//! though it synced the file's bytes:
//!
//! ```
//! use std::io::Write;
//! use powercut::PowerCut;
//!
//! # if powercut::skip_unless_fuse().is_some() { return Ok(()); }
//! let backing = tempfile::tempdir()?;
//! let mnt = tempfile::tempdir()?;
//! let lost = (0..50).filter(|&seed| {
//!     let fs = PowerCut::mount(backing.path(), mnt.path()).unwrap();
//!     let mut f = std::fs::File::create(mnt.path().join("log")).unwrap();
//!     f.write_all(b"acknowledged\n").unwrap();
//!     f.sync_data().unwrap(); // but no fsync of the directory
//!     drop(f);
//!     fs.crash(seed).unwrap();
//!     let lost = !backing.path().join("log").exists();
//!     let _ = std::fs::remove_file(backing.path().join("log"));
//!     lost
//! }).count();
//! assert!(lost > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod check;
pub mod child;
mod error;
mod fs;
mod image;
mod model;
mod mount;
pub mod rng;
pub mod scenario;

pub use error::Error;
pub use model::{CrashReport, PAGE, SECTOR};
pub use mount::{PowerCut, fuse_unavailable};

/// Returns `None` when the tests can run here; otherwise prints `SKIPPED: <why>` on stderr and
/// returns the reason — unless `DAEMONKIT_REQUIRE_ALL=1`, when a missing prerequisite is a
/// failure.
///
/// # Panics
///
/// When FUSE is unavailable and `DAEMONKIT_REQUIRE_ALL=1` is set.
pub fn skip_unless_fuse() -> Option<String> {
    let why = fuse_unavailable()?;
    if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("power-cut tests need FUSE: {why} (DAEMONKIT_REQUIRE_ALL=1)");
    }
    eprintln!("SKIPPED: {why}");
    Some(why)
}
