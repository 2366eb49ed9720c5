//! Where a daemon keeps its runtime, state, log and configuration files, and the checks
//! that make sure nobody else planted them.
//!
//! # Where the directories are
//!
//! [`dir`] (and its shorthands [`runtime_dir`], [`state_dir`], [`logs_dir`],
//! [`configuration_dir`]) finds a service's directory in this order:
//!
//! 1. **systemd's variable** for the kind — `$RUNTIME_DIRECTORY`, `$STATE_DIRECTORY`,
//!    `$LOGS_DIRECTORY`, `$CONFIGURATION_DIRECTORY`, set by `RuntimeDirectory=` and friends.
//!    These may hold several colon-separated paths (one per name in the unit); the first is
//!    used. systemd creates and chowns them before the process starts, so they are trusted
//!    as given: only "exists and is a directory" is checked (with `DynamicUser=` they are
//!    symbolic links into `/var/lib/private`, and `ConfigurationDirectory=` is root-owned and
//!    read-only to the service, both on purpose).
//! 2. **`$XDG_RUNTIME_DIR/<app>`** (a user session's private `/run/user/UID`).
//! 3. **`<temp dir>/<app>-<uid>`**, under the system temp dir (`$TMPDIR`, else `/tmp`).
//!
//! For the state, logs and configuration kinds, steps 2 and 3 use a subdirectory
//! (`state`, `logs`, `config`) of the runtime directory those steps give, so a daemon
//! started by hand keeps everything in one private place. Directories of steps 2 and 3 are
//! created by the process itself with mode 0700 and then verified with
//! [`check_private_dir`]: the owner is the effective uid, it is not a symbolic link, and
//! neither group nor others may write to it. One that already exists and fails the check
//! is refused with [`Error::UnsafeDirectory`], which names its owner and mode and says
//! what to do; it is never used.
//!
//! # Why
//!
//! The temp dir is world-writable. Anybody may create `/tmp/myapp-0` before the daemon
//! does: mode 0777, so they can swap the control socket for their own listener, or with a
//! `state` symlink pointing into a root-only directory where a root daemon would then
//! create its event log and prune. The checks make such a directory an error, not a
//! foothold.
//!
//! # The three rules, one implementation
//!
//! [`inspect_dir`] reads a path's owner, mode and type without following a final
//! symbolic link; three rules judge what it found:
//!
//! | rule | used for | refuses |
//! |---|---|---|
//! | [`check_private_dir`] | the directories this module creates | symlink, not a directory, owner ≠ effective uid, writable by group or others |
//! | [`check_socket_dir`] | the parent of a socket the kernel binds | symlink, not a directory, owner neither root nor the effective uid, writable by others without the sticky bit (a sticky world-writable or a group-writable parent is accepted with a [`SocketDirWarning`]) |
//! | [`check_client_socket_dir`] | the parent of a socket `daemonctl` connects to | symlink, not a directory, writable by group or others (sticky or not) |
//!
//! # Examples
//!
//! ```
//! # // The doctest must not depend on the caller's environment.
//! # // SAFETY: a doctest is its own single-threaded process; nothing reads the environment meanwhile.
//! # unsafe { std::env::remove_var("RUNTIME_DIRECTORY"); std::env::remove_var("STATE_DIRECTORY"); }
//! let dir = tempfile::tempdir()?;
//! # unsafe { std::env::set_var("XDG_RUNTIME_DIR", dir.path()); }
//! // With XDG_RUNTIME_DIR set (as in a user session):
//! let runtime = daemonkit::paths::runtime_dir("inventory-agent")?;
//! assert_eq!(runtime, dir.path().join("inventory-agent"));
//! let state = daemonkit::paths::state_dir("inventory-agent")?;
//! assert_eq!(state, runtime.join("state"));
//! // Both exist now, private to this user.
//! daemonkit::paths::check_private_dir(&state)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::error::Op;

/// Mode of a directory this module creates: owner only.
const PRIVATE_MODE: u32 = 0o700;
/// Write permission for the group and for others.
const GROUP_OR_OTHER_WRITE: u32 = 0o022;
const OTHER_WRITE: u32 = 0o002;
const GROUP_WRITE: u32 = 0o020;
const STICKY: u32 = 0o1000;

// ===== DirKind =====

