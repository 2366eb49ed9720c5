//! The user guide's `/ready` reasons are the ones the code gives: each documented
//! monitor reason is produced by a real supervisor in the situation the guide names, and
//! the guide names no other.

use std::collections::BTreeSet;
use std::time::Duration;

use daemonkit::status::monitors_ready;
use daemonkit::{RestartPolicy, Supervisor, monitor_fn};
use tokio_util::sync::CancellationToken;

const GUIDE: &str = include_str!("../../../docs/user-guide.md");

/// The `Monitor…` reasons in the guide's paragraph on what a daemon's `/ready` answers.
fn documented() -> BTreeSet<String> {
    let start = GUIDE
        .find("Its `/ready` answers 200")
        .expect("the guide documents /ready under Daemon");
    let paragraph = &GUIDE[start..];
    let paragraph = &paragraph[..paragraph.find("\n\n").unwrap_or(paragraph.len())];
    paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.starts_with("Monitor"))
        .map(str::to_owned)
        .collect()
}

/// The reasons `/ready` gives for: a monitor backing off, one whose streak reached
/// `degraded_every`, one that gave up, and one not started.
async fn produced() -> BTreeSet<String> {
    let crashing = |name: &str| monitor_fn(name, |_cancel| async { Err("boom".into()) });
    let policy = |degraded_every, give_up: Option<u32>| {
        let mut b = RestartPolicy::builder()
            .initial(Duration::from_secs(1))
            .multiplier(1.0)
            .degraded_every(degraded_every);
        if let Some(n) = give_up {
            b = b.give_up_after(n, Duration::from_secs(3600));
        }
        b.build().unwrap()
    };
    let supervisor = Supervisor::builder()
        .monitor_with_policy(crashing("backing-off"), policy(100, None))
        .monitor_with_policy(crashing("crash-looping"), policy(1, None))
        .monitor_with_policy(crashing("given-up"), policy(100, Some(0)))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut reasons: BTreeSet<String> = monitors_ready(&tracker)
        .unwrap_err()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());

    let idle = daemonkit::StatusTracker::new();
    let _never_started = idle.register("idle").unwrap();
    reasons.extend(
        monitors_ready(&idle)
            .unwrap_err()
            .into_iter()
            .map(|e| e.reason),
    );
    reasons
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_ready_reasons_in_the_user_guide_are_the_ones_the_code_gives() {
    let documented = documented();
    assert!(!documented.is_empty());
    assert_eq!(produced().await, documented);
}
