//! [`RestartPolicy`]: how a crashed monitor is restarted, and how often it reports a
//! heartbeat.

use std::time::Duration;

use super::backoff::Backoff;
use crate::Error;

// ===== RestartPolicy =====

/// How a monitor is restarted after crashes, and how often it reports a heartbeat.
///
/// `RestartPolicy::default()` is the Go daemonkit's: back-off starts at 5 s and doubles
/// per consecutive crash up to 5 min; a run that lasted 60 s resets the streak; every 5th
/// consecutive crash logs `MonitorDegraded`; no jitter; no heartbeat; and it never gives
/// up: a monitor is restarted for as long as the process lives. Build another with
/// [`RestartPolicy::builder`], which rejects values that cannot work.
///
/// # Restart intensity
///
/// Restarting forever suits a monitor whose crashes come from outside (a peer that comes
/// back). For one whose crashes mean something is wrong with the host or the program,
/// [`RestartPolicyBuilder::give_up_after`] sets an Erlang/OTP-style intensity: more than
/// `max_crashes` crashes within `within` and the monitor is marked
/// [`failed`](crate::MonitorState::Failed) with reason `MonitorGaveUp` and not restarted.
/// What happens next is the daemon's choice: by default it carries on without the
/// monitor (`/ready` answers 503 naming it), or, with
/// [`DaemonBuilder::exit_on_give_up`](crate::DaemonBuilder::exit_on_give_up), it shuts
/// down with exit code 70 so that systemd's `Restart=` and `StartLimit*` take over.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::RestartPolicy;
///
/// let policy = RestartPolicy::builder()
///     .initial(Duration::from_millis(50))
///     .cap(Duration::from_secs(2))
///     .jitter(0.2)
///     .heartbeat(Duration::from_secs(30))
///     .build()
///     .unwrap();
/// assert_eq!(policy.delay_for(1), Duration::from_millis(50));
/// assert_eq!(policy.delay_for(3), Duration::from_millis(200));
///
/// let err = RestartPolicy::builder().multiplier(0.5).build().unwrap_err();
/// assert!(err.to_string().contains("multiplier"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    backoff: Backoff,
    stable_after: Duration,
    degraded_every: u32,
    jitter: f64,
    heartbeat: Option<Duration>,
    give_up: Option<(u32, Duration)>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff: Backoff {
                initial: Duration::from_secs(5),
                multiplier: 2.0,
                cap: Duration::from_secs(300),
            },
            stable_after: Duration::from_secs(60),
            degraded_every: 5,
            jitter: 0.0,
            heartbeat: None,
            give_up: None,
        }
    }
}

impl RestartPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> RestartPolicyBuilder {
        RestartPolicyBuilder {
            policy: RestartPolicy::default(),
        }
    }

    /// The back-off before the first restart.
    pub fn initial(&self) -> Duration {
        self.backoff.initial
    }

    /// Every `degraded_every`-th consecutive crash is reported as `MonitorDegraded`.
    pub fn degraded_every(&self) -> u32 {
        self.degraded_every
    }

    /// A run lasting at least this long resets the back-off and the crash streak.
    pub fn stable_after(&self) -> Duration {
        self.stable_after
    }

    /// The heartbeat interval, if heartbeats are on.
    pub fn heartbeat(&self) -> Option<Duration> {
        self.heartbeat
    }

    /// The factor applied to the back-off per consecutive crash.
    pub fn multiplier(&self) -> f64 {
        self.backoff.multiplier
    }

    /// The longest back-off.
    pub fn cap(&self) -> Duration {
        self.backoff.cap
    }

    /// The fraction by which each back-off is randomly shortened (0 = no jitter).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The restart intensity, if the policy gives up: more than `.0` crashes within `.1`
    /// mark the monitor failed. `None` (the default) restarts forever.
    pub fn give_up_after(&self) -> Option<(u32, Duration)> {
        self.give_up
    }

    /// The back-off after the `streak`-th consecutive crash (1-based), before jitter:
    /// `initial × multiplier^(streak−1)`, capped.
    pub fn delay_for(&self, streak: u32) -> Duration {
        self.backoff.delay_for(streak)
    }

    /// Applies jitter to a back-off: with jitter `j`, a duration drawn uniformly from
    /// `[d × (1 − j), d]`, so it never exceeds the cap.
    pub(crate) fn jittered(&self, d: Duration, rng: &mut u64) -> Duration {
        if self.jitter == 0.0 {
            return d;
        }
        // xorshift64*: plenty for spreading restarts; not for anything secret.
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        let unit = (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(1.0 - self.jitter * unit)
    }
}