/// Which of a service's directories: the four that systemd manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DirKind {
    /// Sockets, PID files, anything that need not survive a reboot (`RuntimeDirectory=`).
    Runtime,
    /// Data that must survive restarts and reboots, e.g. an event log (`StateDirectory=`).
    State,
    /// Log files (`LogsDirectory=`).
    Logs,
    /// Configuration the service reads (`ConfigurationDirectory=`).
    Configuration,
}

impl DirKind {
    /// The environment variable systemd sets for this kind, e.g. `STATE_DIRECTORY`.
    pub fn env_var(self) -> &'static str {
        match self {
            DirKind::Runtime => "RUNTIME_DIRECTORY",
            DirKind::State => "STATE_DIRECTORY",
            DirKind::Logs => "LOGS_DIRECTORY",
            DirKind::Configuration => "CONFIGURATION_DIRECTORY",
        }
    }

    /// The subdirectory of the runtime directory used when systemd's variable is not set
    /// (`None` for [`DirKind::Runtime`], which is that directory).
    pub fn fallback_subdir(self) -> Option<&'static str> {
        match self {
            DirKind::Runtime => None,
            DirKind::State => Some("state"),
            DirKind::Logs => Some("logs"),
            DirKind::Configuration => Some("config"),
        }
    }
}

// ===== where the directories are =====

/// Where a directory comes from: which step of the lookup order (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// systemd's variable for the kind (trusted as given).
    Systemd,
    /// Under `$XDG_RUNTIME_DIR`.
    XdgRuntimeDir,
    /// Under the system temp dir, in the per-user `<app>-<uid>` directory.
    TempDir,
}

/// A directory's path and where it comes from, as computed by [`locate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The directory.
    pub path: PathBuf,
    /// Which step of the lookup order gave it.
    pub origin: Origin,
}

/// Computes where the `kind` directory of `app` is, without touching the file system.
///
/// Use [`dir`] to also create and check it; `locate` is for a client (such as `daemonctl`)
/// that must find a daemon's directory without creating it.
pub fn locate(kind: DirKind, app: &str) -> Location {
    if let Some(path) = systemd_dir(kind) {
        return Location {
            path,
            origin: Origin::Systemd,
        };
    }
    let (base, origin) = match xdg_runtime_dir() {
        Some(xdg) => (xdg.join(app), Origin::XdgRuntimeDir),
        None => (user_temp_dir(app), Origin::TempDir),
    };
    let path = match kind.fallback_subdir() {
        Some(sub) => base.join(sub),
        None => base,
    };
    Location { path, origin }
}

/// Finds the `kind` directory of `app` (see the module docs for the order), creating it
/// and checking it when it is not systemd's.
///
/// # Errors
///
/// - [`Error::UnsafeDirectory`] when the directory (or the per-user directory it is in)
///   exists but is not the private directory it must be: a symbolic link, owned by another
///   user, or writable by group or others; or when systemd's variable names something
///   that is not a directory.
/// - [`Error::Io`] when it cannot be created or inspected.
pub fn dir(kind: DirKind, app: &str) -> Result<PathBuf, Error> {
    let location = locate(kind, app);
    if location.origin == Origin::Systemd {
        let info = inspect_followed(&location.path)?;
        if !info.is_dir() {
            return Err(info.refuse(
                format!(
                    "${} names something that is not a directory",
                    kind.env_var()
                ),
                "check the unit's *Directory= settings".to_owned(),
            ));
        }
        return Ok(location.path);
    }
    if location.origin == Origin::TempDir {
        check_shared_parent(&std::env::temp_dir())?;
    }
    // The per-app base directory first, then the kind's subdirectory inside it: each one
    // is created private and verified before anything is created in it.
    let base = match kind.fallback_subdir() {
        Some(_) => location.path.parent().map(Path::to_path_buf),
        None => None,
    };
    if let Some(base) = base {
        create_private_dir(&base)?;
    }
    create_private_dir(&location.path)?;
    Ok(location.path)
}

/// The runtime directory of `app`: [`dir`]`(DirKind::Runtime, app)`.
///
/// `$RUNTIME_DIRECTORY` (set by systemd's `RuntimeDirectory=`), else
/// `$XDG_RUNTIME_DIR/<app>`, else `<temp dir>/<app>-<uid>`, the last two created private
/// (0700) and verified.
///
/// # Errors
///
/// As [`dir`].
pub fn runtime_dir(app: &str) -> Result<PathBuf, Error> {
    dir(DirKind::Runtime, app)
}

