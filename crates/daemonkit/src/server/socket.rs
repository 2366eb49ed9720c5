//! Binding the control socket without stealing, clobbering or exposing anything.
//!
//! The rules, each one a failure seen in the field:
//!
//! - **Never steal a live daemon's socket.** A second copy of a daemon that unlinks the
//!   path and binds its own leaves the first one running but unreachable. If anything
//!   accepts on the path, binding fails with [`Error::SocketInUse`] and nothing is touched.
//! - **Never clobber what is not a socket.** A typo in a config file must not delete
//!   `/etc/passwd` or a directory. Anything but a socket (a regular file, a directory, a
//!   symbolic link — even one pointing at a socket) fails with
//!   [`Error::SocketPathOccupied`] and is left as it was.
//! - **Replace a stale socket.** One left by a process that crashed refuses connections;
//!   it is replaced, as a restart after a crash must work without an operator.
//! - **Never connectable by other users.** `bind` creates the file with the process'
//!   umask, and a `chmod` afterwards leaves a window. The socket is bound inside a fresh
//!   private directory (mode 0700, whatever the umask) next to the final path, set to mode
//!   0660, and only then renamed into place: at no moment can another user reach it.
//! - **Never bind where others can swap the socket.** The parent directory must not be a
//!   symbolic link, must be owned by root or this user, and must not be world-writable
//!   without the sticky bit ([`paths::check_socket_dir`], [`Error::UnsafeDirectory`]); a
//!   shared one that passes is logged with reason `ControlPlaneSocketDirShared`.
//! - **Remove only our own file on shutdown.** The file's device and inode are kept; a
//!   socket that someone replaced in the meantime (a newer instance) is left in place.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::io::Errno;

use crate::Error;
use crate::error::Op;
use crate::paths::{self, SocketDirWarning};

/// The longest path a Unix socket address holds on Linux: `sun_path` is 108 bytes and
/// the standard library keeps one for the terminating NUL.
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// Mode of the parent directory when it has to be created.
const DIR_MODE: u32 = 0o750;
/// Mode of the socket file: owner and group may connect, others may not.
const SOCKET_MODE: u32 = 0o660;

/// Makes the temporary directory names of concurrent binds in one process distinct.
static NEXT_TEMP: AtomicU32 = AtomicU32::new(0);

// ===== SocketFile =====

/// The socket file this process created, identified by device and inode so that it is
/// removed only while it is still ours.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Set once removal was attempted, so `Drop` does not try again.
    done: bool,
}

impl SocketFile {
    /// Removes the socket file if it is still the one this process created.
    ///
    /// Returns `Ok(false)` when the path is gone or now holds another file (for instance
    /// the socket of a newer instance), which is then left in place.
    pub(crate) fn remove(&mut self) -> Result<bool, Error> {
        self.done = true;
        // A tiny window remains between this check and the unlink; closing it would need
        // an unlink-if-inode primitive that POSIX does not have.
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                match fs::remove_file(&self.path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                    Err(source) => Err(Error::Io {
                        op: Op::RemoveSocket,
                        path: self.path.clone(),
                        source,
                    }),
                }
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Io {
                op: Op::InspectSocketBeforeRemoval,
                path: self.path.clone(),
                source,
            }),
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Reached when the control plane was bound but never served (e.g. a later start-up
        // step failed): leave no socket file behind.
        if !self.done {
            let _ = self.remove();
        }
    }
}

// ===== bind =====

