//! The built-in leaf probes against real files, real modes, real owners and real
//! filesystems: each one passes and fails for real.
//!
//! Some behaviours need root (chown to another user, mounting a tmpfs); the tests that
//! need it say so on stderr and check what an unprivileged user can when not root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use daemonkit::Error;
use daemonkit::probe::{FreeSpace, Ownership, Permissions, Probe, ProbeError, WriteTest, reason};
use nix::unistd::{Group, User};

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop; `None` (with a note
/// on stderr) where this process may not mount.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

async fn fails(probe: impl Probe) -> ProbeError {
    probe
        .check()
        .await
        .expect_err("the probe passed, expected a failure")
}

// ===== Permissions =====

#[tokio::test]
async fn permissions_pass_when_every_required_bit_is_set() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    Permissions::new(dir.path(), 0o750)
        .unwrap()
        .check()
        .await
        .unwrap();
    Permissions::new(dir.path(), 0o755)
        .unwrap()
        .check()
        .await
        .unwrap();
}

#[tokio::test]
async fn permissions_fail_naming_path_expected_found_and_missing_bits() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o700);
    let err = fails(Permissions::new(dir.path(), 0o750).unwrap()).await;
    assert_eq!(err.reason, reason::PERMISSIONS_MISSING);
    assert_eq!(
        err.message,
        format!(
            "{}: mode is 0700, expected bits 0750 set (missing 0050)",
            dir.path().display()
        )
    );
    assert!(
        err.resolution.is_empty(),
        "an untagged probe has no resolution"
    );
}

#[tokio::test]
async fn permissions_fail_on_a_missing_path_with_the_os_error_as_source() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = fails(Permissions::new(&missing, 0o700).unwrap()).await;
    assert_eq!(err.reason, reason::PATH_INACCESSIBLE);
    assert!(err.message.starts_with(&format!(
        "{}: cannot be inspected to check permission bits 0700 set: ",
        missing.display()
    )));
    assert!(
        err.message.contains("No such file or directory"),
        "{}",
        err.message
    );
    let io = err
        .source
        .as_ref()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn permissions_reject_bits_that_are_not_permission_bits() {
    let err = Permissions::new("/var/lib/app", 0o40750).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidProbe {
                probe: "permissions",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("/var/lib/app"), "{err}");
}

// ===== Ownership =====

/// The user and group names of uid/gid 65534 (`nobody`/`nogroup` on Debian).
fn nobody() -> (String, String) {
    let user = User::from_uid(65534.into())
        .unwrap()
        .expect("a user with uid 65534");
    let group = Group::from_gid(65534.into())
        .unwrap()
        .expect("a group with gid 65534");
    (user.name, group.name)
}

#[tokio::test]
async fn ownership_passes_for_the_owner_group_and_bits_of_a_chowned_dir() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o750);
    let (user, group) = if is_root() {
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        nobody()
    } else {
        eprintln!("not root: checking the current user's own directory instead of a chown'd one");
        let me = User::from_uid(nix::unistd::geteuid()).unwrap().unwrap();
        let group = Group::from_gid(nix::unistd::getegid()).unwrap().unwrap();
        (me.name, group.name)
    };
    let probe = Ownership::builder(dir.path())
        .user(&user)
        .group(&group)
        .bits(0o750)
        .build()
        .unwrap();
    probe.check().await.unwrap();
    // Each part on its own.
    Ownership::builder(dir.path())
        .user(&user)
        .build()
        .unwrap()
        .check()
        .await
        .unwrap();
    Ownership::builder(dir.path())
        .group(&group)
        .build()
        .unwrap()
        .check()
        .await
        .unwrap();
}

#[tokio::test]
async fn ownership_fails_naming_expected_and_found_owner_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let found = if is_root() {
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let (user, group) = nobody();
        (
            format!("{user} (uid 65534)"),
            format!("{group} (gid 65534)"),
        )
    } else {
        eprintln!("not root: expecting root to own the current user's directory");
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid();
        let user = User::from_uid(uid).unwrap().unwrap().name;
        let group = Group::from_gid(gid).unwrap().unwrap().name;
        (
            format!("{user} (uid {uid})"),
            format!("{group} (gid {gid})"),
        )
    };
    let root_group = Group::from_gid(0.into()).unwrap().unwrap().name;
    let probe = Ownership::builder(dir.path())
        .user("root")
        .group(&root_group)
        .build()
        .unwrap();
    let err = fails(probe).await;
    assert_eq!(err.reason, reason::OWNERSHIP_MISMATCH);
    assert_eq!(
        err.message,
        format!(
            "{}: owner is {}, expected root (uid 0); group is {}, expected {root_group} (gid 0)",
            dir.path().display(),
            found.0,
            found.1
        )
    );
}

