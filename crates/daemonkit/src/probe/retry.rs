//! [`Retry`]: a probe retried with back-off until it passes or a deadline passes.

use std::borrow::Cow;
use std::time::Duration;

use tokio::time::Instant;

use super::{Probe, ProbeError, check_caught, reason};
use crate::Error;
use crate::boxed::BoxFuture;
use crate::duration::go_duration;
use crate::supervisor::backoff::Backoff;

// ===== RetryPolicy =====

/// How a [`Retry`] spaces its attempts and when it gives up.
///
/// The delay after the `n`-th failed attempt is `initial × multiplier^(n−1)`, capped at
/// `cap`; the retry gives up `timeout` after the first attempt started.
/// `RetryPolicy::default()` retries for up to 30 s, starting at 250 ms and doubling up to
/// 5 s — time for a mount, a network or a sibling service to come up during boot, well
/// inside systemd's default 90 s start timeout. Build another with
/// [`RetryPolicy::builder`], which rejects values that cannot work.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::probe::RetryPolicy;
///
/// let policy = RetryPolicy::builder()
///     .timeout(Duration::from_secs(10))
///     .initial(Duration::from_millis(100))
///     .multiplier(3.0)
///     .cap(Duration::from_secs(1))
///     .build()
///     .unwrap();
/// assert_eq!(policy.delay_for(1), Duration::from_millis(100));
/// assert_eq!(policy.delay_for(2), Duration::from_millis(300));
/// assert_eq!(policy.delay_for(4), Duration::from_secs(1));
///
/// let err = RetryPolicy::builder().timeout(Duration::ZERO).build().unwrap_err();
/// assert!(err.to_string().contains("timeout"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    timeout: Duration,
    backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(30),
            backoff: Backoff {
                initial: Duration::from_millis(250),
                multiplier: 2.0,
                cap: Duration::from_secs(5),
            },
        }
    }
}

impl RetryPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: RetryPolicy::default(),
        }
    }

    /// How long after the first attempt began the retry gives up.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The delay after the first failed attempt.
    pub fn initial(&self) -> Duration {
        self.backoff.initial
    }

    /// The factor applied to the delay per failed attempt.
    pub fn multiplier(&self) -> f64 {
        self.backoff.multiplier
    }

    /// The longest delay between two attempts.
    pub fn cap(&self) -> Duration {
        self.backoff.cap
    }

    /// The delay after the `attempt`-th failed attempt (1-based):
    /// `initial × multiplier^(attempt−1)`, capped.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        self.backoff.delay_for(attempt)
    }
}

/// Builds a validated [`RetryPolicy`]; see [`RetryPolicy::builder`].
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// How long after the first attempt began to give up (default 30 s). Must be non-zero.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.policy.timeout = timeout;
        self
    }

    /// The delay after the first failed attempt (default 250 ms). Must be non-zero.
    pub fn initial(mut self, initial: Duration) -> Self {
        self.policy.backoff.initial = initial;
        self
    }

    /// The factor applied to the delay per failed attempt (default 2). Must be at least 1.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.policy.backoff.multiplier = multiplier;
        self
    }

    /// The longest delay between two attempts (default 5 s). Must be at least `initial`.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.policy.backoff.cap = cap;
        self
    }

    /// Checks every field and returns the policy.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPolicy`] naming the first field that cannot work: a zero
    /// `timeout` or `initial`, a `cap` below `initial`, or a `multiplier` below 1 (or not
    /// a number).
    pub fn build(self) -> Result<RetryPolicy, Error> {
        let p = self.policy;
        let invalid = |field, problem: String| Err(Error::InvalidPolicy { field, problem });
        if p.timeout.is_zero() {
            return invalid("timeout", "must be greater than zero".into());
        }
        p.backoff.validate()?;
        Ok(p)
    }
}

// ===== Retry =====

