//! [`Tagged`]: a probe whose failure carries an operator-facing reason and resolution.

use std::borrow::Cow;

use super::{Probe, ProbeError, check_caught};
use crate::boxed::BoxFuture;

/// Wraps a probe and attaches an operator-facing `reason` and `resolution` to its failure.
///
/// A built-in probe knows what is wrong (`/var/lib/app: owner is root, expected app`) but
/// not what your deployment calls it or how it is fixed; the tag supplies both, so
/// `/status`, `/ready` and the start-up error tell the operator the exact command to run.
///
/// On failure the inner error's `reason` and `resolution` are replaced; its `message` and
/// `source` are kept. An empty `reason` or `resolution` keeps the inner one, so a tag can
/// add just a resolution. The outermost tag wins when tags are nested. Build one with
/// [`Tagged::new`] or [`ProbeExt::tagged`](super::ProbeExt::tagged).
///
/// # Examples
///
/// ```
/// use daemonkit::probe::{Probe, ProbeExt, WriteTest};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let probe = WriteTest::new("/nonexistent/app")
///     .tagged("DataDirNotWritable", "sudo install -d -o app -g app /nonexistent/app");
///
/// let err = probe.check().await.unwrap_err();
/// assert_eq!(err.reason, "DataDirNotWritable");
/// assert_eq!(err.resolution, "sudo install -d -o app -g app /nonexistent/app");
/// assert!(err.message.contains("/nonexistent/app"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Tagged<P> {
    inner: P,
    reason: String,
    resolution: String,
}

impl<P: Probe> Tagged<P> {
    /// Wraps `inner` so that its failure carries `reason` and `resolution`.
    pub fn new(inner: P, reason: impl Into<String>, resolution: impl Into<String>) -> Self {
        Tagged {
            inner,
            reason: reason.into(),
            resolution: resolution.into(),
        }
    }

    /// The reason attached to a failure.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The resolution attached to a failure.
    pub fn resolution(&self) -> &str {
        &self.resolution
    }

    /// The wrapped probe.
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: Probe> Probe for Tagged<P> {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        Box::pin(async move {
            check_caught(&self.inner).await.map_err(|mut err| {
                if !self.reason.is_empty() {
                    err.reason.clone_from(&self.reason);
                }
                if !self.resolution.is_empty() {
                    err.resolution.clone_from(&self.resolution);
                }
                err
            })
        })
    }

    fn describe(&self) -> Cow<'_, str> {
        self.inner.describe()
    }
}