/// The state directory of `app`: `$STATE_DIRECTORY`, else the `state` subdirectory of the
/// runtime directory's fallback. See [`dir`].
///
/// # Errors
///
/// As [`dir`].
pub fn state_dir(app: &str) -> Result<PathBuf, Error> {
    dir(DirKind::State, app)
}

/// The logs directory of `app`: `$LOGS_DIRECTORY`, else the `logs` subdirectory of the
/// runtime directory's fallback. See [`dir`].
///
/// # Errors
///
/// As [`dir`].
pub fn logs_dir(app: &str) -> Result<PathBuf, Error> {
    dir(DirKind::Logs, app)
}

/// The configuration directory of `app`: `$CONFIGURATION_DIRECTORY`, else the `config`
/// subdirectory of the runtime directory's fallback. See [`dir`].
///
/// # Errors
///
/// As [`dir`].
pub fn configuration_dir(app: &str) -> Result<PathBuf, Error> {
    dir(DirKind::Configuration, app)
}

/// The conventional control-socket path of `app`: `control.sock` in its runtime directory
/// (see [`locate`] and the module docs), computed without touching the file system.
///
/// The control plane's socket bind (feature `server`) creates a missing parent and applies [`check_socket_dir`]; call
/// [`runtime_dir`] first to have the parent created private and checked strictly.
/// `daemonctl --daemon <app>` computes the same path.
///
/// # Examples
///
/// ```
/// let path = daemonkit::paths::default_socket_path("demo");
/// assert!(path.ends_with("control.sock"));
/// ```
pub fn default_socket_path(app: &str) -> PathBuf {
    locate(DirKind::Runtime, app).path.join("control.sock")
}

/// `<temp dir>/<app>-<uid>`: the per-user directory for `app` under the system temp dir,
/// computed without touching the file system (no creation, no check; [`runtime_dir`] does
/// both). The user id keeps two users of one host apart.
pub fn user_temp_dir(app: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{app}-{}", rustix::process::geteuid().as_raw()))
}

/// The first absolute path in systemd's variable for `kind`, if set.
fn systemd_dir(kind: DirKind) -> Option<PathBuf> {
    let value = std::env::var_os(kind.env_var())?;
    first_path(value)
}

fn xdg_runtime_dir() -> Option<PathBuf> {
    first_path(std::env::var_os("XDG_RUNTIME_DIR")?)
}

/// The first entry of a colon-separated list, when it is an absolute path. A relative
/// entry is ignored, as systemd and the XDG spec never set one and it would depend on the
/// working directory.
fn first_path(value: OsString) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    let first = bytes.split(|b| *b == b':').next().unwrap_or_default();
    let path = Path::new(std::ffi::OsStr::from_bytes(first));
    path.is_absolute().then(|| path.to_path_buf())
}

/// Creates `path` with mode 0700 unless it exists, then verifies it with
/// [`check_private_dir`], whoever created it.
fn create_private_dir(path: &Path) -> Result<(), Error> {
    match DirBuilder::new().mode(PRIVATE_MODE).create(path) {
        Ok(()) => {
            // The umask can only have removed bits; make it exactly 0700. The directory
            // is ours and in a directory nobody else may rename entries of (see
            // `check_shared_parent`), so the path still names it.
            fs::set_permissions(path, Permissions::from_mode(PRIVATE_MODE)).map_err(|source| {
                Error::Io {
                    op: Op::ChmodPrivateDir,
                    path: path.to_owned(),
                    source,
                }
            })?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(Error::Io {
                op: Op::CreatePrivateDir,
                path: path.to_owned(),
                source,
            });
        }
    }
    // Verified after creation, not only when it existed: between `mkdir` and now another
    // process could only have changed it if the check below fails.
    check_private_dir(path).map(drop)
}

/// The system temp dir must keep others from renaming our entries: world-writable only
/// with the sticky bit.
fn check_shared_parent(dir: &Path) -> Result<(), Error> {
    let info = inspect_followed(dir)?;
    if info.mode & OTHER_WRITE != 0 && info.mode & STICKY == 0 {
        return Err(info.refuse(
            "the system temp dir is writable by everyone without the sticky bit, so \
             anybody may rename or replace what is created in it"
                .to_owned(),
            "fix its mode (chmod 1777) or set XDG_RUNTIME_DIR, TMPDIR or an explicit path"
                .to_owned(),
        ));
    }
    Ok(())
}

// ===== DirInfo =====

