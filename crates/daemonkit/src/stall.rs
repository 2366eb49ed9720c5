//! Runtime stall detection: how late the kit's own timer ticks fire.
//!
//! Every task on a tokio runtime shares its worker threads. A monitor that blocks its
//! thread — a synchronous `std::fs` call on a hung NFS mount, `std::thread::sleep`, a
//! long computation, a blocking mutex held across a slow call — stops every other task
//! scheduled on that thread: on a current-thread runtime (the `Daemon` runner's) the
//! control plane stops answering, other monitors' tickers slip, the watchdog keepalive is
//! late. Nothing fails, so nothing is logged: the daemon just stops making progress.
//!
//! A [`StallDetector`] makes that visible. It sleeps for a short interval (100 ms by
//! default) again and again and measures how late each wake-up comes (the *lag*, or
//! event-loop delay): on a healthy runtime a few microseconds to a millisecond; while a
//! task blocks the thread, as long as the block. A lag of at least the threshold (1 s by
//! default) is a *stall*: it is logged at warn level with reason `RuntimeStalled` and the
//! lag, counted, and remembered as the largest lag seen (since start, and over the last
//! one to two minutes). The control plane shows them in `/metrics`
//! (`daemonkit_runtime_stall_seconds_max`, the recent maximum, and
//! `daemonkit_runtime_stalls_total`)
//! when given the detector ([`ControlPlaneBuilder::stall_detector`]), and
//! [`StallDetector::stats`] reads them for a status document.
//!
//! The remedy is always the same: blocking code belongs in
//! [`tokio::task::spawn_blocking`] or on a thread of its own, never in an `async fn`.
//!
//! # What it can and cannot see
//!
//! A stall is reported when it *ends* (the late tick is the measurement), so a thread
//! blocked forever is never reported by this detector: the systemd watchdog (whose
//! keepalive stops too) is what catches that. The detector runs on one of the runtime's
//! threads; on a multi-thread runtime it sees a stall only of the thread it happens to be
//! on, so the measure is exact on a current-thread runtime and a sample on a multi-thread
//! one. A lag is measured to within a tick: a stall of `s` shows a lag between
//! `s - interval` and `s`.
//!
//! [`ControlPlaneBuilder::stall_detector`]: crate::server::ControlPlaneBuilder::stall_detector
//!
//! # Examples
//!
//! A task that blocks the only thread for 300 ms, caught with a 200 ms threshold:
//!
//! ```
//! use std::time::Duration;
//! use daemonkit::stall::StallDetector;
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let detector = StallDetector::builder()
//!     .interval(Duration::from_millis(20))
//!     .threshold(Duration::from_millis(200))
//!     .build()
//!     .unwrap();
//! let cancel = CancellationToken::new();
//! let running = tokio::spawn(detector.clone().run(cancel.clone()));
//! tokio::time::sleep(Duration::from_millis(50)).await; // let it tick once
//!
//! // Wrong: blocks the runtime's only thread (use spawn_blocking instead).
//! tokio::spawn(async { std::thread::sleep(Duration::from_millis(300)) }).await.unwrap();
//! tokio::time::sleep(Duration::from_millis(50)).await;
//!
//! let stats = detector.stats();
//! assert_eq!(stats.stalls, 1);
//! assert!(stats.max_lag >= Duration::from_millis(200), "{stats:?}");
//! assert!(stats.last_stall.is_some());
//!
//! cancel.cancel();
//! running.await.unwrap();
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Error;

// ===== StallDetector =====

/// Measures how late the runtime fires a timer, and reports lags at or over a threshold
/// as stalls (see the [module documentation](self)).
///
/// A cheap handle: clones share the measurements. Give one clone to
/// [`run`](Self::run) on the runtime to watch and keep another to read
/// [`stats`](Self::stats) or hand to the control plane for `/metrics`.
#[derive(Clone)]
#[must_use = "a StallDetector measures nothing until `run` is spawned"]
pub struct StallDetector {
    shared: Arc<Shared>,
}

struct Shared {
    interval: Duration,
    threshold: Duration,
    window: Duration,
    /// When the detector was made: windows are counted from here.
    born: std::time::Instant,
    /// The window the `recent_*` maxima belong to (index from `born`).
    window_index: AtomicU64,
    /// The largest lag of window `window_index`, and of the one before it.
    recent_max_nanos: AtomicU64,
    previous_max_nanos: AtomicU64,
    max_lag_nanos: AtomicU64,
    stalls: AtomicU64,
    last_stall_lag_nanos: AtomicU64,
    /// Microseconds since the Unix epoch of the end of the last stall; `i64::MIN` for none.
    last_stall_micros: AtomicI64,
}