/// Builds a validated [`RestartPolicy`]; see [`RestartPolicy::builder`].
#[derive(Debug, Clone)]
pub struct RestartPolicyBuilder {
    policy: RestartPolicy,
}

impl RestartPolicyBuilder {
    /// The back-off before the first restart (default 5 s). Must be non-zero.
    pub fn initial(mut self, initial: Duration) -> Self {
        self.policy.backoff.initial = initial;
        self
    }

    /// The factor applied per consecutive crash (default 2). Must be at least 1.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.policy.backoff.multiplier = multiplier;
        self
    }

    /// The longest back-off (default 5 min). Must be at least `initial`.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.policy.backoff.cap = cap;
        self
    }

    /// A run lasting at least this long before crashing resets the back-off and the
    /// crash streak (default 60 s).
    pub fn stable_after(mut self, stable_after: Duration) -> Self {
        self.policy.stable_after = stable_after;
        self
    }

    /// Report `MonitorDegraded` at every `n`-th consecutive crash (default 5). Must be
    /// non-zero.
    pub fn degraded_every(mut self, n: u32) -> Self {
        self.policy.degraded_every = n;
        self
    }

    /// Randomise each back-off downwards by up to this fraction, from 0 (default, off)
    /// to 1, so a fleet of hosts does not restart in lockstep.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.policy.jitter = fraction;
        self
    }

    /// Log a `MonitorHeartbeat` record at this interval while running (default: off).
    /// Must be non-zero.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.policy.heartbeat = Some(interval);
        self
    }

    /// Gives up on a monitor that crashes more than `max_crashes` times within `within`
    /// (a sliding window over the crash times): it is marked
    /// [`failed`](crate::MonitorState::Failed) with reason `MonitorGaveUp` and not
    /// restarted until an operator starts it ([`Command::Start`](crate::supervisor::Command),
    /// `daemonctl start`), which also resets the window. Default: never give up. `within` must be non-zero; `max_crashes` may
    /// be 0 (the first crash is final).
    ///
    /// Choose `within` longer than the back-offs the first `max_crashes` crashes wait,
    /// or the window never holds enough crashes to give up.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use daemonkit::RestartPolicy;
    ///
    /// // More than 5 crashes within 10 minutes is a failure.
    /// let policy = RestartPolicy::builder()
    ///     .give_up_after(5, Duration::from_secs(600))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(policy.give_up_after(), Some((5, Duration::from_secs(600))));
    /// assert_eq!(RestartPolicy::default().give_up_after(), None);
    /// ```
    pub fn give_up_after(mut self, max_crashes: u32, within: Duration) -> Self {
        self.policy.give_up = Some((max_crashes, within));
        self
    }

    /// Checks every field and returns the policy.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPolicy`] naming the first field that cannot work: a zero
    /// `initial`, a `cap` below `initial`, a `multiplier` below 1 (or not a number), a
    /// zero `degraded_every`, a `jitter` outside 0..=1, a zero `heartbeat`, or a zero
    /// `give_up_after` window.
    pub fn build(self) -> Result<RestartPolicy, Error> {
        let p = self.policy;
        let invalid = |field, problem: String| Err(Error::InvalidPolicy { field, problem });
        p.backoff.validate()?;
        if p.degraded_every == 0 {
            return invalid("degraded_every", "must be greater than zero".into());
        }
        if !(0.0..=1.0).contains(&p.jitter) {
            return invalid("jitter", format!("({}) must be between 0 and 1", p.jitter));
        }
        if p.heartbeat.is_some_and(|h| h.is_zero()) {
            return invalid("heartbeat", "must be greater than zero".into());
        }
        if p.give_up.is_some_and(|(_, within)| within.is_zero()) {
            return invalid(
                "give_up_after",
                "the window must be greater than zero".into(),
            );
        }
        Ok(p)
    }
}