/// Wraps a probe and retries it with back-off until it passes or the policy's timeout
/// passes.
///
/// A prerequisite is often not met *yet* at boot: the volume is still mounting, the
/// provisioning job has not chowned the directory. Rather than have every probe loop by
/// itself, wrap it:
///
/// - the first attempt starts at once; after the `n`-th failure the next starts after
///   [`RetryPolicy::delay_for`]`(n)`, each failure logged with reason `ProbeRetry`;
/// - it gives up — logging `ProbeGaveUp` and returning the **last failure** — as soon as
///   the next attempt could not start before the deadline;
/// - an attempt still running at the deadline (a `stat` on a hung mount…) is cancelled by
///   dropping it; the last failure is returned, or a
///   [`ProbeTimeout`](reason::PROBE_TIMEOUT) error if there was none.
///
/// Each [`check`](Probe::check) starts a fresh deadline. Build one with [`Retry::new`] or
/// [`ProbeExt::retry`](super::ProbeExt::retry).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use daemonkit::probe::{probe_fn, Probe, ProbeError, ProbeExt, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// static CALLS: AtomicU32 = AtomicU32::new(0);
/// let mount = probe_fn("data volume mounted", || async {
///     // Mounted on the third look.
///     if CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
///         return Err(ProbeError::failed("/data: expected a mount point, found a plain directory"));
///     }
///     Ok(())
/// });
///
/// let policy = RetryPolicy::builder().initial(Duration::from_millis(1)).build().unwrap();
/// assert!(mount.retry(policy).check().await.is_ok());
/// assert_eq!(CALLS.load(Ordering::SeqCst), 3);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Retry<P> {
    inner: P,
    policy: RetryPolicy,
}

impl<P: Probe> Retry<P> {
    /// Wraps `inner` to be retried under `policy`.
    pub fn new(inner: P, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The wrapped probe.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Logs that the retry gave up and hands back the failure to return.
    fn give_up(&self, attempts: u32, err: ProbeError) -> ProbeError {
        tracing::error!(
            reason = "ProbeGaveUp",
            probe = %self.inner.describe(),
            attempts,
            timeout = %go_duration(self.policy.timeout),
            probe_reason = %err.reason,
            "probe still failing at the retry deadline: {}",
            err.message
        );
        err
    }
}

impl<P: Probe> Probe for Retry<P> {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        Box::pin(async move {
            let deadline = Instant::now() + self.policy.timeout;
            let mut last: Option<ProbeError> = None;
            let mut attempt: u32 = 0;
            loop {
                attempt = attempt.saturating_add(1);
                let err = match tokio::time::timeout_at(deadline, check_caught(&self.inner)).await {
                    Ok(Ok(())) => {
                        if attempt > 1 {
                            tracing::info!(
                                reason = "ProbeRecovered",
                                probe = %self.inner.describe(),
                                attempts = attempt,
                                "probe passed after retrying"
                            );
                        }
                        return Ok(());
                    }
                    Ok(Err(err)) => err,
                    Err(_elapsed) => {
                        let err = last.unwrap_or_else(|| {
                            ProbeError::new(
                                reason::PROBE_TIMEOUT,
                                format!(
                                    "{}: did not finish within the retry deadline of {}",
                                    self.inner.describe(),
                                    go_duration(self.policy.timeout)
                                ),
                            )
                        });
                        return Err(self.give_up(attempt, err));
                    }
                };
                let delay = self.policy.delay_for(attempt);
                if Instant::now() + delay >= deadline {
                    return Err(self.give_up(attempt, err));
                }
                tracing::warn!(
                    reason = "ProbeRetry",
                    probe = %self.inner.describe(),
                    attempt,
                    retry_in = %go_duration(delay),
                    probe_reason = %err.reason,
                    "probe failed, retrying: {}",
                    err.message
                );
                last = Some(err);
                tokio::time::sleep(delay).await;
            }
        })
    }

    fn describe(&self) -> Cow<'_, str> {
        self.inner.describe()
    }
}