const NEVER: i64 = i64::MIN;

impl fmt::Debug for StallDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StallDetector")
            .field("interval", &self.shared.interval)
            .field("threshold", &self.shared.threshold)
            .field("window", &self.shared.window)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for StallDetector {
    fn default() -> StallDetector {
        StallDetector::new()
    }
}

impl StallDetector {
    /// A detector with the defaults: a tick every 100 ms, stalls from 1 s of lag.
    pub fn new() -> StallDetector {
        StallDetector::from_builder(StallDetectorBuilder::default())
    }

    /// A builder to change the interval or the threshold.
    pub fn builder() -> StallDetectorBuilder {
        StallDetectorBuilder::default()
    }

    fn from_builder(builder: StallDetectorBuilder) -> StallDetector {
        StallDetector {
            shared: Arc::new(Shared {
                interval: builder.interval,
                threshold: builder.threshold,
                window: builder.window,
                born: std::time::Instant::now(),
                window_index: AtomicU64::new(0),
                recent_max_nanos: AtomicU64::new(0),
                previous_max_nanos: AtomicU64::new(0),
                max_lag_nanos: AtomicU64::new(0),
                stalls: AtomicU64::new(0),
                last_stall_lag_nanos: AtomicU64::new(0),
                last_stall_micros: AtomicI64::new(NEVER),
            }),
        }
    }

    /// The time between ticks.
    pub fn interval(&self) -> Duration {
        self.shared.interval
    }

    /// The smallest lag reported as a stall.
    pub fn threshold(&self) -> Duration {
        self.shared.threshold
    }

    /// What has been measured so far: a few atomic loads, cheap enough for every
    /// `/status` request.
    pub fn stats(&self) -> StallStats {
        let s = &self.shared;
        let micros = s.last_stall_micros.load(Ordering::Relaxed);
        StallStats {
            max_lag: Duration::from_nanos(s.max_lag_nanos.load(Ordering::Relaxed)),
            recent_max_lag: self.recent_max_lag(),
            stalls: s.stalls.load(Ordering::Relaxed),
            last_stall: (micros != NEVER)
                .then(|| jiff::Timestamp::from_microsecond(micros).ok())
                .flatten(),
            last_stall_lag: Duration::from_nanos(s.last_stall_lag_nanos.load(Ordering::Relaxed)),
            threshold: s.threshold,
        }
    }

    /// Ticks on the current runtime until `cancel` is cancelled, measuring each tick's
    /// lag. Spawn it on the runtime to watch (the `Daemon` runner does).
    ///
    /// A tick is scheduled one interval after the previous one *fired*, so a stall is
    /// counted once, not once per missed tick.
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime with the time driver enabled.
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime with time enabled.
    pub async fn run(self, cancel: CancellationToken) {
        let mut next = Instant::now() + self.shared.interval;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
            let now = Instant::now();
            self.record(now.saturating_duration_since(next));
            next = now + self.shared.interval;
        }
    }

    /// The index of the window that `now` falls in.
    fn window_index(&self) -> u64 {
        let s = &self.shared;
        let index = s.born.elapsed().as_nanos() / s.window.as_nanos().max(1);
        u64::try_from(index).unwrap_or(u64::MAX)
    }

    /// The largest lag of the current window and the one before it: a stall stays
    /// visible for one to two windows, then the figure falls back.
    fn recent_max_lag(&self) -> Duration {
        let s = &self.shared;
        let now = self.window_index();
        let recorded = s.window_index.load(Ordering::Relaxed);
        let current = s.recent_max_nanos.load(Ordering::Relaxed);
        let nanos = if now == recorded {
            current.max(s.previous_max_nanos.load(Ordering::Relaxed))
        } else if now == recorded.saturating_add(1) {
            current
        } else {
            // No tick for two windows or more (the detector stopped).
            0
        };
        Duration::from_nanos(nanos)
    }

    /// Records one tick's lag. Only the `run` loop writes, so the window roll-over needs
    /// no compare-and-swap; a reader racing it sees one window early or late.
    fn record(&self, lag: Duration) {
        let s = &self.shared;
        let lag_nanos = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        s.max_lag_nanos.fetch_max(lag_nanos, Ordering::Relaxed);
        let now = self.window_index();
        let recorded = s.window_index.load(Ordering::Relaxed);
        if now != recorded {
            let previous = if now == recorded.saturating_add(1) {
                s.recent_max_nanos.load(Ordering::Relaxed)
            } else {
                0
            };
            s.previous_max_nanos.store(previous, Ordering::Relaxed);
            s.recent_max_nanos.store(0, Ordering::Relaxed);
            s.window_index.store(now, Ordering::Relaxed);
        }
        s.recent_max_nanos.fetch_max(lag_nanos, Ordering::Relaxed);
        if lag < s.threshold {
            return;
        }
        let stalls = s.stalls.fetch_add(1, Ordering::Relaxed) + 1;
        s.last_stall_lag_nanos.store(lag_nanos, Ordering::Relaxed);
        let now = jiff::Timestamp::now();
        s.last_stall_micros
            .store(now.as_microsecond(), Ordering::Relaxed);
        tracing::warn!(
            reason = "RuntimeStalled",
            lag_ms = lag.as_millis() as u64,
            threshold_ms = s.threshold.as_millis() as u64,
            stalls,
            resolution = "a task blocked the runtime's thread: move blocking calls (std::fs, std::thread::sleep, blocking locks, long computations) into tokio::task::spawn_blocking or a thread of their own",
            "the async runtime stalled: a timer fired {} ms late",
            lag.as_millis()
        );
    }
}

