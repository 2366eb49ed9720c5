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
/// [`PathInaccessible`](reason::PATH_INACCESSIBLE) when `statvfs` fails. The figures
/// themselves are [`measure`](Self::measure)d as a [`Space`] that a monitor can read and
/// [`judge`](Self::judge) against one or more minimums.
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

    fn minimum_text(&self) -> String {
        match self.minimum {
            Minimum::Bytes(bytes) => human_bytes(bytes),
            Minimum::Percent(percent) => format!("{percent}%"),
        }
    }

    /// Measures the free space on the filesystem holding the path, without judging it,
    /// on tokio's blocking pool (`statvfs` can hang on a dead network mount).
    ///
    /// A monitor that watches the disk measures once per tick and uses the figures both
    /// for its own report and with [`judge`](Self::judge), possibly against several
    /// probes (a warning level that degrades, a critical one that stops work).
    ///
    /// # Errors
    ///
    /// A [`ProbeError`] with reason [`PathInaccessible`](reason::PATH_INACCESSIBLE) when
    /// `statvfs` fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use daemonkit::probe::FreeSpace;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let warn = FreeSpace::min_percent(dir.path(), 0.0).unwrap();
    /// let space = warn.measure().await.unwrap();
    /// assert!(space.available_bytes() <= space.total_bytes());
    /// assert!(warn.judge(&space).is_ok());
    ///
    /// let critical = FreeSpace::min_bytes(dir.path(), u64::MAX);
    /// let err = critical.judge(&space).unwrap_err(); // the same measurement, another bar
    /// assert_eq!(err.reason, "InsufficientSpace");
    /// # }
    /// ```
    pub async fn measure(&self) -> Result<Space, ProbeError> {
        let path = self.path.clone();
        blocking("free-space probe", move || measure_blocking(&path)).await
    }

    /// Judges a measurement against this probe's minimum: `Ok(())` when at least the
    /// minimum is free.
    ///
    /// # Errors
    ///
    /// A [`ProbeError`] with reason [`InsufficientSpace`](reason::INSUFFICIENT_SPACE)
    /// whose message names the path, the free bytes and percent measured and the minimum.
    pub fn judge(&self, space: &Space) -> Result<(), ProbeError> {
        let ok = match self.minimum {
            Minimum::Bytes(bytes) => space.available_bytes >= bytes,
            Minimum::Percent(min) => space.available_percent() >= min,
        };
        if ok {
            return Ok(());
        }
        Err(ProbeError::new(
            reason::INSUFFICIENT_SPACE,
            format!(
                "{}: its filesystem has {} free ({:.1}%), below the required minimum of {}",
                self.path.display(),
                human_bytes(space.available_bytes),
                space.available_percent(),
                self.minimum_text()
            ),
        ))
    }

    fn check_blocking(&self) -> Result<(), ProbeError> {
        self.judge(&measure_blocking(&self.path)?)
    }
}

fn measure_blocking(path: &Path) -> Result<Space, ProbeError> {
    let stat = rustix::fs::statvfs(path).map_err(|e| {
        let e = io::Error::from(e);
        ProbeError::new(
            reason::PATH_INACCESSIBLE,
            format!(
                "{}: its filesystem cannot be inspected: {e}",
                path.display()
            ),
        )
        .with_source(e)
    })?;
    let frsize = u128::from(stat.f_frsize);
    let avail = u128::from(stat.f_bavail) * frsize;
    let used = u128::from(stat.f_blocks.saturating_sub(stat.f_bfree)) * frsize;
    Ok(Space {
        available_bytes: u64::try_from(avail).unwrap_or(u64::MAX),
        total_bytes: u64::try_from(used + avail).unwrap_or(u64::MAX),
    })
}

// ===== Space =====

/// The free space [`FreeSpace::measure`] found on a filesystem.
///
/// "Available" is what an unprivileged process can still use (`f_bavail`); "total" is
/// that plus the space in use, leaving out the blocks reserved for root, so
/// [`available_percent`](Self::available_percent) is the complement of `df`'s `Use%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    available_bytes: u64,
    total_bytes: u64,
}

impl Space {
    /// The bytes an unprivileged process can still write.
    pub fn available_bytes(&self) -> u64 {
        self.available_bytes
    }

    /// The bytes in use plus available (the size `df` computes `Use%` against).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Available over total, in percent (0 to 100); 0 for a filesystem that reports no
    /// size at all (`/proc`).
    pub fn available_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            self.available_bytes as f64 * 100.0 / self.total_bytes as f64
        }
    }
}

impl std::fmt::Display for Space {
    /// `2.0 GiB (2147483648 bytes) free (12.5%)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} free ({:.1}%)",
            human_bytes(self.available_bytes),
            self.available_percent()
        )
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