#[tokio::test]
async fn ownership_with_only_the_bits_wrong_reports_missing_permissions() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o700);
    let me = User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let probe = Ownership::builder(dir.path())
        .user(&me)
        .bits(0o770)
        .build()
        .unwrap();
    let err = fails(probe).await;
    assert_eq!(err.reason, reason::PERMISSIONS_MISSING);
    assert!(
        err.message
            .ends_with("mode is 0700, expected bits 0770 set (missing 0070)"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn ownership_fails_when_the_required_user_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Ownership::builder(dir.path())
        .user("daemonkit-no-such-user")
        .build()
        .unwrap();
    let err = fails(probe).await;
    assert_eq!(err.reason, reason::UNKNOWN_OWNER);
    assert_eq!(
        err.message,
        format!(
            "{}: the required user \"daemonkit-no-such-user\" does not exist in the user database",
            dir.path().display()
        )
    );
}

#[tokio::test]
async fn ownership_by_id_and_by_the_current_user_passes_on_the_daemons_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    for probe in [
        Ownership::builder(dir.path()).uid(uid).gid(gid),
        Ownership::builder(dir.path())
            .current_user()
            .current_group(),
    ] {
        probe.build().unwrap().check().await.unwrap();
    }
}

#[tokio::test]
async fn ownership_by_an_id_without_a_name_reports_the_bare_id() {
    let dir = tempfile::tempdir().unwrap();
    // An id no account database on a test machine assigns.
    let uid = 3_999_999_999;
    let err = fails(Ownership::builder(dir.path()).uid(uid).build().unwrap()).await;
    assert_eq!(err.reason, reason::OWNERSHIP_MISMATCH);
    assert!(
        err.message.ends_with(&format!(", expected uid {uid}")),
        "{}",
        err.message
    );
    assert!(err.message.contains(&format!("owner is {}", {
        let me = nix::unistd::geteuid();
        match User::from_uid(me).unwrap() {
            Some(user) => format!("{} (uid {me})", user.name),
            None => format!("uid {me}"),
        }
    })));
}

#[tokio::test]
async fn ownership_fails_when_the_required_group_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Ownership::builder(dir.path())
        .group("daemonkit-no-such-group")
        .build()
        .unwrap();
    let err = fails(probe).await;
    assert_eq!(err.reason, reason::UNKNOWN_OWNER);
    assert!(
        err.message.contains("group \"daemonkit-no-such-group\""),
        "{}",
        err.message
    );
}

#[test]
fn ownership_builder_rejects_a_probe_that_checks_nothing_or_bad_names() {
    let err = Ownership::builder("/srv").build().unwrap_err();
    assert!(err.to_string().contains("nothing to check"), "{err}");
    let err = Ownership::builder("/srv").user("").build().unwrap_err();
    assert!(err.to_string().contains("user name"), "{err}");
    let err = Ownership::builder("/srv")
        .group("a\0b")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("group name"), "{err}");
    let err = Ownership::builder("/srv")
        .bits(0o10000)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("0o7777"), "{err}");
}

// ===== WriteTest =====

