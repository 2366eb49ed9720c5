//! [`Permissions`] and [`Ownership`]: a path's mode bits, owner and group.

use std::borrow::Cow;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use super::{Probe, ProbeError, blocking, octal, reason};
use crate::Error;
use crate::boxed::BoxFuture;

/// The permission bits a mode may carry: rwx for user, group and other, plus setuid,
/// setgid and sticky.
const MODE_BITS: u32 = 0o7777;

fn check_mode_bits(path: &Path, probe: &'static str, bits: u32) -> Result<(), Error> {
    if bits & !MODE_BITS != 0 {
        return Err(Error::InvalidProbe {
            probe,
            path: path.to_owned(),
            problem: format!(
                "bits {bits:#o} are not permission bits; expected a value within 0o7777, e.g. 0o750"
            ),
        });
    }
    Ok(())
}

/// Reads `path`'s metadata, following symbolic links (the target's mode and owner are
/// what access is decided on).
fn stat(path: &Path, expected: &str) -> Result<std::fs::Metadata, ProbeError> {
    std::fs::metadata(path).map_err(|e| inaccessible(path, expected, e))
}

fn inaccessible(path: &Path, expected: &str, e: io::Error) -> ProbeError {
    ProbeError::new(
        reason::PATH_INACCESSIBLE,
        format!(
            "{}: cannot be inspected to check {expected}: {e}",
            path.display()
        ),
    )
    .with_source(e)
}

/// `None` when `mode` has every bit of `bits`, else what is missing.
fn missing_bits(mode: u32, bits: u32) -> Option<String> {
    let missing = bits & !mode;
    (missing != 0).then(|| {
        format!(
            "mode is {}, expected bits {} set (missing {})",
            octal(mode),
            octal(bits),
            octal(missing)
        )
    })
}

// ===== Permissions =====

/// Checks that a path's mode has the required permission bits: `mode & bits == bits`.
///
/// Extra bits are fine (`0o755` satisfies `0o750`); the check is about what the daemon
/// needs, not about a hardening policy. Symbolic links are followed. A failure names the
/// path, the mode found, the bits expected and those missing, with reason
/// [`PermissionsMissing`](reason::PERMISSIONS_MISSING), or
/// [`PathInaccessible`](reason::PATH_INACCESSIBLE) when the path cannot be inspected.
///
/// # Examples
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// use daemonkit::probe::{Permissions, Probe};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
///
/// assert!(Permissions::new(dir.path(), 0o700).unwrap().check().await.is_ok());
/// let err = Permissions::new(dir.path(), 0o750).unwrap().check().await.unwrap_err();
/// assert_eq!(err.reason, "PermissionsMissing");
/// assert!(err.message.contains("mode is 0700, expected bits 0750 set (missing 0050)"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    path: PathBuf,
    bits: u32,
}

impl Permissions {
    /// A probe requiring `path`'s mode to have every bit of `bits` (e.g. `0o750`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidProbe`] when `bits` has bits outside `0o7777`.
    pub fn new(path: impl Into<PathBuf>, bits: u32) -> Result<Self, Error> {
        let path = path.into();
        check_mode_bits(&path, "permissions", bits)?;
        Ok(Permissions { path, bits })
    }

    /// The path checked.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The required bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }
}

impl Probe for Permissions {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        let (path, bits) = (self.path.clone(), self.bits);
        Box::pin(blocking("permissions probe", move || {
            let expected = format!("permission bits {} set", octal(bits));
            let mode = stat(&path, &expected)?.mode();
            match missing_bits(mode, bits) {
                None => Ok(()),
                Some(problem) => Err(ProbeError::new(
                    reason::PERMISSIONS_MISSING,
                    format!("{}: {problem}", path.display()),
                )),
            }
        }))
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Owned(format!(
            "permissions {} on {}",
            octal(self.bits),
            self.path.display()
        ))
    }
}

// ===== Ownership =====

