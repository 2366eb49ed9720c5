//! Binding and removing the control socket: never steal a live socket, never touch what
//! is not a socket, replace stale ones, mode 0660, remove only our own file.

mod server_support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::Path;
use std::process::Command;

use daemonkit::Error;
use daemonkit::server::ControlPlane;
use server_support::{Server, mode, socket_dir};

fn inode(path: &Path) -> (u64, u64) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.dev(), meta.ino())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ===== creating =====

#[tokio::test]
async fn creates_the_missing_parent_directory_with_mode_0750() {
    let dir = socket_dir();
    let parent = dir.path().join("run").join("app");
    let server = Server::start(ControlPlane::builder(parent.join("control.sock"))).await;
    assert!(parent.is_dir());
    assert_eq!(mode(&parent), 0o750);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn socket_file_has_mode_0660() {
    let dir = socket_dir();
    let server = Server::start(ControlPlane::builder(dir.path().join("control.sock"))).await;
    let meta = fs::symlink_metadata(&server.path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(mode(&server.path), 0o660);
    server.stop().await.unwrap();
}

/// Run in a child process with umask 0 (the umask is per process, so changing it here
/// would race with the other tests' files).
#[test]
fn socket_file_is_0660_even_with_umask_zero() {
    if let Ok(path) = std::env::var("DK_TEST_UMASK_ZERO_SOCKET") {
        rustix::process::umask(rustix::fs::Mode::empty());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let bound = ControlPlane::builder(&path)
                .build()
                .unwrap()
                .bind()
                .await
                .unwrap();
            println!("mode={:o}", mode(bound.socket_path()));
        });
        return;
    }
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "socket_file_is_0660_even_with_umask_zero",
            "--nocapture",
        ])
        .env("DK_TEST_UMASK_ZERO_SOCKET", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mode=660"), "{stdout}");
}

#[tokio::test]
async fn binding_leaves_no_temporary_files_behind() {
    let dir = socket_dir();
    let server = Server::start(ControlPlane::builder(dir.path().join("control.sock"))).await;
    assert_eq!(entries(dir.path()), ["control.sock"]);
    server.stop().await.unwrap();
    assert!(entries(dir.path()).is_empty());
}

#[tokio::test]
async fn a_path_too_long_for_a_socket_address_is_refused() {
    let dir = socket_dir();
    let path = dir.path().join("x".repeat(120));
    let err = ControlPlane::builder(&path)
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SocketPathTooLong { .. }), "{err}");
    assert!(entries(dir.path()).is_empty());
}

// ===== what is already there =====

#[tokio::test]
async fn refuses_to_replace_a_live_socket_and_the_first_server_keeps_serving() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    let first = Server::start(ControlPlane::builder(&path).status(|| "first")).await;
    let before = inode(&path);

    let err = ControlPlane::builder(&path)
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap_err();
    match &err {
        Error::SocketInUse { path: p } => assert_eq!(p, &path),
        other => panic!("unexpected error: {other}"),
    }
    assert!(
        err.to_string().contains("another process is serving"),
        "{err}"
    );

    assert_eq!(inode(&path), before, "the socket file is untouched");
    assert_eq!(first.get("/status").await.json(), "first");
    assert_eq!(entries(dir.path()), ["control.sock"]);
    first.stop().await.unwrap();
}

