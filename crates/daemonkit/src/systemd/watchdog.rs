//! The systemd watchdog keepalive (`WatchdogSec=`).
//!
//! When a unit sets `WatchdogSec=`, systemd passes the interval in `WATCHDOG_USEC` (and the
//! process it applies to in `WATCHDOG_PID`) and kills and restarts the service if no
//! `WATCHDOG=1` arrives within it. A [`Watchdog`] sends that keepalive every half interval
//! (the convention of `sd_watchdog_enabled(3)`, leaving a whole half interval for a late
//! tick) until it is cancelled, optionally only while an is-alive check passes.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use daemonkit::systemd::notify::Notifier;
//! use daemonkit::systemd::watchdog::Watchdog;
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("daemonkit-watchdog-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("notify.sock");
//! let _ = std::fs::remove_file(&path);
//! let manager = tokio::net::UnixDatagram::bind(&path)?;
//!
//! // In a daemon: Watchdog::from_env(Notifier::from_env()?)?
//! let watchdog = Watchdog::new(Duration::from_millis(40), Notifier::new(&path)?)?;
//! assert_eq!(watchdog.ping_every(), Some(Duration::from_millis(20)));
//!
//! let cancel = CancellationToken::new();
//! let task = tokio::spawn(watchdog.run(cancel.clone()));
//! let mut buf = [0u8; 16];
//! let n = manager.recv(&mut buf).await?; // the first ping is sent at once
//! assert_eq!(&buf[..n], b"WATCHDOG=1");
//! cancel.cancel();
//! task.await?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::systemd::notify::Notifier;

/// The environment variable holding the watchdog interval in microseconds.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The environment variable naming the process the watchdog interval applies to.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// The is-alive check: `true` lets the next keepalive go out.
type IsAlive = Arc<dyn Fn() -> bool + Send + Sync>;

/// A keepalive task for systemd's watchdog: sends `WATCHDOG=1` every half interval until
/// cancelled.
///
/// Build it with [`Watchdog::from_env`] in a daemon, or [`Watchdog::new`] with an explicit
/// interval (tests, or a manager other than systemd). When the watchdog is not enabled —
/// no `WATCHDOG_USEC`, a `WATCHDOG_PID` naming another process, or a disabled
/// [`Notifier`] — [`run`](Watchdog::run) returns at once, so a daemon starts it
/// unconditionally.
///
/// An optional [is-alive check](Watchdog::with_is_alive) withholds a ping while it returns
/// `false`, so systemd restarts a process that is running but stuck. Without one the
/// keepalive only guards against a frozen process (a blocked runtime sends no pings).
#[derive(Clone)]
pub struct Watchdog {
    /// `None` when the watchdog is not enabled for this process.
    interval: Option<Duration>,
    notifier: Notifier,
    is_alive: Option<IsAlive>,
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog")
            .field("interval", &self.interval)
            .field("notifier", &self.notifier)
            .field("is_alive", &self.is_alive.as_ref().map(|_| "Fn() -> bool"))
            .finish()
    }
}

impl Watchdog {
    /// A watchdog that pings `notifier` every `interval / 2`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWatchdogInterval`] when `interval` is zero (there is no schedule
    /// that satisfies it; systemd never passes one).
    pub fn new(interval: Duration, notifier: Notifier) -> Result<Watchdog, Error> {
        if interval.is_zero() {
            return Err(Error::InvalidWatchdogInterval {
                interval,
                problem: "must be longer than zero (systemd's WatchdogSec=0 disables the watchdog; use Watchdog::disabled)",
            });
        }
        Ok(Watchdog {
            interval: Some(interval),
            notifier,
            is_alive: None,
        })
    }

    /// A watchdog that is not enabled: [`run`](Watchdog::run) returns at once.
    pub fn disabled() -> Watchdog {
        Watchdog {
            interval: None,
            notifier: Notifier::disabled(),
            is_alive: None,
        }
    }

    /// The watchdog systemd configured for this process, from `WATCHDOG_USEC` and
    /// `WATCHDOG_PID`, pinging through `notifier` (usually [`Notifier::from_env`]).
    ///
    /// Same rules as [`Watchdog::from_env_values`] with this process's id. The variables
    /// are left in the environment (removing them is `unsafe` in edition 2024); a child
    /// process that inherits them sees a `WATCHDOG_PID` that is not its own and ignores
    /// them, which is what `WATCHDOG_PID` is for.
    ///
    /// # Errors
    ///
    /// As [`Watchdog::from_env_values`].
    pub fn from_env(notifier: Notifier) -> Result<Watchdog, Error> {
        let usec = std::env::var_os(WATCHDOG_USEC);
        let pid = std::env::var_os(WATCHDOG_PID);
        Watchdog::from_env_values(
            usec.as_deref().map(|v| v.to_string_lossy()).as_deref(),
            pid.as_deref().map(|v| v.to_string_lossy()).as_deref(),
            std::process::id(),
            notifier,
        )
    }