/// Binds a listening socket at `path` following the rules in the module docs.
///
/// The listener is returned in blocking mode, as the standard library creates it.
pub(crate) fn bind(path: &Path) -> Result<(UnixListener, SocketFile), Error> {
    check_length(path)?;
    if path.file_name().is_none() {
        return Err(Error::InvalidServerConfig {
            setting: "socket_path",
            problem: format!("{} does not name a file", path.display()),
        });
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    ensure_dir(parent)?;
    check_parent(parent)?;

    let temp = TempDir::create(parent)?;
    let listener = UnixListener::bind(&temp.socket).map_err(|source| Error::Io {
        op: Op::BindSocket,
        path: temp.socket.clone(),
        source,
    })?;
    fs::set_permissions(&temp.socket, Permissions::from_mode(SOCKET_MODE)).map_err(|source| {
        Error::Io {
            op: Op::ChmodSocket,
            path: temp.socket.clone(),
            source,
        }
    })?;
    // Renaming keeps the inode, so this identifies the file that ends up at `path`.
    let meta = fs::symlink_metadata(&temp.socket).map_err(|source| Error::Io {
        op: Op::InspectBoundSocket,
        path: temp.socket.clone(),
        source,
    })?;

    // Another process may create the path between the check and the rename; the rename
    // refuses to replace anything, and the loop then looks again. Three rounds only
    // lose to something recreating the path continuously.
    for _ in 0..3 {
        match inspect(path)? {
            Existing::Absent => {}
            Existing::Stale { dev, ino } => remove_stale(path, dev, ino)?,
        }
        match rename_noreplace(&temp.socket, path) {
            Ok(()) => {
                let file = SocketFile {
                    path: path.to_owned(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                    done: false,
                };
                return Ok((listener, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(Error::Io {
                    op: Op::MoveSocketIntoPlace,
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Err(Error::SocketInUse {
        path: path.to_owned(),
    })
}

fn check_length(path: &Path) -> Result<(), Error> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::SocketPathTooLong {
            path: path.to_owned(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

/// Creates `dir` (mode 0750) when it is missing.
fn ensure_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    let created = DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .and_then(|()| {
            // The umask may have removed bits; the mode asked for is exactly 0750.
            fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
        });
    created.map_err(|source| Error::Io {
        op: Op::CreateSocketDir,
        path: dir.to_owned(),
        source,
    })?;
    tracing::info!(
        reason = "ControlPlaneDirCreated",
        path = %dir.display(),
        "created the control socket's directory (mode 0750)"
    );
    Ok(())
}

/// Applies the kit's one rule for a socket's parent ([`paths::check_socket_dir`]):
/// refused when a symbolic link, owned by another user than root or this one, or
/// world-writable without the sticky bit; a warning when others share it otherwise.
fn check_parent(dir: &Path) -> Result<(), Error> {
    match paths::check_socket_dir(dir)? {
        None => {}
        Some(SocketDirWarning::SharedSticky) => tracing::warn!(
            reason = "ControlPlaneSocketDirShared",
            path = %dir.display(),
            "the control socket's directory is writable by everyone (sticky bit set): \
             others may take the socket's name while the daemon is down, and daemonctl \
             refuses such a directory; prefer a private directory such as RuntimeDirectory="
        ),
        Some(SocketDirWarning::GroupWritable) => tracing::warn!(
            reason = "ControlPlaneSocketDirShared",
            path = %dir.display(),
            "the control socket's directory is writable by its group: members may replace \
             the socket, and daemonctl refuses such a directory; make it 0750"
        ),
    }
    Ok(())
}

/// What is at the socket path before binding.
enum Existing {
    Absent,
    /// A socket nothing accepts on: left by a process that is gone.
    Stale {
        dev: u64,
        ino: u64,
    },
}

/// Looks at `path` without following symbolic links, and asks a socket found there
/// whether anything accepts on it.
fn inspect(path: &Path) -> Result<Existing, Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Absent),
        Err(source) => {
            return Err(Error::Io {
                op: Op::InspectSocketPath,
                path: path.to_owned(),
                source,
            });
        }
    };
    let file_type = meta.file_type();
    if !file_type.is_socket() {
        return Err(Error::SocketPathOccupied {
            path: path.to_owned(),
            found: describe(file_type),
        });
    }
    match probe(path) {
        Ok(()) => Err(Error::SocketInUse {
            path: path.to_owned(),
        }),
        // Something is listening but its backlog is full: alive, just busy.
        Err(Errno::AGAIN) => Err(Error::SocketInUse {
            path: path.to_owned(),
        }),
        Err(Errno::CONNREFUSED) => Ok(Existing::Stale {
            dev: meta.dev(),
            ino: meta.ino(),
        }),
        Err(Errno::NOENT) => Ok(Existing::Absent),
        Err(errno) => Err(Error::Io {
            op: Op::ProbeExistingSocket,
            path: path.to_owned(),
            source: errno.into(),
        }),
    }
}

/// Connects to the socket at `path` without blocking: a live daemon with a full backlog
/// answers `EAGAIN` instead of stalling this start-up.
fn probe(path: &Path) -> Result<(), Errno> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    rustix::net::connect(&fd, &addr)
}

/// Unlinks the stale socket at `path`, provided it is still the one inspected.
fn remove_stale(path: &Path, dev: u64, ino: u64) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.dev() == dev && meta.ino() == ino => {}
        // Replaced or removed meanwhile: the next round of the caller's loop looks again.
        _ => return Ok(()),
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: Op::RemoveStaleSocket,
                path: path.to_owned(),
                source,
            });
        }
    }
    tracing::info!(
        reason = "ControlPlaneStaleSocketReplaced",
        path = %path.display(),
        "replacing a stale control socket that nothing accepts on (left by a process that exited)"
    );
    Ok(())
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A file system without RENAME_NOREPLACE: `link` fails on an existing target just
        // the same, and every file system that holds sockets supports hard links.
        Err(Errno::INVAL) | Err(Errno::NOSYS) => {
            fs::hard_link(from, to)?;
            let _ = fs::remove_file(from);
            Ok(())
        }
        Err(errno) => Err(errno.into()),
    }
}

fn describe(file_type: fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "an unknown kind of file"
    }
}

// ===== TempDir =====

/// A private directory (mode 0700) next to the socket path, holding the socket until it
/// has its final mode. Removed on drop, with the socket if it is still inside.
struct TempDir {
    dir: PathBuf,
    socket: PathBuf,
}

impl TempDir {
    fn create(parent: &Path) -> Result<TempDir, Error> {
        let pid = std::process::id();
        let mut last_error = None;
        for _ in 0..64 {
            let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
            // Short on purpose: the socket inside must fit in MAX_SOCKET_PATH too.
            let dir = parent.join(format!(".dk{pid:x}.{n:x}"));
            let socket = dir.join("s");
            check_length(&socket)?;
            // 0700 cannot be widened by any umask, so the directory is private from its
            // creation; stale names left by a killed process are skipped, not reused.
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(TempDir { dir, socket }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(source) => {
                    return Err(Error::Io {
                        op: Op::CreatePrivateTempDir,
                        path: parent.to_owned(),
                        source,
                    });
                }
            }
        }
        Err(Error::Io {
            op: Op::CreatePrivateTempDir,
            path: parent.to_owned(),
            source: last_error.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()),
        })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // After a successful rename the socket is no longer here; both calls may fail
        // harmlessly.
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_dir(&self.dir);
    }
}