#[tokio::test]
async fn replaces_a_stale_socket() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    // A listener dropped without unlinking leaves a socket file nothing accepts on, as a
    // crashed daemon does.
    drop(StdUnixListener::bind(&path).unwrap());
    let stale = inode(&path);

    let captured = server_support::capture();
    let server = Server::start(ControlPlane::builder(&path)).await;
    assert_ne!(
        inode(&path),
        stale,
        "a new socket took the stale one's place"
    );
    assert_eq!(server.get("/health").await.status, 200);
    assert_eq!(captured.count("ControlPlaneStaleSocketReplaced"), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn refuses_a_regular_file_and_leaves_it_intact() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    fs::write(&path, b"precious data").unwrap();
    let err = ControlPlane::builder(&path)
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap_err();
    match &err {
        Error::SocketPathOccupied { found, .. } => assert_eq!(*found, "a regular file"),
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(fs::read(&path).unwrap(), b"precious data");
    assert_eq!(entries(dir.path()), ["control.sock"]);
}

#[tokio::test]
async fn refuses_a_directory_and_leaves_it_intact() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("inside"), b"keep").unwrap();
    let err = ControlPlane::builder(&path)
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SocketPathOccupied {
                found: "a directory",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fs::read(path.join("inside")).unwrap(), b"keep");
}

#[tokio::test]
async fn refuses_a_symlink_even_to_a_stale_socket_and_leaves_both_intact() {
    let dir = socket_dir();
    let target = dir.path().join("real.sock");
    drop(StdUnixListener::bind(&target).unwrap());
    let target_inode = inode(&target);
    let path = dir.path().join("control.sock");
    std::os::unix::fs::symlink(&target, &path).unwrap();

    let err = ControlPlane::builder(&path)
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SocketPathOccupied {
                found: "a symbolic link",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fs::read_link(&path).unwrap(), target);
    assert_eq!(inode(&target), target_inode);
}

// ===== removing =====

#[tokio::test]
async fn shutdown_removes_the_socket_and_stops_accepting() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    let server = Server::start(ControlPlane::builder(&path)).await;
    server.stop().await.unwrap();
    assert!(!path.exists());
    assert!(tokio::net::UnixStream::connect(&path).await.is_err());
}

#[tokio::test]
async fn shutdown_leaves_a_socket_that_replaced_its_own() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    let server = Server::start(ControlPlane::builder(&path)).await;
    // A newer instance took the path over (removed ours and bound its own).
    fs::remove_file(&path).unwrap();
    let newer = StdUnixListener::bind(&path).unwrap();
    let newer_inode = inode(&path);

    let captured = server_support::capture();
    server.stop().await.unwrap();
    assert_eq!(inode(&path), newer_inode, "the newer socket is still there");
    assert_eq!(captured.count("ControlPlaneSocketLeft"), 1);
    drop(newer);
}

#[tokio::test]
async fn shutdown_leaves_a_regular_file_that_replaced_its_socket() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    let server = Server::start(ControlPlane::builder(&path)).await;
    fs::remove_file(&path).unwrap();
    fs::write(&path, b"not ours").unwrap();
    server.stop().await.unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"not ours");
}

#[tokio::test]
async fn a_bound_control_plane_dropped_without_serving_removes_its_socket() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    let bound = ControlPlane::builder(&path)
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap();
    assert!(path.exists());
    drop(bound);
    assert!(!path.exists());
}

#[tokio::test]
async fn the_socket_accepts_once_bind_returns_before_serve() {
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    let bound = ControlPlane::builder(&path)
        .build()
        .unwrap()
        .bind()
        .await
        .unwrap();
    // The connection waits in the backlog; serve answers it.
    let mut conn = tokio::net::UnixStream::connect(&path).await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(bound.serve(cancel.clone()));
    let res = server_support::request(&mut conn, "GET", "/health", &[], b"").await;
    assert_eq!(res.status, 200);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn listening_and_stopping_are_logged_with_reasons() {
    let captured = server_support::capture();
    let dir = socket_dir();
    let path = dir.path().join("control.sock");
    let server = Server::start(ControlPlane::builder(&path)).await;
    let listening = captured.with_reason("ControlPlaneListening");
    assert_eq!(listening.len(), 1);
    assert_eq!(listening[0].field("socket"), Some(path.to_str().unwrap()));
    server.stop().await.unwrap();
    assert_eq!(captured.count("ControlPlaneStopping"), 1);
    let stopped = captured.with_reason("ControlPlaneStopped");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].field("socket_removed"), Some("true"));
}
