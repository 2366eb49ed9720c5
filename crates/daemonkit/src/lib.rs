//! daemonkit: building blocks for long-running Linux daemons.
//!
//! A daemon built on daemonkit is a set of **monitors**: named async work loops that a
//! [`Supervisor`] keeps alive — restarting them with back-off when they crash, catching
//! their panics, escalating when a loop keeps crashing — while a [`StatusTracker`]
//! records what each one is doing, for the control plane, metrics and logs. The wire
//! formats (status JSON, state strings, `reason` keys) are the Go daemonkit's, so a fleet
//! can run both side by side.
//!
//! | module | what it gives you |
//! |---|---|
//! | [`monitor`] | the [`Monitor`] and [`Connectivity`] traits, [`monitor_fn`], and [`monitor::every`] for periodic work |
//! | [`supervisor`] | [`Supervisor`], [`Running`], [`RestartPolicy`] |
//! | [`status`] | [`StatusTracker`], [`MonitorHandle`], [`MonitorState`], [`StatusError`] |
//! | [`task`] | [`spawn_logged`] and [`TaskGroup`], panic-safe child tasks |
//! | [`probe`] | [`Probe`]s of a host's prerequisites, with operator-facing reason and resolution |
//! | [`paths`] | conventional socket and runtime-directory paths |
//! | [`stall`] | [`StallDetector`](stall::StallDetector): reports a runtime blocked by a task (`RuntimeStalled`) |
//! | `server` (feature `server`) | the control plane: `/health`, `/status`, `/ready`, `/metrics`, component routes on a Unix socket |
//! | `systemd` (feature `systemd`) | sd_notify, the watchdog keepalive, socket activation |
//! | `component`, `daemon` (feature `daemon` = `server` + `systemd`) | `Component`s of monitors with background prerequisite probes, and the `Daemon` runner that wires everything in the right order |
//!
//! Every call the kit makes into your code — a monitor's `run` (before and after it
//! returns its future), connectivity checks, probes, listeners, hooks — is behind a panic
//! barrier: a panic is a crash of that monitor or a failed probe or request, never the
//! silent death of a kit task. Everything logs through `tracing` with a stable `reason`
//! field on every record; the library installs no subscriber and prints nothing itself.
//!
//! # Examples
//!
//! A monitor that crashes on its first run, supervised with a short back-off:
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::Duration;
//! use daemonkit::{monitor_fn, MonitorState, RestartPolicy, Supervisor};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! static CRASHED: AtomicBool = AtomicBool::new(false);
//! let worker = monitor_fn("worker", |cancel| async move {
//!     if !CRASHED.swap(true, Ordering::SeqCst) {
//!         return Err("connection reset".into());
//!     }
//!     cancel.cancelled().await;
//!     Ok(())
//! });
//!
//! let policy = RestartPolicy::builder().initial(Duration::from_millis(10)).build().unwrap();
//! let supervisor = Supervisor::builder().policy(policy).monitor(worker).build().unwrap();
//! let tracker = supervisor.tracker().clone();
//!
//! let running = supervisor.start(&CancellationToken::new());
//! while tracker.snapshot()["worker"].restarts == 0 {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//! }
//! let status = &tracker.snapshot()["worker"];
//! assert_eq!(status.state, MonitorState::Running);
//! assert_eq!(status.last_error.as_deref(), Some("connection reset"));
//!
//! assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
//! # }
//! ```
#![deny(missing_docs)]

mod boxed;
mod duration;
mod error;
mod panic;

pub mod monitor;
pub mod paths;
pub mod probe;
pub mod stall;
pub mod status;
pub mod supervisor;
pub mod task;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "systemd")]
pub mod systemd;

#[cfg(feature = "daemon")]
pub mod component;
#[cfg(feature = "daemon")]
pub mod daemon;

pub use boxed::{BoxError, BoxFuture};
#[cfg(feature = "daemon")]
pub use component::{Component, StartMonitors};
#[cfg(feature = "daemon")]
pub use daemon::{Daemon, DaemonBuilder, Exit};
pub use error::{Error, ErrorKind, Op};
pub use monitor::{Connectivity, Monitor, monitor_fn};
pub use probe::{Probe, ProbeError, ProbeExt};
#[cfg(feature = "server")]
pub use server::{BoundControlPlane, ControlPlane, ControlPlaneBuilder};
pub use status::{
    MonitorHandle, MonitorState, MonitorStatus, Snapshot, StatusError, StatusTracker,
};
pub use supervisor::{RestartPolicy, Running, ShutdownReport, Supervisor};
pub use task::{TaskGroup, spawn_logged};