#[tokio::test]
async fn write_test_passes_in_a_writable_dir_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    WriteTest::new(dir.path()).check().await.unwrap();
    WriteTest::new(dir.path())
        .named_file()
        .check()
        .await
        .unwrap();
    assert_eq!(entries(dir.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn write_test_fails_in_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for probe in [
        WriteTest::new(&missing),
        WriteTest::new(&missing).named_file(),
    ] {
        let err = fails(probe).await;
        assert_eq!(err.reason, reason::NOT_WRITABLE);
        assert!(
            err.message.starts_with(&format!(
                "{}: files cannot be created and written in this directory: creating a temporary file failed: ",
                missing.display()
            )),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("No such file or directory"),
            "{}",
            err.message
        );
    }
    assert_eq!(entries(dir.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn write_test_fails_when_the_path_is_a_file_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    fs::write(&file, b"x").unwrap();
    for probe in [WriteTest::new(&file), WriteTest::new(&file).named_file()] {
        let err = fails(probe).await;
        assert_eq!(err.reason, reason::NOT_WRITABLE);
        assert!(err.message.contains("Not a directory"), "{}", err.message);
    }
    assert_eq!(entries(dir.path()), vec![file]);
}

#[tokio::test]
async fn write_test_fails_on_a_read_only_mount() {
    let Some(mount) = Tmpfs::mount("ro,size=64k") else {
        return;
    };
    for probe in [
        WriteTest::new(mount.path()),
        WriteTest::new(mount.path()).named_file(),
    ] {
        let err = fails(probe).await;
        assert_eq!(err.reason, reason::NOT_WRITABLE);
        assert!(
            err.message.contains("Read-only file system"),
            "{}",
            err.message
        );
    }
    assert_eq!(entries(mount.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn write_test_fails_on_a_full_filesystem_and_removes_the_file_it_created() {
    // On a full tmpfs the file is created but the write fails: the case where a careless
    // test would leave its file behind.
    let Some(mount) = Tmpfs::mount("size=4k") else {
        return;
    };
    let filler = mount.path().join("filler");
    fs::write(&filler, vec![0u8; 4096]).unwrap();
    for probe in [
        WriteTest::new(mount.path()),
        WriteTest::new(mount.path()).named_file(),
    ] {
        let err = fails(probe).await;
        assert_eq!(err.reason, reason::NOT_WRITABLE);
        assert!(
            err.message.contains("No space left on device"),
            "{}",
            err.message
        );
        assert!(err.message.contains("writing"), "{}", err.message);
    }
    assert_eq!(entries(mount.path()), vec![filler]);
}

#[tokio::test]
async fn write_test_fails_in_a_directory_without_write_permission_when_not_root() {
    if is_root() {
        eprintln!("root ignores permission bits: covered by the read-only and full mounts instead");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o500);
    let err = fails(WriteTest::new(dir.path())).await;
    chmod(dir.path(), 0o700);
    assert_eq!(err.reason, reason::NOT_WRITABLE);
    assert!(err.message.contains("Permission denied"), "{}", err.message);
}

// ===== FreeSpace =====

#[tokio::test]
async fn free_space_passes_with_a_one_byte_minimum() {
    let dir = tempfile::tempdir().unwrap();
    FreeSpace::min_bytes(dir.path(), 1).check().await.unwrap();
    FreeSpace::min_percent(dir.path(), 0.0)
        .unwrap()
        .check()
        .await
        .unwrap();
}

#[tokio::test]
async fn free_space_fails_when_more_bytes_are_required_than_exist() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(FreeSpace::min_bytes(dir.path(), u64::MAX)).await;
    assert_eq!(err.reason, reason::INSUFFICIENT_SPACE);
    assert!(
        err.message
            .starts_with(&format!("{}: its filesystem has ", dir.path().display())),
        "{}",
        err.message
    );
    assert!(
        err.message
            .ends_with(", below the required minimum of 16.0 EiB (18446744073709551615 bytes)"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn free_space_fails_when_all_of_a_filesystem_in_use_must_be_free() {
    // The temporary directory's filesystem holds at least the test binary's directory.
    let dir = tempfile::tempdir().unwrap();
    let err = fails(FreeSpace::min_percent(dir.path(), 100.0).unwrap()).await;
    assert_eq!(err.reason, reason::INSUFFICIENT_SPACE);
    assert!(
        err.message.ends_with("below the required minimum of 100%"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn free_space_measures_exactly_what_a_tmpfs_has_left() {
    let Some(mount) = Tmpfs::mount("size=64k") else {
        return;
    };
    FreeSpace::min_bytes(mount.path(), 64 * 1024)
        .check()
        .await
        .unwrap();
    FreeSpace::min_percent(mount.path(), 100.0)
        .unwrap()
        .check()
        .await
        .unwrap();
    let err = fails(FreeSpace::min_bytes(mount.path(), 64 * 1024 + 1)).await;
    assert_eq!(err.reason, reason::INSUFFICIENT_SPACE);

    fs::write(mount.path().join("half"), vec![0u8; 32 * 1024]).unwrap();
    FreeSpace::min_percent(mount.path(), 50.0)
        .unwrap()
        .check()
        .await
        .unwrap();
    let err = fails(FreeSpace::min_percent(mount.path(), 50.1).unwrap()).await;
    assert_eq!(
        err.message,
        format!(
            "{}: its filesystem has 32.0 KiB (32768 bytes) free (50.0%), below the required minimum of 50.1%",
            mount.path().display()
        )
    );
    // The figures a monitor reads are the ones the message gives.
    let probe = FreeSpace::min_percent(mount.path(), 50.1).unwrap();
    let space = probe.measure().await.unwrap();
    assert_eq!(space.available_bytes(), 32 * 1024);
    assert_eq!(space.total_bytes(), 64 * 1024);
    assert_eq!(space.available_percent(), 50.0);
    assert_eq!(space.to_string(), "32.0 KiB (32768 bytes) free (50.0%)");
    assert_eq!(probe.judge(&space).unwrap_err().message, err.message);
    FreeSpace::min_bytes(mount.path(), 32 * 1024)
        .judge(&space)
        .unwrap();
}

#[tokio::test]
async fn free_space_fails_on_a_missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = fails(FreeSpace::min_bytes(&missing, 1)).await;
    assert_eq!(err.reason, reason::PATH_INACCESSIBLE);
    assert!(
        err.message.starts_with(&missing.display().to_string()),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("No such file or directory"),
        "{}",
        err.message
    );
}

#[test]
fn free_space_rejects_a_minimum_that_is_not_a_percentage() {
    for bad in [-1.0, 100.5, f64::NAN] {
        let err = FreeSpace::min_percent("/srv", bad).unwrap_err();
        assert!(err.to_string().contains("expected 0 to 100"), "{err}");
    }
}
