//! An append-only JSONL audit log of lifecycle milestones that never loses an acknowledged event.
//!
//! Each [`Event`] — "upgrade to v0.75.0 began on node-3 at 12:00:00Z" — becomes one JSON line,
//! byte for byte as the Go daemonkit writes it, so auditors, log shippers and either
//! implementation read the same files. [`EventLog::log`] returns only once the line is on stable
//! storage; concurrent callers share syncs (group commit), so many threads or tasks can log at
//! once at many times the throughput of one sync per event, with the same guarantee.
//!
//! * [`EventLog::create_operation`]: a fresh file per operation, `<prefix><operationId>.jsonl`
//!   ([`CONSENSUS_PREFIX`] names it as Go does).
//! * [`EventLog::open_append`]: one file that grows across opens; a partial last line left by a
//!   crash is cut (and saved aside) before appending, see [`TornTailRepair`].
//! * [`RotatingLog::open`]: a daemon's audit trail, one file per UTC day
//!   (`<prefix>-YYYYMMDD.jsonl`, optionally also split by size, see [`Rotation`]) — the
//!   recommended shape for a long-running daemon, pruned with daemonkit-filepruner;
//!   [`list_event_files`] lists a set's files in order.
//! * [`EventLog::log`] for threads, [`EventLog::log_async`] for tokio tasks.
//! * [`read_events`] to read a file back, reporting each malformed line with its number;
//!   [`read_events_from`] resumes at an [`Events::offset`] to read only what was appended.
//!
//! This is not operational logging: use `tracing` for that. This crate itself reports through
//! `tracing` (records carry a stable `reason`, e.g. `TornTailRepaired`) and prints nothing.
//!
//! # Examples
//!
//! ```
//! use daemonkit_eventlog::{CONSENSUS_PREFIX, Event, EventLog, Level, read_events};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//!
//! // A per-operation log: truncated on open, named as the Go daemonkit names it.
//! let op = "upgrade-20260619T120000Z";
//! let log = EventLog::create_operation(dir.path(), CONSENSUS_PREFIX, op)?;
//! assert_eq!(log.path(), std::path::absolute(dir.path())?.join(format!("consensus-{op}.jsonl")));
//!
//! // Durable when `log` returns.
//! let mut event = Event::new(Level::Info, "UpgradeStarted", "begin upgrade to v0.75.0", op, "node-3");
//! event.ts = "2026-06-19T12:00:00.123456789Z".parse()?;
//! log.log(&event)?;
//! log.log(&Event::new(Level::Error, "UpgradeFailed", "disk full", op, "node-3"))?;
//!
//! // The line is the Go implementation's, byte for byte.
//! let text = std::fs::read_to_string(log.path())?;
//! assert_eq!(
//!     text.lines().next(),
//!     Some(r#"{"ts":"2026-06-19T12:00:00.123456789Z","level":"INFO","reason":"UpgradeStarted","msg":"begin upgrade to v0.75.0","operationId":"upgrade-20260619T120000Z","nodeId":"node-3"}"#),
//! );
//!
//! // Read it back.
//! let events = read_events(log.path())?.collect::<Result<Vec<_>, _>>()?;
//! assert_eq!(events.len(), 2);
//! assert_eq!(events[0], event);
//! assert_eq!(events[1].level, Level::Error);
//!
//! // Invalid events are refused, naming every missing field.
//! let err = log.log(&Event::new(Level::Info, "", "", op, "node-3")).unwrap_err();
//! assert!(err.to_string().contains("reason, msg"));
//! # Ok(())
//! # }
//! ```
//!
//! From async code:
//!
//! ```
//! use daemonkit_eventlog::{Event, EventLog, Level};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let log = EventLog::open_append(dir.path(), "events.jsonl")?;
//! log.log_async(&Event::new(Level::Info, "DaemonStarted", "started", "boot-1", "node-3")).await?;
//! assert_eq!(std::fs::read_to_string(log.path())?.lines().count(), 1);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod event;
mod file;
mod log;
mod reader;
mod repair;
mod rotating_log;
mod rotation;
mod segment;
mod state_file;

pub use error::{Error, NameProblem, Op};
pub use event::{Event, Field, Level};
pub use log::{CONSENSUS_PREFIX, EventLog};
pub use reader::{Events, read_events, read_events_from};
pub use repair::TornTailRepair;
pub use rotating_log::RotatingLog;
pub use rotation::{Clock, EventFile, Rotation, SystemClock, list_event_files};
pub use state_file::{DEFAULT_MAX_LEN, StateFile, StateFileProblem};