    /// The watchdog described by the values of `WATCHDOG_USEC` and `WATCHDOG_PID` (`None`
    /// for an unset variable), for the process `own_pid`. This is the logic of
    /// [`Watchdog::from_env`], taking the values as parameters so it can be tested and
    /// reused without touching the environment.
    ///
    /// As `sd_watchdog_enabled(3)` decides:
    /// - `WATCHDOG_USEC` unset or empty: not enabled;
    /// - `WATCHDOG_PID` set to a process other than `own_pid`: not enabled (the variables
    ///   were inherited from the process systemd watches);
    /// - otherwise enabled with an interval of `WATCHDOG_USEC` microseconds.
    ///
    /// Hand-written rather than `sd_notify::watchdog_enabled`, which reads only the live
    /// environment (untestable without `set_var`) and silently treats a malformed value as
    /// "disabled" — under `WatchdogSec=` that means systemd kills the daemon later for a
    /// reason nobody logged. Here a malformed value is an error, as in libsystemd.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] when `WATCHDOG_USEC` is not a positive whole number of
    /// microseconds, or `WATCHDOG_PID` is not a positive process id.
    pub fn from_env_values(
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        own_pid: u32,
        notifier: Notifier,
    ) -> Result<Watchdog, Error> {
        let Some(usec) = watchdog_usec.filter(|v| !v.is_empty()) else {
            tracing::debug!(
                reason = "WatchdogDisabled",
                "WATCHDOG_USEC is not set; the systemd watchdog is off"
            );
            return Ok(Watchdog::disabled());
        };
        let usec = match usec.parse::<u64>() {
            Ok(0) | Err(_) => {
                return Err(Error::InvalidEnv {
                    variable: WATCHDOG_USEC,
                    value: usec.to_owned(),
                    problem: "expected a positive whole number of microseconds, as set by WatchdogSec=",
                });
            }
            Ok(usec) => usec,
        };
        if let Some(pid) = watchdog_pid.filter(|v| !v.is_empty()) {
            let pid = match pid.parse::<u32>() {
                Ok(0) | Err(_) => {
                    return Err(Error::InvalidEnv {
                        variable: WATCHDOG_PID,
                        value: pid.to_owned(),
                        problem: "expected a positive process id",
                    });
                }
                Ok(pid) => pid,
            };
            if pid != own_pid {
                tracing::debug!(
                    reason = "WatchdogNotForUs",
                    watchdog_pid = pid,
                    own_pid,
                    "WATCHDOG_PID names another process; the systemd watchdog is off here"
                );
                return Ok(Watchdog::disabled());
            }
        }
        Watchdog::new(Duration::from_micros(usec), notifier)
    }

    /// Gates every ping on `is_alive`: when it returns `false` the ping is withheld (and a
    /// `WatchdogWithheld` warning logged), so systemd restarts the process once a whole
    /// interval passes without one.
    ///
    /// The check runs on the runtime once per ping; keep it cheap and non-blocking, e.g.
    /// reading an atomic flag or a status snapshot. Use it only when a restart of the whole
    /// process is the right answer to the condition it checks: in a daemon running several
    /// monitors, withholding pings restarts the healthy ones too.
    pub fn with_is_alive(
        mut self,
        is_alive: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Watchdog {
        self.is_alive = Some(Arc::new(is_alive));
        self
    }

    /// Whether [`run`](Watchdog::run) will send pings: an interval is set and the notifier
    /// has somewhere to send them.
    pub fn is_enabled(&self) -> bool {
        self.interval.is_some() && self.notifier.is_enabled()
    }

    /// The watchdog interval (`WatchdogSec=`), or `None` when not enabled.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// How often a ping is sent: half the interval (at least 1 µs), or `None` when not
    /// enabled.
    pub fn ping_every(&self) -> Option<Duration> {
        self.interval
            .map(|interval| (interval / 2).max(Duration::from_micros(1)))
    }

    /// Sends `WATCHDOG=1` at once and then every [`ping_every`](Watchdog::ping_every) until
    /// `cancel` is cancelled; returns at once when the watchdog is not enabled.
    ///
    /// A ping that cannot be sent is logged (`WatchdogPingFailed`) and the loop goes on:
    /// the next one may succeed, and if none does systemd restarts the service, which is
    /// the watchdog's job. Spawn it as a task: `tokio::spawn(watchdog.run(token))`.
    ///
    /// A ping is one non-async `sendto`. It returns at once unless the manager's receive
    /// queue is full, in which case it blocks its runtime thread for at most one second
    /// before failing; systemd drains its queue promptly, so in practice it never blocks.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the pings; nothing is left half-sent.
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime with time enabled.
    pub async fn run(self, cancel: CancellationToken) {
        let (Some(interval), Some(every)) = (self.interval, self.ping_every()) else {
            return;
        };
        if !self.notifier.is_enabled() {
            tracing::debug!(
                reason = "WatchdogDisabled",
                "no notify socket; the systemd watchdog keepalive is off"
            );
            return;
        }
        tracing::info!(
            reason = "WatchdogEnabled",
            interval_ms = interval.as_millis() as u64,
            ping_every_ms = every.as_millis() as u64,
            "systemd watchdog keepalive started"
        );
        let mut ticker = tokio::time::interval(every);
        // After a stall, ping once and keep the cadence from then on; a burst of catch-up
        // pings would tell systemd nothing more.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if let Some(is_alive) = &self.is_alive
                && !is_alive()
            {
                tracing::warn!(
                    reason = "WatchdogWithheld",
                    "is-alive check failed; withholding the systemd watchdog keepalive so systemd restarts the service"
                );
                continue;
            }
            if let Err(error) = self.notifier.watchdog() {
                tracing::warn!(
                    reason = "WatchdogPingFailed",
                    %error,
                    "could not send the systemd watchdog keepalive"
                );
            }
        }
        tracing::debug!(
            reason = "WatchdogStopped",
            "systemd watchdog keepalive stopped"
        );
    }
}
