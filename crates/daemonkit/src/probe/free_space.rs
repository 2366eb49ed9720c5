//! [`FreeSpace`]: minimum free bytes or percent on the filesystem holding a path.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use super::{Probe, ProbeError, blocking, human_bytes, reason};
use crate::Error;
use crate::boxed::BoxFuture;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Minimum {
    Bytes(u64),
    Percent(f64),
}

/// Checks that the filesystem holding a path has at least a minimum of free space, in
/// bytes or in percent.
///
/// "Free" is what an unprivileged process can still use (`f_bavail × f_frsize` from
/// `statvfs(2)`), not counting blocks reserved for root, because that is what the daemon
/// will hit. Percent is that free space over the space in use plus free — the complement
/// of `df`'s `Use%` — so the figure matches what an operator sees in `df`. A filesystem
/// reporting no size at all (`/proc`) has 0 % free.
///
/// A failure names the path, the free space found (bytes and percent) and the minimum
/// expected, with reason [`InsufficientSpace`](reason::INSUFFICIENT_SPACE), or
/// [`PathInaccessible`](reason::PATH_INACCESSIBLE) when `statvfs` fails.
///
/// # Examples
///
/// ```
/// use daemonkit::probe::{FreeSpace, Probe};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// assert!(FreeSpace::min_bytes(dir.path(), 1).check().await.is_ok());
///
/// let err = FreeSpace::min_bytes(dir.path(), u64::MAX).check().await.unwrap_err();
/// assert_eq!(err.reason, "InsufficientSpace");
///
/// // A minimum outside 0–100 % is rejected when the probe is built.
/// assert!(FreeSpace::min_percent(dir.path(), 120.0).is_err());
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FreeSpace {
    path: PathBuf,
    minimum: Minimum,
}

impl FreeSpace {
    /// Requires at least `bytes` free on the filesystem holding `path`.
    pub fn min_bytes(path: impl Into<PathBuf>, bytes: u64) -> Self {
        FreeSpace {
            path: path.into(),
            minimum: Minimum::Bytes(bytes),
        }
    }

    /// Requires at least `percent` (0 to 100) of the filesystem holding `path` free.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidProbe`] when `percent` is not a number between 0 and 100.
    pub fn min_percent(path: impl Into<PathBuf>, percent: f64) -> Result<Self, Error> {
        let path = path.into();
        if !(0.0..=100.0).contains(&percent) {
            return Err(Error::InvalidProbe {
                probe: "free space",
                path,
                problem: format!("minimum {percent}% is not a percentage; expected 0 to 100"),
            });
        }
        Ok(FreeSpace {
            path,
            minimum: Minimum::Percent(percent),
        })
    }

    /// The path whose filesystem is checked.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The minimum in bytes, when the probe was built with [`min_bytes`](Self::min_bytes).
    pub fn minimum_bytes(&self) -> Option<u64> {
        match self.minimum {
            Minimum::Bytes(bytes) => Some(bytes),
            Minimum::Percent(_) => None,
        }
    }

    /// The minimum in percent, when the probe was built with
    /// [`min_percent`](Self::min_percent).
    pub fn minimum_percent(&self) -> Option<f64> {
        match self.minimum {
            Minimum::Percent(percent) => Some(percent),
            Minimum::Bytes(_) => None,
        }
    }

    fn expectation(&self) -> String {
        match self.minimum {
            Minimum::Bytes(bytes) => format!("at least {} free", human_bytes(bytes)),
            Minimum::Percent(percent) => format!("at least {percent}% free"),
        }
    }

    fn check_blocking(&self) -> Result<(), ProbeError> {
        let path = &self.path;
        let stat = rustix::fs::statvfs(path).map_err(|e| {
            let e = io::Error::from(e);
            ProbeError::new(
                reason::PATH_INACCESSIBLE,
                format!(
                    "{}: expected {} on its filesystem, found its filesystem cannot be \
                     inspected: {e}",
                    path.display(),
                    self.expectation()
                ),
            )
            .with_source(e)
        })?;
        let frsize = u128::from(stat.f_frsize);
        let avail = u128::from(stat.f_bavail) * frsize;
        let used = u128::from(stat.f_blocks.saturating_sub(stat.f_bfree)) * frsize;
        let percent = if used + avail == 0 {
            0.0
        } else {
            avail as f64 * 100.0 / (used + avail) as f64
        };
        let ok = match self.minimum {
            Minimum::Bytes(bytes) => avail >= u128::from(bytes),
            Minimum::Percent(min) => percent >= min,
        };
        if ok {
            return Ok(());
        }
        let avail = u64::try_from(avail).unwrap_or(u64::MAX);
        Err(ProbeError::new(
            reason::INSUFFICIENT_SPACE,
            format!(
                "{}: expected {} on its filesystem, found {} free ({percent:.1}%)",
                path.display(),
                self.expectation(),
                human_bytes(avail)
            ),
        ))
    }
}

impl Probe for FreeSpace {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        let probe = self.clone();
        Box::pin(blocking("free-space probe", move || probe.check_blocking()))
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Owned(format!(
            "{} on the filesystem of {}",
            self.expectation(),
            self.path.display()
        ))
    }
}
