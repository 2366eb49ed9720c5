//! Composite, tagged and retried probes, and a component's probe built from its monitors.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use daemonkit::probe::{
    Composite, FreeSpace, Probe, ProbeError, ProbeExt, RetryPolicy, WriteTest, probe_fn, reason,
};
use daemonkit::{BoxError, BoxFuture, Error, Monitor, StatusError, monitor_fn};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn passing() -> impl Probe {
    probe_fn("passes", || async { Ok(()) })
}

fn failing(reason: &'static str) -> impl Probe {
    probe_fn("fails", move || async move {
        Err(ProbeError::new(reason, "expected x, found y"))
    })
}

/// A probe that would take an hour, recording whether its future was started and dropped.
#[derive(Default)]
struct Slow {
    started: AtomicBool,
    dropped: Arc<AtomicBool>,
    finished: AtomicBool,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Probe for Slow {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        Box::pin(async move {
            let _guard = SetOnDrop(self.dropped.clone());
            self.started.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            self.finished.store(true, Ordering::SeqCst);
            Ok(())
        })
    }
}

// ===== Composite =====

#[tokio::test]
async fn composite_of_real_probes_passes_on_a_writable_dir() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Composite::new("storage")
        .with(WriteTest::new(dir.path()))
        .with(FreeSpace::min_bytes(dir.path(), 1));
    probe.check().await.unwrap();
    assert_eq!(probe.component(), "storage");
    assert_eq!(probe.describe(), "component storage");
}

#[tokio::test]
async fn empty_composite_passes() {
    Composite::new("nothing").check().await.unwrap();
}

#[tokio::test]
async fn composite_returns_the_first_failure_and_drops_the_slow_sibling() {
    let slow = Arc::new(Slow::default());
    let failing_later = probe_fn("fails after 10ms", || async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(ProbeError::new(
            "DiskMissing",
            "/dev/sdb: expected a block device, found nothing",
        ))
    });
    let probe = Composite::new("db")
        .with(slow.clone())
        .with(failing_later)
        .with(passing());

    let started = std::time::Instant::now();
    let err = probe.check().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the slow sibling"
    );
    assert_eq!(err.reason, "DiskMissing");
    assert!(
        slow.started.load(Ordering::SeqCst),
        "siblings run concurrently"
    );
    assert!(
        slow.dropped.load(Ordering::SeqCst),
        "the slow sibling was not cancelled"
    );
    assert!(!slow.finished.load(Ordering::SeqCst));
}

#[tokio::test]
async fn composites_nest_and_the_inner_failure_surfaces() {
    let inner = Composite::new("inner")
        .with(passing())
        .with(failing("InnerBroken"));
    let outer = Composite::new("outer").with(passing()).with(inner);
    let err = outer.check().await.unwrap_err();
    assert_eq!(err.reason, "InnerBroken");

    let all_good = Composite::new("outer")
        .with(Composite::new("inner").with(passing()))
        .with(passing());
    all_good.check().await.unwrap();
}

#[tokio::test]
async fn composite_turns_a_panicking_probe_into_a_failure() {
    let panics = probe_fn("panics", || async { panic!("probe bug") });
    let err = Composite::new("c").with(panics).check().await.unwrap_err();
    assert_eq!(err.reason, reason::PROBE_PANICKED);
    assert_eq!(err.message, "probe \"panics\" panicked: probe bug");
}

// ===== Component probe from monitors =====

struct NeedsDir {
    name: &'static str,
    dir: std::path::PathBuf,
}

impl Monitor for NeedsDir {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            cancel.cancelled().await;
            Ok(())
        })
    }

    fn prerequisite(&self) -> Option<Arc<dyn Probe>> {
        Some(
            WriteTest::new(&self.dir)
                .tagged("SpoolNotWritable", "sudo mkdir -p /var/spool/app")
                .into_arc(),
        )
    }
}

fn plain(name: &'static str) -> Arc<dyn Monitor> {
    monitor_fn(name, |cancel| async move {
        cancel.cancelled().await;
        Ok(())
    })
}

