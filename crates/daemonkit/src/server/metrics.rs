//! `GET /metrics`: the monitors' status as Prometheus metrics, read from the
//! [`StatusTracker`] at scrape time, plus whatever the daemon registered itself.
//!
//! The exposition is the Prometheus text format 0.0.4, which every Prometheus version
//! scrapes and `promtool check metrics` lints. The kit's metrics live in their own
//! registry, encoded before the daemon's: a prefix or labels the daemon put on its own
//! registry never rename them.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::stall::StallDetector;
use crate::{MonitorState, MonitorStatus, Snapshot, StatusTracker};

/// The states of `daemonkit_monitor_state`, one sample each per monitor.
const STATES: [&str; 5] = ["running", "degraded", "backoff", "stopped", "failed"];

// ===== Metrics =====

/// The registries `/metrics` encodes.
pub(crate) struct Metrics {
    kit: Registry,
    daemon: Option<Registry>,
    /// The size of the last exposition, so the next buffer is allocated once.
    size: AtomicUsize,
}

impl Metrics {
    pub(crate) fn new(
        trackers: Vec<(Option<String>, StatusTracker)>,
        daemon: Option<Registry>,
    ) -> Metrics {
        let mut kit = Registry::default();
        kit.register_collector(Box::new(KitCollector { trackers }));
        Metrics {
            kit,
            daemon,
            size: AtomicUsize::new(1024),
        }
    }

    /// The text exposition of every metric.
    pub(crate) fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::with_capacity(self.size.load(Ordering::Relaxed));
        prometheus_text::encode(&mut text, &self.kit)?;
        if let Some(daemon) = &self.daemon {
            prometheus_text::encode(&mut text, daemon)?;
        }
        self.size.store(text.len() + 256, Ordering::Relaxed);
        Ok(text)
    }
}

// ===== KitCollector =====

/// Encodes the per-monitor metrics from tracker snapshots, and the build info. A
/// tracker with a component name labels its samples `component="<name>"` too.
#[derive(Debug)]
struct KitCollector {
    trackers: Vec<(Option<String>, StatusTracker)>,
}

/// Every monitor of every tracker, with its labels (`component` first when there is one).
fn monitors<'a>(
    snapshots: &'a [(Option<&'a str>, Snapshot)],
) -> impl Iterator<Item = (Vec<(&'static str, &'a str)>, &'a MonitorStatus)> {
    snapshots.iter().flat_map(|(component, snapshot)| {
        snapshot.iter().map(move |(name, status)| {
            let mut labels = Vec::with_capacity(3);
            if let Some(component) = component {
                labels.push(("component", *component));
            }
            labels.push(("monitor", name));
            (labels, status)
        })
    })
}

impl Collector for KitCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut info = encoder.encode_descriptor(
            "daemonkit_build",
            "The daemonkit version this daemon was built with; the value is always 1.",
            None,
            MetricType::Info,
        )?;
        info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;

        if self.trackers.is_empty() {
            return Ok(());
        }
        let snapshots: Vec<(Option<&str>, Snapshot)> = self
            .trackers
            .iter()
            .map(|(component, tracker)| (component.as_deref(), tracker.snapshot()))
            .collect();
        let now = jiff::Timestamp::now();

        let mut family = encoder.encode_descriptor(
            "daemonkit_monitor_restarts",
            "Times the monitor's run loop was restarted after a crash.",
            None,
            MetricType::Counter,
        )?;
        for (labels, status) in monitors(&snapshots) {
            ConstCounter::new(status.restarts).encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "daemonkit_monitor_consecutive_crashes",
            "Crashes in the monitor's current streak; reset by a run that lasts the stable threshold.",
            None,
            MetricType::Gauge,
        )?;
        for (labels, status) in monitors(&snapshots) {
            ConstGauge::new(i64::from(status.consecutive_crashes))
                .encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "daemonkit_monitor_state",
            "The monitor's state: 1 for the current one (running, degraded, backoff, stopped, failed), 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for (labels, status) in monitors(&snapshots) {
            let current = status.state.kind();
            for state in STATES {
                let mut labels = labels.clone();
                labels.push(("state", state));
                ConstGauge::new(i64::from(state == current))
                    .encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "daemonkit_monitor_uptime",
            "Time since the monitor's current run began; 0 when it is not running.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (labels, status) in monitors(&snapshots) {
            let uptime = status.running_since().map_or(0.0, |since| {
                now.duration_since(since).as_secs_f64().max(0.0)
            });
            ConstGauge::new(uptime).encode(family.encode_family(&labels)?)?;
        }

        encode_alerting_metrics(&mut encoder, &snapshots)?;
        Ok(())
    }
}

// ===== Metrics for alerting =====

/// The per-monitor metrics that `contrib/prometheus/daemonkit.rules.yml` reads beyond the
/// state, restarts and uptime: the current back-off, so an alert can say when the next start
/// is due without parsing the `/status` state string.
fn encode_alerting_metrics(
    encoder: &mut DescriptorEncoder,
    snapshots: &[(Option<&str>, Snapshot)],
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "daemonkit_monitor_backoff",
        "The delay the monitor waits before its next start after a crash; 0 when it is not backing off.",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for (labels, status) in monitors(snapshots) {
        let backoff = match status.state {
            MonitorState::Backoff(delay) => delay.as_secs_f64(),
            _ => 0.0,
        };
        ConstGauge::new(backoff).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

// ===== StallCollector =====

impl Metrics {
    /// Adds the runtime stall metrics of `detector` to the kit's registry.
    pub(crate) fn with_stall_detector(mut self, detector: StallDetector) -> Metrics {
        self.kit
            .register_collector(Box::new(StallCollector { detector }));
        self
    }
}

/// Encodes a [`StallDetector`]'s measurements at scrape time.
#[derive(Debug)]
struct StallCollector {
    detector: StallDetector,
}

impl Collector for StallCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.detector.stats();
        let gauge = encoder.encode_descriptor(
            "daemonkit_runtime_stall_seconds_max",
            "The largest delay of the async runtime's timer ticks in the last one to two minutes (a task blocking the runtime's thread shows here).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(stats.recent_max_lag.as_secs_f64()).encode(gauge)?;
        let counter = encoder.encode_descriptor(
            "daemonkit_runtime_stalls",
            "Timer ticks delayed by at least the stall threshold (each logged with reason RuntimeStalled).",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.stalls).encode(counter)?;
        Ok(())
    }
}