/// Checks a path's owner and/or group, and optionally its permission bits.
///
/// Each part is optional; build one with [`Ownership::builder`]. The owner and group are
/// given by name ([`user`](OwnershipBuilder::user), [`group`](OwnershipBuilder::group)),
/// by number ([`uid`](OwnershipBuilder::uid), [`gid`](OwnershipBuilder::gid)), or as the
/// daemon's own ([`current_user`](OwnershipBuilder::current_user),
/// [`current_group`](OwnershipBuilder::current_group): the effective uid/gid, which is
/// what a directory the daemon writes to must usually belong to). Names are looked up in
/// the user and group databases (NSS: `/etc/passwd`, LDAP…) at every check, not when the
/// probe is built, so a user created by provisioning after the daemon was configured is
/// found. Symbolic links are followed.
///
/// A failure lists every part that does not match — expected and found, with names and
/// ids — under reason [`OwnershipMismatch`](reason::OWNERSHIP_MISMATCH) (or
/// [`PermissionsMissing`](reason::PERMISSIONS_MISSING) when only the bits are wrong);
/// [`UnknownOwner`](reason::UNKNOWN_OWNER) when a name does not exist;
/// [`PathInaccessible`](reason::PATH_INACCESSIBLE) when the path cannot be inspected.
///
/// # Examples
///
/// ```
/// use daemonkit::probe::{Ownership, Probe};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let probe = Ownership::builder(dir.path())
///     .user("no-such-user-here")
///     .build()
///     .unwrap();
/// let err = probe.check().await.unwrap_err();
/// assert_eq!(err.reason, "UnknownOwner");
/// assert!(err.message.contains("no-such-user-here"));
///
/// // A directory the daemon created is its own.
/// let mine = Ownership::builder(dir.path()).current_user().current_group().build().unwrap();
/// assert!(mine.check().await.is_ok());
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    path: PathBuf,
    user: Option<Who>,
    group: Option<Who>,
    bits: Option<u32>,
}

/// Who an [`Ownership`] requires as owner or group.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    /// A name, looked up at every check.
    Name(String),
    /// A numeric id, used as is (it need not exist in the database).
    Id(u32),
    /// The process's effective uid or gid, read at every check.
    Current,
}

/// Builds a validated [`Ownership`] probe; see [`Ownership::builder`].
#[derive(Debug, Clone)]
pub struct OwnershipBuilder {
    probe: Ownership,
}

impl Ownership {
    /// A builder for a probe of `path`, requiring nothing yet.
    pub fn builder(path: impl Into<PathBuf>) -> OwnershipBuilder {
        OwnershipBuilder {
            probe: Ownership {
                path: path.into(),
                user: None,
                group: None,
                bits: None,
            },
        }
    }

    /// The path checked.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The required owner's user name, when the owner was given by name.
    pub fn user(&self) -> Option<&str> {
        match &self.user {
            Some(Who::Name(name)) => Some(name),
            _ => None,
        }
    }

    /// The required group's name, when the group was given by name.
    pub fn group(&self) -> Option<&str> {
        match &self.group {
            Some(Who::Name(name)) => Some(name),
            _ => None,
        }
    }

    /// The required permission bits, if any.
    pub fn bits(&self) -> Option<u32> {
        self.bits
    }
}

impl OwnershipBuilder {
    /// Requires the path to be owned by the user named `name`.
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.probe.user = Some(Who::Name(name.into()));
        self
    }

    /// Requires the path to be owned by user id `uid` (which need not have a name).
    pub fn uid(mut self, uid: u32) -> Self {
        self.probe.user = Some(Who::Id(uid));
        self
    }

    /// Requires the path to be owned by the daemon's effective user, read at each check.
    pub fn current_user(mut self) -> Self {
        self.probe.user = Some(Who::Current);
        self
    }

    /// Requires the path's group to be the group named `name`.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.probe.group = Some(Who::Name(name.into()));
        self
    }

    /// Requires the path's group to be group id `gid` (which need not have a name).
    pub fn gid(mut self, gid: u32) -> Self {
        self.probe.group = Some(Who::Id(gid));
        self
    }

    /// Requires the path's group to be the daemon's effective group, read at each check.
    pub fn current_group(mut self) -> Self {
        self.probe.group = Some(Who::Current);
        self
    }

    /// Requires the path's mode to have every bit of `bits` (e.g. `0o750`).
    pub fn bits(mut self, bits: u32) -> Self {
        self.probe.bits = Some(bits);
        self
    }

    /// Checks the configuration and returns the probe.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidProbe`] when nothing is required, a name is empty or contains a
    /// NUL byte, or the bits are outside `0o7777`.
    pub fn build(self) -> Result<Ownership, Error> {
        let p = self.probe;
        let invalid = |problem: String| {
            Err(Error::InvalidProbe {
                probe: "ownership",
                path: p.path.clone(),
                problem,
            })
        };
        if p.user.is_none() && p.group.is_none() && p.bits.is_none() {
            return invalid("nothing to check; set a user, a group or bits".into());
        }
        for (kind, who) in [("user", &p.user), ("group", &p.group)] {
            if let Some(Who::Name(name)) = who
                && (name.is_empty() || name.contains('\0'))
            {
                return invalid(format!(
                    "{kind} name {name:?} is not a valid name; expected a non-empty name without NUL bytes"
                ));
            }
        }
        if let Some(bits) = p.bits {
            check_mode_bits(&p.path, "ownership", bits)?;
        }
        Ok(p)
    }
}