#[test]
fn component_without_declared_prerequisites_has_no_probe() {
    let monitors = vec![plain("a"), plain("b")];
    assert!(daemonkit::monitor::prerequisites("web", &monitors).is_none());
    assert!(daemonkit::monitor::prerequisites("empty", &[]).is_none());
}

#[tokio::test]
async fn component_probe_gathers_the_monitors_prerequisites() {
    let dir = tempfile::tempdir().unwrap();
    let good: Arc<dyn Monitor> = Arc::new(NeedsDir {
        name: "good",
        dir: dir.path().to_owned(),
    });
    let monitors = vec![plain("a"), good.clone()];
    let probe = daemonkit::monitor::prerequisites("spooler", &monitors).unwrap();
    assert_eq!(probe.component(), "spooler");
    assert_eq!(probe.probes().len(), 1);
    probe.check().await.unwrap();

    let bad: Arc<dyn Monitor> = Arc::new(NeedsDir {
        name: "bad",
        dir: dir.path().join("missing"),
    });
    let probe = daemonkit::monitor::prerequisites("spooler", &[good, plain("b"), bad]).unwrap();
    assert_eq!(probe.probes().len(), 2);
    let err = probe.check().await.unwrap_err();
    assert_eq!(err.reason, "SpoolNotWritable");
    assert!(err.message.contains("missing"), "{}", err.message);
}

// ===== Tagged =====

#[tokio::test]
async fn tagged_failure_carries_reason_resolution_and_the_inner_message_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("app");
    let err = WriteTest::new(&missing)
        .tagged("DataDirNotWritable", "sudo chown app:app /var/lib/app")
        .check()
        .await
        .unwrap_err();
    assert_eq!(err.reason, "DataDirNotWritable");
    assert_eq!(err.resolution, "sudo chown app:app /var/lib/app");
    assert!(
        err.message.starts_with(&missing.display().to_string()),
        "{}",
        err.message
    );
    let source = std::error::Error::source(&err).unwrap();
    assert!(source.downcast_ref::<std::io::Error>().is_some());
}

#[tokio::test]
async fn tagged_probe_that_passes_passes() {
    passing().tagged("Never", "never").check().await.unwrap();
}

#[tokio::test]
async fn an_empty_tag_keeps_the_inner_value_and_the_outer_tag_wins() {
    let err = failing("Inner")
        .tagged("", "fix it")
        .check()
        .await
        .unwrap_err();
    assert_eq!(
        (err.reason.as_str(), err.resolution.as_str()),
        ("Inner", "fix it")
    );

    let err = failing("Inner")
        .tagged("Mid", "mid fix")
        .tagged("Outer", "")
        .check()
        .await
        .unwrap_err();
    assert_eq!(
        (err.reason.as_str(), err.resolution.as_str()),
        ("Outer", "mid fix")
    );
}

#[tokio::test]
async fn tagged_failure_becomes_a_status_error_with_the_go_json_shape() {
    let err = failing("X")
        .tagged("DataDirNotWritable", "sudo chown app:app /var/lib/app")
        .check()
        .await
        .unwrap_err();
    let status: StatusError = (&err).into();
    assert_eq!(status, err.to_status_error());
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["reason"], "DataDirNotWritable");
    assert_eq!(json["message"], "expected x, found y");
    assert_eq!(json["resolution"], "sudo chown app:app /var/lib/app");
    assert_eq!(json["since"], "", "unknown until a reporter first sees it");
    assert_eq!(
        err.to_string(),
        "DataDirNotWritable: expected x, found y (resolution: sudo chown app:app /var/lib/app)"
    );
}

#[tokio::test]
async fn untagged_failure_becomes_a_status_error_without_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let err = FreeSpace::min_bytes(dir.path(), u64::MAX)
        .check()
        .await
        .unwrap_err();
    let json = serde_json::to_value(StatusError::from(err)).unwrap();
    assert_eq!(json["reason"], reason::INSUFFICIENT_SPACE);
    assert!(json.get("resolution").is_none());
}

// ===== Retry =====