/// What a directory path is, read without following a final symbolic link: the input of
/// the rules [`check_private_dir`], [`check_socket_dir`] and [`check_client_socket_dir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirInfo {
    path: PathBuf,
    file_type: FileKind,
    uid: u32,
    mode: u32,
}

/// The kind of file found, as far as the rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    Dir,
    Symlink,
    Other(&'static str),
}

/// Reads `path`'s type, owner and mode without following a final symbolic link.
///
/// # Errors
///
/// [`Error::Io`] when `path` cannot be inspected (including when it does not exist).
pub fn inspect_dir(path: &Path) -> Result<DirInfo, Error> {
    let meta = fs::symlink_metadata(path).map_err(|source| Error::Io {
        op: Op::InspectDir,
        path: path.to_owned(),
        source,
    })?;
    Ok(DirInfo::from_metadata(path, &meta))
}

/// Like [`inspect_dir`] but following symbolic links (for directories handed to us by the
/// service manager or the system).
fn inspect_followed(path: &Path) -> Result<DirInfo, Error> {
    let meta = fs::metadata(path).map_err(|source| Error::Io {
        op: Op::InspectDir,
        path: path.to_owned(),
        source,
    })?;
    Ok(DirInfo::from_metadata(path, &meta))
}

impl DirInfo {
    fn from_metadata(path: &Path, meta: &fs::Metadata) -> DirInfo {
        let ft = meta.file_type();
        let file_type = if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::Other("a regular file")
        } else if ft.is_socket() {
            FileKind::Other("a socket")
        } else if ft.is_fifo() {
            FileKind::Other("a FIFO")
        } else {
            FileKind::Other("a device or unknown kind of file")
        };
        DirInfo {
            path: path.to_owned(),
            file_type,
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
        }
    }

    /// The path inspected.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The owner's uid (of the link itself when [`is_symlink`](DirInfo::is_symlink)).
    pub fn owner(&self) -> u32 {
        self.uid
    }

    /// The permission bits, with setuid, setgid and sticky (e.g. `0o1777` for `/tmp`).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Whether the path is a directory (not a symbolic link to one).
    pub fn is_dir(&self) -> bool {
        self.file_type == FileKind::Dir
    }

    /// Whether the path is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type == FileKind::Symlink
    }

    /// Whether the sticky bit is set: others may create entries but not rename or remove
    /// those they do not own.
    pub fn is_sticky(&self) -> bool {
        self.mode & STICKY != 0
    }

    /// Whether members of the directory's group may create, rename or remove entries.
    pub fn group_writable(&self) -> bool {
        self.mode & GROUP_WRITE != 0
    }

    /// Whether every user may create, rename or remove entries.
    pub fn world_writable(&self) -> bool {
        self.mode & OTHER_WRITE != 0
    }

    /// The owner as a person reads it: `alice (uid 1000)`, or `uid 1000` when the user
    /// database has no name for it.
    pub fn owner_name(&self) -> String {
        owner_name(self.uid)
    }

    /// Refuses the shape of path in front of the rules: a symbolic link or not a directory.
    fn refuse_non_dir(&self, fix: &str) -> Result<(), Error> {
        match self.file_type {
            FileKind::Dir => Ok(()),
            FileKind::Symlink => Err(self.refuse(
                "it is a symbolic link, which whoever created it can point anywhere".to_owned(),
                fix.to_owned(),
            )),
            FileKind::Other(what) => {
                Err(self.refuse(format!("it is {what}, not a directory"), fix.to_owned()))
            }
        }
    }

    fn refuse(&self, problem: String, fix: String) -> Error {
        Error::UnsafeDirectory {
            path: self.path.clone(),
            owner: self.owner_name(),
            mode: self.mode,
            problem,
            fix,
        }
    }
}