/// `name (uid N)`, or `uid N` when the user database has no name for it.
fn user_label(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("{} (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// `name (gid N)`, or `gid N` when the group database has no name for it.
fn group_label(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(group)) => format!("{} (gid {gid})", group.name),
        _ => format!("gid {gid}"),
    }
}

fn unknown_owner(path: &Path, kind: &str, name: &str, found: Result<(), nix::Error>) -> ProbeError {
    let base = format!(
        "{}: the required {kind} {name:?} does not exist in the {kind} database",
        path.display()
    );
    match found {
        Ok(()) => ProbeError::new(reason::UNKNOWN_OWNER, base),
        Err(errno) => ProbeError::new(
            reason::UNKNOWN_OWNER,
            format!("{base} (lookup failed: {errno})"),
        )
        .with_source(io::Error::from(errno)),
    }
}

impl Ownership {
    /// The blocking part of the check: name lookups and `stat`.
    fn check_blocking(&self) -> Result<(), ProbeError> {
        let path = &self.path;
        let uid = match &self.user {
            None => None,
            Some(Who::Id(uid)) => Some(*uid),
            Some(Who::Current) => Some(rustix::process::geteuid().as_raw()),
            Some(Who::Name(name)) => match User::from_name(name) {
                Ok(Some(user)) => Some(user.uid.as_raw()),
                Ok(None) => return Err(unknown_owner(path, "user", name, Ok(()))),
                Err(errno) => return Err(unknown_owner(path, "user", name, Err(errno))),
            },
        };
        let gid = match &self.group {
            None => None,
            Some(Who::Id(gid)) => Some(*gid),
            Some(Who::Current) => Some(rustix::process::getegid().as_raw()),
            Some(Who::Name(name)) => match Group::from_name(name) {
                Ok(Some(group)) => Some(group.gid.as_raw()),
                Ok(None) => return Err(unknown_owner(path, "group", name, Ok(()))),
                Err(errno) => return Err(unknown_owner(path, "group", name, Err(errno))),
            },
        };

        let meta = stat(path, &self.expectation())?;
        let mut problems = Vec::new();
        let mut owner_wrong = false;
        if let Some(uid) = uid
            && meta.uid() != uid
        {
            owner_wrong = true;
            problems.push(format!(
                "owner is {}, expected {}",
                user_label(meta.uid()),
                user_label(uid)
            ));
        }
        if let Some(gid) = gid
            && meta.gid() != gid
        {
            owner_wrong = true;
            problems.push(format!(
                "group is {}, expected {}",
                group_label(meta.gid()),
                group_label(gid)
            ));
        }
        if let Some(problem) = self.bits.and_then(|bits| missing_bits(meta.mode(), bits)) {
            problems.push(problem);
        }
        if problems.is_empty() {
            return Ok(());
        }
        let reason = if owner_wrong {
            reason::OWNERSHIP_MISMATCH
        } else {
            reason::PERMISSIONS_MISSING
        };
        Err(ProbeError::new(
            reason,
            format!("{}: {}", path.display(), problems.join("; ")),
        ))
    }

    /// What the probe requires, for messages: `owner app, group app, bits 0750 set`.
    fn expectation(&self) -> String {
        let mut parts = Vec::new();
        let who = |who: &Who, id: &str| match who {
            Who::Name(name) => name.clone(),
            Who::Id(n) => format!("{id} {n}"),
            Who::Current => "the daemon's own".to_owned(),
        };
        if let Some(user) = &self.user {
            parts.push(format!("owner {}", who(user, "uid")));
        }
        if let Some(group) = &self.group {
            parts.push(format!("group {}", who(group, "gid")));
        }
        if let Some(bits) = self.bits {
            parts.push(format!("permission bits {} set", octal(bits)));
        }
        parts.join(", ")
    }
}

impl Probe for Ownership {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        let probe = self.clone();
        Box::pin(blocking("ownership probe", move || probe.check_blocking()))
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Owned(format!(
            "ownership ({}) of {}",
            self.expectation(),
            self.path.display()
        ))
    }
}
