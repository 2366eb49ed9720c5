//! The directory rules of `daemonkit::paths` on real directories: what each rule accepts,
//! what it refuses, and that a refusal names the owner and the mode.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use daemonkit::Error;
use daemonkit::paths::{
    SocketDirWarning, check_client_socket_dir, check_private_dir, check_socket_dir, inspect_dir,
};

/// A uid no real account uses.
const STRANGER: u32 = 60_301;

fn dir_with_mode(parent: &Path, name: &str, mode: u32) -> std::path::PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
    dir
}

fn refusal(err: Error) -> (String, u32, String) {
    match err {
        Error::UnsafeDirectory {
            owner,
            mode,
            problem,
            ..
        } => (owner, mode, problem),
        other => panic!("expected UnsafeDirectory, got {other:?}"),
    }
}

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[test]
fn private_dirs_must_be_ours_and_closed_to_others() {
    let base = tempfile::tempdir().unwrap();
    assert!(check_private_dir(&dir_with_mode(base.path(), "ok", 0o700)).is_ok());
    assert!(check_private_dir(&dir_with_mode(base.path(), "readable", 0o755)).is_ok());
    for (name, mode) in [("g", 0o770), ("o", 0o707), ("sticky", 0o1777)] {
        let err = check_private_dir(&dir_with_mode(base.path(), name, mode)).unwrap_err();
        let text = err.to_string();
        let (owner, got, problem) = refusal(err);
        assert_eq!(got, mode);
        assert!(owner.contains(&format!("uid {}", me())), "{owner}");
        assert!(problem.contains("others may write"), "{problem}");
        assert!(text.contains(&format!("mode {mode:04o}")), "{text}");
    }
}

#[test]
fn a_symlink_or_a_file_is_never_a_directory() {
    let base = tempfile::tempdir().unwrap();
    let real = dir_with_mode(base.path(), "real", 0o700);
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let file = base.path().join("file");
    fs::write(&file, b"").unwrap();
    for check in [check_private_dir, |p: &Path| check_client_socket_dir(p)] {
        assert!(
            refusal(check(&link).unwrap_err())
                .2
                .contains("symbolic link")
        );
        assert!(
            refusal(check(&file).unwrap_err())
                .2
                .contains("regular file")
        );
    }
    assert!(
        refusal(check_socket_dir(&link).unwrap_err())
            .2
            .contains("symbolic link")
    );
    assert!(inspect_dir(&link).unwrap().is_symlink());
}

#[test]
fn a_private_dir_owned_by_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
            panic!("chown needs root (DAEMONKIT_REQUIRE_ALL=1)");
        }
        eprintln!("SKIPPED: chown needs root");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let planted = dir_with_mode(base.path(), "planted", 0o700);
    chown(&planted, Some(STRANGER), Some(STRANGER)).unwrap();
    let (owner, mode, problem) = refusal(check_private_dir(&planted).unwrap_err());
    assert_eq!(
        (owner.as_str(), mode),
        (format!("uid {STRANGER}").as_str(), 0o700)
    );
    assert!(problem.contains("must be owned by"), "{problem}");

    // The kernel's socket rule refuses it too: its owner could swap the socket.
    let err = check_socket_dir(&planted).unwrap_err();
    assert!(refusal(err).2.contains("owned by neither root nor"));
    // The client rule leaves the owner to the peer-credential check.
    assert!(check_client_socket_dir(&planted).is_ok());
}

#[test]
fn the_socket_rule_refuses_world_writable_without_sticky_and_warns_otherwise() {
    let base = tempfile::tempdir().unwrap();
    let check = |name, mode| check_socket_dir(&dir_with_mode(base.path(), name, mode));
    assert_eq!(check("private", 0o750).unwrap(), None);
    assert_eq!(
        check("sticky", 0o1777).unwrap(),
        Some(SocketDirWarning::SharedSticky)
    );
    assert_eq!(
        check("group", 0o770).unwrap(),
        Some(SocketDirWarning::GroupWritable)
    );
    let (_, mode, problem) = refusal(check("open", 0o777).unwrap_err());
    assert_eq!(mode, 0o777);
    assert!(problem.contains("lacks the sticky bit"), "{problem}");
}

#[test]
fn the_client_rule_refuses_any_group_or_other_write() {
    let base = tempfile::tempdir().unwrap();
    let check = |name, mode| check_client_socket_dir(&dir_with_mode(base.path(), name, mode));
    assert!(check("private", 0o750).is_ok());
    for (name, mode) in [("sticky", 0o1777), ("group", 0o770), ("open", 0o777)] {
        assert_eq!(refusal(check(name, mode).unwrap_err()).1, mode);
    }
}