/// `alice (uid 1000)`, or `uid 1000` when the name cannot be found.
fn owner_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("{} (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

// ===== the rules =====

/// Checks that `path` is a private directory of this process' user: a directory (not a
/// symbolic link), owned by the effective uid, writable by neither group nor others.
///
/// The rule for every directory this module creates under a shared location, applied
/// whether the process just created it or found it.
///
/// # Errors
///
/// [`Error::UnsafeDirectory`] naming the owner, the mode and what to do;
/// [`Error::Io`] when `path` cannot be inspected.
pub fn check_private_dir(path: &Path) -> Result<DirInfo, Error> {
    let info = inspect_dir(path)?;
    let fix = format!(
        "remove it (it is not ours: `rm -r {0}` as its owner or root) or point the program \
         elsewhere (XDG_RUNTIME_DIR, TMPDIR or an explicit path)",
        path.display()
    );
    info.refuse_non_dir(&fix)?;
    if info.uid != euid() {
        return Err(info.refuse(
            format!(
                "it must be owned by {}, who runs this program",
                owner_name(euid())
            ),
            fix,
        ));
    }
    if info.mode & GROUP_OR_OTHER_WRITE != 0 {
        return Err(info.refuse(
            "others may write to it and so swap the files in it".to_owned(),
            format!(
                "make it private (`chmod 0700 {}`) or remove it",
                path.display()
            ),
        ));
    }
    Ok(info)
}

/// A socket parent the kernel binds in although others share it, as found by
/// [`check_socket_dir`]: worth a warning, not a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketDirWarning {
    /// World-writable with the sticky bit (e.g. `/tmp`): others cannot replace the socket
    /// while it exists, but may take the name while the daemon is down. `daemonctl`
    /// refuses such a parent.
    SharedSticky,
    /// Writable by the directory's group: its members may replace the socket. `daemonctl`
    /// refuses such a parent.
    GroupWritable,
}

/// Checks the parent directory of a socket that this process is about to bind.
///
/// Refused: a symbolic link; not a directory; owned by neither root nor the effective
/// uid (its owner could swap the socket); writable by others without the sticky bit.
/// Accepted with a [`SocketDirWarning`]: world-writable with the sticky bit, or
/// group-writable.
///
/// # Errors
///
/// [`Error::UnsafeDirectory`] naming the owner, the mode and what to do;
/// [`Error::Io`] when `dir` cannot be inspected.
pub fn check_socket_dir(dir: &Path) -> Result<Option<SocketDirWarning>, Error> {
    let info = inspect_dir(dir)?;
    let fix = "give a socket path in a directory owned by root or this user that others \
               cannot write to (e.g. the service's RuntimeDirectory=)";
    info.refuse_non_dir(fix)?;
    if info.uid != 0 && info.uid != euid() {
        return Err(info.refuse(
            format!(
                "it is owned by neither root nor {}, so its owner could replace the socket",
                owner_name(euid())
            ),
            fix.to_owned(),
        ));
    }
    if info.world_writable() {
        if !info.is_sticky() {
            return Err(info.refuse(
                "everyone may write to it and it lacks the sticky bit, so anybody could \
                 replace the socket"
                    .to_owned(),
                fix.to_owned(),
            ));
        }
        return Ok(Some(SocketDirWarning::SharedSticky));
    }
    if info.group_writable() {
        return Ok(Some(SocketDirWarning::GroupWritable));
    }
    Ok(None)
}

/// Checks the parent directory of a socket a client is about to connect to: refused
/// when it is a symbolic link, not a directory, or writable by group or others (sticky
/// bit or not), since then somebody other than its owner may have put the socket there.
///
/// The owner is not judged here: a client compares it with the server's peer
/// credentials (root, the client's own user, or the directory's owner may serve).
///
/// # Errors
///
/// [`Error::UnsafeDirectory`] naming the owner, the mode and what to do;
/// [`Error::Io`] when `dir` cannot be inspected.
pub fn check_client_socket_dir(dir: &Path) -> Result<DirInfo, Error> {
    let info = inspect_dir(dir)?;
    let fix = "ask the daemon's administrator to serve the socket from a directory only its \
               owner can write to (e.g. the service's RuntimeDirectory=)";
    info.refuse_non_dir(fix)?;
    if info.mode & GROUP_OR_OTHER_WRITE != 0 {
        return Err(info.refuse(
            "users other than its owner may write to it, so the socket in it may not be \
             the daemon's"
                .to_owned(),
            fix.to_owned(),
        ));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_several_colon_separated_paths_is_used() {
        assert_eq!(
            first_path("/run/a:/run/b".into()),
            Some(PathBuf::from("/run/a"))
        );
        assert_eq!(first_path("/run/a".into()), Some(PathBuf::from("/run/a")));
        assert_eq!(first_path("relative:/run/b".into()), None);
        assert_eq!(first_path("".into()), None);
    }

    #[test]
    fn fallback_subdirs_are_distinct() {
        let subs = [DirKind::State, DirKind::Logs, DirKind::Configuration]
            .map(|k| k.fallback_subdir().unwrap());
        assert_eq!(subs, ["state", "logs", "config"]);
        assert_eq!(DirKind::Runtime.fallback_subdir(), None);
    }
}