/// A probe failing its first `failures` calls, numbering each failure.
fn flaky(failures: u32) -> (impl Probe, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let probe = probe_fn("flaky", move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= failures {
                return Err(ProbeError::new("NotYet", format!("attempt {n}")));
            }
            Ok(())
        }
    });
    (probe, calls)
}

fn policy(deadline_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .timeout(Duration::from_millis(deadline_ms))
        .initial(Duration::from_millis(100))
        .multiplier(2.0)
        .cap(Duration::from_millis(1000))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_passes_after_failures_with_growing_delays() {
    let (probe, calls) = flaky(3);
    let started = Instant::now();
    probe.retry(policy(10_000)).check().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // 100 + 200 + 400 ms of back-off on the paused clock.
    assert_eq!(started.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_before_the_deadline_with_the_last_failure() {
    let (probe, calls) = flaky(u32::MAX);
    let started = Instant::now();
    let err = probe.retry(policy(1000)).check().await.unwrap_err();
    // Attempts at 0, 100, 300 and 700 ms; the next would start at 1500 ms, past the deadline.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(err.message, "attempt 4");
    assert_eq!(started.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn retry_cancels_an_attempt_still_running_at_the_deadline() {
    let hung = Arc::new(Slow::default());
    let started = Instant::now();
    let err = hung.clone().retry(policy(1000)).check().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(1000));
    assert_eq!(err.reason, reason::PROBE_TIMEOUT);
    assert!(
        err.message
            .contains("did not finish within the retry deadline of 1s"),
        "{}",
        err.message
    );
    assert!(hung.dropped.load(Ordering::SeqCst));

    // After a failure, a hung attempt gives back that failure.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let fails_then_hangs = probe_fn("fails then hangs", move || {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                return Err(ProbeError::new("NotMounted", "/data: not a mount point"));
            }
            std::future::pending().await
        }
    });
    let err = fails_then_hangs
        .retry(policy(1000))
        .check()
        .await
        .unwrap_err();
    assert_eq!(err.reason, "NotMounted");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn retry_policy_rejects_values_that_cannot_work() {
    let cases = [
        (RetryPolicy::builder().timeout(Duration::ZERO), "timeout"),
        (RetryPolicy::builder().initial(Duration::ZERO), "initial"),
        (
            RetryPolicy::builder()
                .initial(Duration::from_secs(2))
                .cap(Duration::from_secs(1)),
            "cap",
        ),
        (RetryPolicy::builder().multiplier(0.5), "multiplier"),
        (RetryPolicy::builder().multiplier(f64::NAN), "multiplier"),
    ];
    for (builder, field) in cases {
        match builder.build() {
            Err(Error::InvalidPolicy { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected InvalidPolicy for {field}, got {other:?}"),
        }
    }
    assert_eq!(
        RetryPolicy::default(),
        RetryPolicy::builder().build().unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn retry_logs_probe_retry_per_retried_failure_then_gave_up_or_recovered() {
    let logs = common::capture();

    let (probe, _) = flaky(2);
    probe.retry(policy(10_000)).check().await.unwrap();
    let (probe, _) = flaky(u32::MAX);
    probe.retry(policy(1000)).check().await.unwrap_err();

    let seen: Vec<String> = logs
        .all()
        .iter()
        .map(|r| r.reason().to_owned())
        .filter(|r| r.starts_with("Probe"))
        .collect();
    assert_eq!(
        seen,
        [
            "ProbeRetry",
            "ProbeRetry",
            "ProbeRecovered", // passes on the third attempt
            "ProbeRetry",
            "ProbeRetry",
            "ProbeRetry",
            "ProbeGaveUp", // four failures
        ]
    );
}

#[tokio::test]
async fn retry_of_a_shared_probe_passes_through_composites() {
    let (probe, calls) = flaky(1);
    let policy = RetryPolicy::builder()
        .initial(Duration::from_millis(1))
        .build()
        .unwrap();
    let shared: Arc<dyn Probe> = probe.retry(policy).into_arc();
    Composite::from_probes("c", [shared.clone()])
        .check()
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(shared.describe(), "flaky");
}
