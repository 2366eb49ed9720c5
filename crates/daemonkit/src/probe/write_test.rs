//! [`WriteTest`]: a real file created, written and removed in a directory.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::{Probe, ProbeError, blocking, reason};
use crate::boxed::BoxFuture;

/// What the test file is written with: small enough to cost nothing, not empty so the
/// filesystem must allocate a block.
const PAYLOAD: &[u8] = b"daemonkit write test\n";

/// Makes named test files unique within this process; the pid makes them unique across
/// processes.
static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// Checks that a file can really be created and written in a directory, leaving nothing
/// behind.
///
/// Permission bits do not tell the whole story — a read-only mount, a full quota, an ACL,
/// an immutable attribute, or running as root (which ignores the bits) all change the
/// answer — so this probe asks the kernel by doing it:
///
/// - by default it opens an **unnamed** temporary file in the directory (`O_TMPFILE`),
///   writes a few bytes and closes it. The file never has a name, so it cannot be left
///   behind, whatever happens — even if the process is killed mid-check;
/// - on a filesystem without `O_TMPFILE` support (some network and FUSE filesystems), or
///   when asked with [`named_file`](Self::named_file), it creates a uniquely named hidden
///   file (`.daemonkit-write-test.<pid>.<n>`, with `O_EXCL`), writes to it and removes it.
///   The removal runs on every path out of the check, including a failed write and a
///   panic; only a process killed between create and unlink can leave the file.
///
/// The work runs on the blocking pool and finishes (cleaning up) even if the check is
/// cancelled. A failure names the directory, what was attempted and the system's answer,
/// with reason [`NotWritable`](reason::NOT_WRITABLE).
///
/// # Examples
///
/// ```
/// use daemonkit::probe::{Probe, WriteTest};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// assert!(WriteTest::new(dir.path()).check().await.is_ok());
/// assert!(WriteTest::new(dir.path()).named_file().check().await.is_ok());
/// assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
///
/// let err = WriteTest::new(dir.path().join("missing")).check().await.unwrap_err();
/// assert_eq!(err.reason, "NotWritable");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteTest {
    dir: PathBuf,
    named_file: bool,
}

impl WriteTest {
    /// A write test in the directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WriteTest {
            dir: dir.into(),
            named_file: false,
        }
    }

    /// Always use a named temporary file, never `O_TMPFILE`: closer to what a daemon that
    /// creates named files does (for example under a quota or a security module that
    /// treats unnamed files differently), at the cost of the small window described above.
    pub fn named_file(mut self) -> Self {
        self.named_file = true;
        self
    }

    /// The directory tested.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Probe for WriteTest {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        let (dir, named_file) = (self.dir.clone(), self.named_file);
        Box::pin(blocking("write test", move || {
            if !named_file {
                match write_unnamed(&dir) {
                    Unnamed::Done(result) => return result,
                    Unnamed::Unsupported => {}
                }
            }
            write_named(&dir)
        }))
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Owned(format!("write test in {}", self.dir.display()))
    }
}

fn not_writable(dir: &Path, what: &str, e: io::Error) -> ProbeError {
    ProbeError::new(
        reason::NOT_WRITABLE,
        format!(
            "{}: files cannot be created and written in this directory: {what} failed: {e}",
            dir.display()
        ),
    )
    .with_source(e)
}

enum Unnamed {
    Done(Result<(), ProbeError>),
    /// The kernel or filesystem has no `O_TMPFILE`: fall back to a named file.
    Unsupported,
}

fn write_unnamed(dir: &Path) -> Unnamed {
    let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => fd,
        // open(2): EOPNOTSUPP when the filesystem lacks O_TMPFILE, EISDIR when the kernel
        // does (it then reads the flag as O_DIRECTORY alone).
        Err(Errno::OPNOTSUPP | Errno::ISDIR) => return Unnamed::Unsupported,
        Err(e) => {
            return Unnamed::Done(Err(not_writable(
                dir,
                "creating a temporary file",
                e.into(),
            )));
        }
    };
    // The file has no name: closing it (dropping `file`) frees it, on every path.
    let mut file = File::from(fd);
    Unnamed::Done(
        file.write_all(PAYLOAD)
            .map_err(|e| not_writable(dir, "writing a temporary file", e)),
    )
}

/// Removes the named test file when dropped, unless it was removed already: the path out
/// of [`write_named`] through a panic still cleans up.
struct RemoveOnDrop<'a>(Option<&'a Path>);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort on the panic path; the normal paths report a failed removal.
            let _ = std::fs::remove_file(path);
        }
    }
}

fn write_named(dir: &Path) -> Result<(), ProbeError> {
    // A name collision can only be a leftover of another process that had our pid and was
    // killed mid-check: try a few other names, then report it.
    let mut attempts = 0;
    let (path, mut file) = loop {
        let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".daemonkit-write-test.{}.{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => break (path, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
            Err(e) => return Err(not_writable(dir, "creating a temporary file", e)),
        }
    };
    let mut guard = RemoveOnDrop(Some(&path));
    let written = file.write_all(PAYLOAD);
    drop(file);
    // Disarm the guard: from here on the removal is done, and reported, explicitly.
    guard.0 = None;
    let removed = std::fs::remove_file(&path);
    match (written, removed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) => Err(not_writable(dir, &format!("writing {}", path.display()), e)),
        // Something is left behind: that is the failure to report, whatever the write did.
        (written, Err(e)) => {
            let mut err = not_writable(dir, &format!("removing {}", path.display()), e);
            if let Err(w) = written {
                err.message
                    .push_str(&format!(" (after writing to it failed: {w})"));
            }
            err.message
                .push_str(&format!("; remove {} by hand", path.display()));
            Err(err)
        }
    }
}
