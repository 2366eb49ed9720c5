//! [`Composite`]: a component's probes, run concurrently; the first failure wins.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::{Probe, ProbeError};
use crate::boxed::BoxFuture;

/// A component's prerequisites: a named set of probes that passes when every one passes.
///
/// [`check`](Probe::check) runs the sub-probes concurrently (interleaved on the calling
/// task, so it needs no `'static` futures and spawns nothing). The first failure is
/// returned at once and the sub-probes still running are **cancelled by dropping their
/// futures** before `check` returns, so a slow sibling cannot delay the report of a
/// failure. A sub-probe that panics fails the composite with reason
/// [`ProbePanicked`](super::reason::PROBE_PANICKED) instead of unwinding into the caller.
///
/// A composite is a probe itself, so composites nest to any depth. An empty composite
/// passes. The component name appears in the `ComponentProbePassed` /
/// `ComponentProbeFailed` log records; the failure itself is returned unchanged.
///
/// # Examples
///
/// ```
/// use daemonkit::probe::{probe_fn, Composite, Probe, ProbeError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let database = Composite::new("database")
///     .with(probe_fn("schema", || async { Ok(()) }))
///     .with(probe_fn("replica", || async {
///         Err(ProbeError::new("ReplicaMissing", "expected 1 replica, found 0"))
///     }));
/// let daemon = Composite::new("daemon").with(database);
///
/// let err = daemon.check().await.unwrap_err();
/// assert_eq!(err.reason, "ReplicaMissing");
/// # }
/// ```
#[derive(Clone)]
pub struct Composite {
    component: String,
    probes: Vec<Arc<dyn Probe>>,
}

impl fmt::Debug for Composite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Composite")
            .field("component", &self.component)
            .field("probes", &self.probes)
            .finish()
    }
}

impl Composite {
    /// An empty composite (which passes) for the component named `component`.
    pub fn new(component: impl Into<String>) -> Self {
        Composite {
            component: component.into(),
            probes: Vec::new(),
        }
    }

    /// A composite of `probes` for the component named `component`.
    pub fn from_probes(
        component: impl Into<String>,
        probes: impl IntoIterator<Item = Arc<dyn Probe>>,
    ) -> Self {
        Composite {
            component: component.into(),
            probes: probes.into_iter().collect(),
        }
    }

    /// Adds a probe (builder style).
    pub fn with(mut self, probe: impl Probe) -> Self {
        self.probes.push(Arc::new(probe));
        self
    }

    /// Adds a shared probe.
    pub fn push(&mut self, probe: Arc<dyn Probe>) -> &mut Self {
        self.probes.push(probe);
        self
    }

    /// The component's name.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The sub-probes, in the order they were added.
    pub fn probes(&self) -> &[Arc<dyn Probe>] {
        &self.probes
    }
}

impl Composite {
    /// [`check`](Probe::check) without the `ComponentProbePassed`/`ComponentProbeFailed`
    /// records, for a caller that logs transitions itself (the background probe loop,
    /// which would otherwise log every round).
    #[cfg(feature = "daemon")]
    pub(crate) async fn check_quiet(&self) -> Result<(), ProbeError> {
        self.check_logged(false).await
    }

    async fn check_logged(&self, log: bool) -> Result<(), ProbeError> {
        {
            let started = Instant::now();
            let mut running: FuturesUnordered<_> = self
                .probes
                .iter()
                .enumerate()
                .map(|(index, probe)| {
                    // Both the synchronous part of `check` and every poll are behind the
                    // panic barrier: a panicking sub-probe is a failure, not an unwind.
                    crate::panic::call_async(|| probe.check()).map(move |outcome| (index, outcome))
                })
                .collect();

            while let Some((index, outcome)) = running.next().await {
                let probe = &self.probes[index];
                let err = match outcome {
                    Ok(Ok(())) => continue,
                    Ok(Err(err)) => err,
                    Err(message) => {
                        ProbeError::panicked(&format!("probe {:?}", probe.describe()), &message)
                    }
                };
                let cancelled = running.len();
                // Dropping the set drops every sibling's future: that is the cancellation.
                drop(running);
                if !log {
                    return Err(err);
                }
                tracing::warn!(
                    reason = "ComponentProbeFailed",
                    component = %self.component,
                    probe = %probe.describe(),
                    probe_reason = %err.reason,
                    resolution = %err.resolution,
                    cancelled,
                    "component prerequisite failed: {}",
                    err.message
                );
                return Err(err);
            }

            if log {
                tracing::info!(
                    reason = "ComponentProbePassed",
                    component = %self.component,
                    probes = self.probes.len(),
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "component prerequisites passed"
                );
            }
            Ok(())
        }
    }
}

impl Probe for Composite {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        Box::pin(self.check_logged(true))
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Owned(format!("component {}", self.component))
    }
}
