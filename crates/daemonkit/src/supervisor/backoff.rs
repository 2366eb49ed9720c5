//! Exponential back-off, shared by the supervisor's [`RestartPolicy`](crate::RestartPolicy)
//! and the probes' [`RetryPolicy`](crate::probe::RetryPolicy).

use std::time::Duration;

use crate::Error;
use crate::duration::go_duration;

/// `initial × multiplier^(n−1)`, capped: the delay after the `n`-th consecutive failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) multiplier: f64,
    pub(crate) cap: Duration,
}

impl Backoff {
    /// The delay after the `n`-th consecutive failure (1-based).
    pub(crate) fn delay_for(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(1024) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        // `secs` is finite and positive (multiplier >= 1, initial > 0) or +inf.
        if secs >= self.cap.as_secs_f64() {
            self.cap
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Rejects a zero `initial`, a `cap` below `initial`, and a `multiplier` below 1 or
    /// not a number, naming the field.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |field, problem: String| Err(Error::InvalidPolicy { field, problem });
        if self.initial.is_zero() {
            return invalid("initial", "must be greater than zero".into());
        }
        if self.cap < self.initial {
            return invalid(
                "cap",
                format!(
                    "({}) must be at least `initial` ({})",
                    go_duration(self.cap),
                    go_duration(self.initial)
                ),
            );
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return invalid(
                "multiplier",
                format!(
                    "({}) must be a finite number of at least 1",
                    self.multiplier
                ),
            );
        }
        Ok(())
    }
}
