//! File-system helpers: name checks, creating files 0640, locking, syncing directories.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, OFlags};

use crate::{Error, NameProblem, Op};

/// The mode of every file this crate creates: owner read/write, group read.
pub(crate) const FILE_MODE: u32 = 0o640;

/// Checks that `name` is a plain file name: not empty, not absolute, no `/` or NUL, not `.`/`..`.
pub(crate) fn check_name(role: &'static str, name: &str) -> Result<(), Error> {
    let problem = if name.is_empty() {
        Some(NameProblem::Empty)
    } else if name.starts_with('/') {
        Some(NameProblem::Absolute)
    } else if name.contains('/') {
        Some(NameProblem::ContainsSlash)
    } else if name.contains('\0') {
        Some(NameProblem::ContainsNul)
    } else if name == "." || name == ".." {
        Some(NameProblem::DotOrDotDot)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::InvalidName {
            role,
            name: name.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// A prefix may be empty but must not reach into another directory.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), Error> {
    let problem = if prefix.starts_with('/') {
        Some(NameProblem::Absolute)
    } else if prefix.contains('/') {
        Some(NameProblem::ContainsSlash)
    } else if prefix.contains('\0') {
        Some(NameProblem::ContainsNul)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::InvalidName {
            role: "prefix",
            name: prefix.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// `dir` made absolute (without resolving symbolic links, as Go's `filepath.Abs`).
pub(crate) fn absolute_dir(dir: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(dir).map_err(|source| Error::Io {
        op: Op::ResolveDirectory,
        path: dir.to_path_buf(),
        source,
    })
}

/// Options shared by every open: never follow a symbolic link in the last component, so a link
/// planted at the log's name cannot make the log truncate or append to a file elsewhere.
fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    // The bits of O_NOFOLLOW fit in an i32 (it is 0o400000 on Linux).
    options.custom_flags(OFlags::NOFOLLOW.bits() as i32);
    options
}

/// Opens the log file for reading and appending, creating it mode 0640 if it does not exist.
/// Returns the file and whether it was created.
pub(crate) fn open_log_file(path: &Path) -> Result<(File, bool), Error> {
    let mut create = options();
    create
        .read(true)
        .append(true)
        .create_new(true)
        .mode(FILE_MODE);
    match create.open(path) {
        Ok(file) => {
            set_mode(&file, path)?;
            Ok((file, true))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let file = options()
                .read(true)
                .append(true)
                .open(path)
                .map_err(|source| Error::Io {
                    op: Op::Open,
                    path: path.to_path_buf(),
                    source,
                })?;
            Ok((file, false))
        }
        Err(source) => Err(Error::Io {
            op: Op::Open,
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates a new file mode 0640 for writing; fails if it exists.
pub(crate) fn create_new_file(path: &Path) -> Result<File, Error> {
    let file = options()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|source| Error::Io {
            op: Op::Open,
            path: path.to_path_buf(),
            source,
        })?;
    set_mode(&file, path)?;
    Ok(file)
}

/// Sets exactly 0640: the mode given at creation is narrowed by the process umask.
fn set_mode(file: &File, path: &Path) -> Result<(), Error> {
    file.set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(|source| Error::Io {
            op: Op::SetPermissions,
            path: path.to_path_buf(),
            source,
        })
}

/// How many times [`lock`] tries before reporting [`Error::Locked`], [`LOCK_PAUSE`] apart.
const LOCK_ATTEMPTS: u32 = 10;
/// The pause between two attempts of [`lock`].
const LOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// Takes the exclusive, non-blocking writer's lock on `file` (released when the file is closed).
///
/// A pruner that follows the lock convention (daemonkit-filepruner) holds a shared lock on a
/// file for the few system calls it takes to check and remove it; a conflict is therefore
/// retried for about 10 ms before it is reported as another writer.
pub(crate) fn lock(file: &File, path: &Path) -> Result<(), Error> {
    let mut attempt = 1;
    loop {
        match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::WOULDBLOCK) if attempt < LOCK_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(LOCK_PAUSE);
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(errno) => {
                return Err(Error::Io {
                    op: Op::Lock,
                    path: path.to_path_buf(),
                    source: errno.into(),
                });
            }
        }
    }
}

/// Makes a newly created entry in `dir` durable: without this a crash can lose the file itself.
pub(crate) fn sync_directory(dir: &Path) -> Result<(), Error> {
    // O_DIRECTORY: a FIFO planted at the path fails the open instead of blocking it forever.
    let mut open = OpenOptions::new();
    open.read(true)
        .custom_flags(OFlags::DIRECTORY.bits() as i32);
    open.open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            op: Op::SyncDirectory,
            path: dir.to_path_buf(),
            source,
        })
}

/// Makes the log's directory durable together with the entries that name it and each of its
/// ancestors, so a directory tree made just before the log (`create_dir_all` on a daemon's first
/// start) survives a power cut with it. Syncing `dir` alone would make the log's entry durable
/// inside a directory that a power cut can still remove.
///
/// Done on every open, not only when the file is created: a previous process may have made the
/// directories and died before syncing them, leaving them only in the page cache. An ancestor
/// this process cannot open (no read permission) is skipped: nothing more can be done for it.
pub(crate) fn sync_directory_and_ancestors(dir: &Path) -> Result<(), Error> {
    sync_directory(dir)?;
    // The real path, so the chain synced is the one on disk, not that of a symbolic link.
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    for ancestor in real.ancestors().skip(1) {
        match sync_directory(ancestor) {
            Ok(()) => {}
            Err(Error::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
                ) =>
            {
                tracing::debug!(
                    reason = "AncestorSyncSkipped",
                    path = %ancestor.display(),
                    error = %source,
                    "cannot sync an ancestor of the event log's directory; skipped"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
