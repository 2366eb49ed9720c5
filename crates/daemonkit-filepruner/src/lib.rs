//! Retention pruning for audit files and rolled logs that never deletes what it
//! should keep.
//!
//! Audit files and rolled logs pile up on a disk that also holds a node's data.
//! A [`Pruner`] removes them by age (from a timestamp in the name or from the
//! modification time) or by size, with a hard cap on how many remain — and when
//! in doubt, keeps.
//!
//! A pass over a directory ([`Pruner::prune`]) looks at the regular files and
//! symlinks whose names match a [`Pattern`] and:
//!
//! 1. removes every file its [`Strategy`] marks prunable;
//! 2. if more than `keep` of the others remain, removes the oldest — by name
//!    ascending, as the Go daemonkit does, or by modification time
//!    ([`Order`]) — until `keep` remain.
//!
//! A file the strategy cannot judge (a name without a timestamp, metadata that
//! cannot be read) is protected from both steps and does not count toward the
//! cap. The pass returns a [`Report`] of what was removed, kept, protected and
//! what failed; a dry run returns the same report and removes nothing.
//!
//! Strategies: [`FilenameTimestamp`], [`ModifiedTime`], [`FileSize`], the
//! combinators [`All`] and [`Any`], and your own through the [`Strategy`] trait
//! or [`strategy::from_fn`].
//!
//! Nothing outside the directory is ever touched: patterns cannot contain `/`,
//! only regular files and symlinks are removed (a symlink is unlinked, its
//! target never followed), and every operation is made relative to the opened
//! directory. See [`Pruner`] for the details. The crate is Unix-only.
//!
//! Files in use are left alone: a regular file a writer holds an exclusive
//! `flock` on (as daemonkit-eventlog's writers do) is reported
//! [`in_use`](Report::in_use), names given to [`Pruner::protect`] are never
//! removed, and each name is checked again just before its unlink
//! ([`changed`](Report::changed) if it now leads to another file). A directory
//! that does not exist yet is an empty report ([`Report::dir_missing`]).
//!
//! With the feature `monitor`, `Retention` runs a pruner every period as a
//! daemonkit monitor, reporting a pass that could not remove everything as
//! `degraded`. Without it the crate depends on neither daemonkit nor tokio.
//!
//! The library logs through `tracing` with stable `reason` keys —
//! `PruneCompleted` (one summary per pass) at info, `RemoveFailed` at warn,
//! `FileRemoved`, `FileProtected`, `FileVanished`, `FileInUse`, `FileChanged`,
//! `PruneDirMissing`, `NotARegularFile` and `ThreadSpawnFailed` at debug — and
//! installs no subscriber.
//!
//! # Example
//!
//! Keep rolled audit files for a year, and never more than 3 of them:
//!
//! ```
//! use std::time::Duration;
//! use daemonkit_filepruner::{FilenameTimestamp, Pattern, Pruner, RemovalReason};
//!
//! let dir = tempfile::tempdir()?;
//! let names = [
//!     "audit-20200101T000000Z.jsonl", // years old: prunable
//!     "audit-20260101T000000Z.jsonl",
//!     "audit-20260201T000000Z.jsonl",
//!     "audit-20260301T000000Z.jsonl",
//!     "audit-20260401T000000Z.jsonl",
//!     "audit-current.jsonl",          // no timestamp: protected
//! ];
//! for name in names {
//!     std::fs::write(dir.path().join(name), b"{}\n")?;
//! }
//!
//! let year = Duration::from_secs(365 * 86_400);
//! let pruner = Pruner::new(FilenameTimestamp::new("%Y%m%dT%H%M%SZ", year)?);
//! let now = "2026-04-15T00:00:00Z".parse()?;
//! let report = pruner.prune_at(dir.path(), &Pattern::new("audit-*.jsonl")?, 3, now)?;
//!
//! let removed: Vec<_> = report.removed.iter().map(|r| (r.name.to_str().unwrap(), r.reason)).collect();
//! assert_eq!(removed, [
//!     ("audit-20200101T000000Z.jsonl", RemovalReason::Prunable),
//!     ("audit-20260101T000000Z.jsonl", RemovalReason::OverCap),
//! ]);
//! assert_eq!(report.kept.len(), 3);
//! assert_eq!(report.protected[0].name, "audit-current.jsonl");
//! assert!(report.is_success());
//! assert!(dir.path().join("audit-current.jsonl").exists());
//! assert!(!dir.path().join("audit-20200101T000000Z.jsonl").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg(unix)]

mod error;
#[cfg(feature = "monitor")]
mod monitor;
mod pattern;
mod pruner;
mod report;
pub mod strategy;
mod timestamp;

pub use error::Error;
#[cfg(feature = "monitor")]
pub use monitor::{Retention, RetentionBuilder};
pub use pattern::Pattern;
pub use pruner::{Order, Pruner};
pub use report::{Failure, Protected, RemovalReason, Removed, Report};
pub use strategy::{All, Any, Candidate, FileKind, FileSize, ModifiedTime, Strategy};
pub use timestamp::FilenameTimestamp;