// ===== StallStats =====

/// What a [`StallDetector`] has measured since it was created.
///
/// Serialises (for a status document) as
/// `{"max_lag_seconds":…,"recent_max_lag_seconds":…,"stalls":…,"last_stall":"<RFC 3339>"|null,"last_stall_lag_seconds":…,"threshold_seconds":…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StallStats {
    /// The largest lag of any tick since the detector was made, stall or not (0 before
    /// the first tick).
    pub max_lag: Duration,
    /// The largest lag in the current window and the one before it (one to two
    /// windows, 60 s each by default): what `daemonkit_runtime_stall_seconds_max`
    /// exposes, so it falls back after a stall and an alert on it resolves.
    pub recent_max_lag: Duration,
    /// Ticks whose lag reached the threshold.
    pub stalls: u64,
    /// When the last stall ended (was measured); `None` when there was none.
    pub last_stall: Option<jiff::Timestamp>,
    /// The lag of the last stall; zero when there was none.
    pub last_stall_lag: Duration,
    /// The detector's threshold, for context.
    pub threshold: Duration,
}

impl Serialize for StallStats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("StallStats", 6)?;
        s.serialize_field("max_lag_seconds", &self.max_lag.as_secs_f64())?;
        s.serialize_field("recent_max_lag_seconds", &self.recent_max_lag.as_secs_f64())?;
        s.serialize_field("stalls", &self.stalls)?;
        s.serialize_field("last_stall", &self.last_stall)?;
        s.serialize_field("last_stall_lag_seconds", &self.last_stall_lag.as_secs_f64())?;
        s.serialize_field("threshold_seconds", &self.threshold.as_secs_f64())?;
        s.end()
    }
}

// ===== StallDetectorBuilder =====

/// Configures a [`StallDetector`]; every setting has a default.
#[derive(Debug, Clone)]
#[must_use]
pub struct StallDetectorBuilder {
    interval: Duration,
    threshold: Duration,
    window: Duration,
}

impl Default for StallDetectorBuilder {
    fn default() -> StallDetectorBuilder {
        StallDetectorBuilder {
            interval: Duration::from_millis(100),
            threshold: Duration::from_secs(1),
            window: Duration::from_secs(60),
        }
    }
}

impl StallDetectorBuilder {
    /// The time between ticks. Default 100 ms: ten cheap wake-ups a second, and a lag
    /// measured to within 100 ms.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The smallest lag reported as a stall. Default 1 s.
    pub fn threshold(mut self, threshold: Duration) -> Self {
        self.threshold = threshold;
        self
    }

    /// How long a lag counts in [`StallStats::recent_max_lag`] (and the
    /// `daemonkit_runtime_stall_seconds_max` gauge): one to two windows. Default 60 s,
    /// at least a scrape interval so Prometheus sees every stall.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidStallDetector`] (of kind [`Config`](crate::ErrorKind::Config))
    /// when the interval, the threshold or the window is zero.
    pub fn build(self) -> Result<StallDetector, Error> {
        if self.interval.is_zero() {
            return Err(Error::InvalidStallDetector {
                setting: "interval",
                problem: "must be longer than zero (zero would spin)",
            });
        }
        if self.threshold.is_zero() {
            return Err(Error::InvalidStallDetector {
                setting: "threshold",
                problem: "must be longer than zero (zero would report every tick)",
            });
        }
        if self.window.is_zero() {
            return Err(Error::InvalidStallDetector {
                setting: "window",
                problem: "must be longer than zero (at least the scrape interval; the default is 60 s)",
            });
        }
        Ok(StallDetector::from_builder(self))
    }
}
