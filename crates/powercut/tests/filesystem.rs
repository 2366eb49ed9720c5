//! The power-cut filesystem itself: an ordinary filesystem while mounted, and after a crash
//! exactly the states its model allows.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use powercut::PowerCut;
use tempfile::TempDir;

fn dirs() -> Option<(TempDir, TempDir)> {
    powercut::skip_unless_fuse()
        .is_none()
        .then(|| (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()))
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

#[test]
fn behaves_as_an_ordinary_filesystem_while_mounted() {
    let Some((backing, mnt)) = dirs() else { return };
    let fs = PowerCut::mount(backing.path(), mnt.path()).unwrap();
    let m = mnt.path();

    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .open(m.join("log"))
        .unwrap();
    f.write_all(b"one\n").unwrap();
    f.write_all(b"two\n").unwrap();
    f.write_at(b"ONE", 0).unwrap(); // O_APPEND: still appends, as on Linux
    let mut text = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut text).unwrap();
    assert_eq!(text, "one\ntwo\nONE");
    f.set_len(4).unwrap();
    assert_eq!(fs::read(m.join("log")).unwrap(), b"one\n");
    f.set_permissions(fs::Permissions::from_mode(0o640))
        .unwrap();
    assert_eq!(
        fs::metadata(m.join("log")).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Locks are the kernel's (flock is not passed to FUSE): a second exclusive lock fails.
    f.try_lock().unwrap();
    assert!(File::open(m.join("log")).unwrap().try_lock().is_err());

    fs::create_dir(m.join("d")).unwrap();
    fs::write(m.join("d/x"), b"x").unwrap();
    assert_eq!(
        fs::remove_dir(m.join("d")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    fs::rename(m.join("d/x"), m.join("log")).unwrap(); // replaces
    assert_eq!(fs::read(m.join("log")).unwrap(), b"x");
    fs::remove_dir(m.join("d")).unwrap();
    let names: HashSet<_> = fs::read_dir(m)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, HashSet::from(["log".into()]));
    assert_eq!(
        fs::read(m.join("gone")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    drop(f);
    fs.unmount().unwrap();
}

#[test]
fn a_clean_unmount_keeps_everything_and_the_next_mount_serves_it() {
    let Some((backing, mnt)) = dirs() else { return };
    let fs = PowerCut::mount(backing.path(), mnt.path()).unwrap();
    fs::create_dir(mnt.path().join("d")).unwrap();
    fs::write(mnt.path().join("d/never-synced"), b"kept").unwrap();
    fs.unmount().unwrap();
    assert_eq!(
        fs::read(backing.path().join("d/never-synced")).unwrap(),
        b"kept"
    );

    let fs = PowerCut::mount(backing.path(), mnt.path()).unwrap();
    assert_eq!(
        fs::read(mnt.path().join("d/never-synced")).unwrap(),
        b"kept"
    );
    // What the last mount left is durable now: a crash keeps it.
    fs.crash(7).unwrap();
    assert_eq!(
        fs::read(backing.path().join("d/never-synced")).unwrap(),
        b"kept"
    );
}

#[test]
fn after_the_cut_every_request_fails_with_eio() {
    let Some((backing, mnt)) = dirs() else { return };
    let fs = PowerCut::mount(backing.path(), mnt.path()).unwrap();
    let mut f = File::create(mnt.path().join("a")).unwrap();
    let before = fs.ops();
    fs.cut_after(before + 2);
    f.write_all(b"1").unwrap();
    f.write_all(b"2").unwrap();
    assert!(!fs.is_cut());
    assert_eq!(
        f.write_all(b"3").unwrap_err().raw_os_error(),
        Some(libc::EIO)
    );
    assert!(fs.is_cut());
    assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
    assert_eq!(fs.ops(), before + 2);
    drop(f);
    fs.crash(1).unwrap();
}

#[test]
fn synced_bytes_always_survive_and_unsynced_ones_only_sometimes() {
    let Some((backing, mnt)) = dirs() else { return };
    let mut outcomes = HashSet::new();
    for seed in 0..40 {
        let _ = fs::remove_file(backing.path().join("a"));
        let fs = PowerCut::mount(backing.path(), mnt.path()).unwrap();
        let mut f = File::create(mnt.path().join("a")).unwrap();
        f.write_all(&[b'd'; 1000]).unwrap();
        f.sync_data().unwrap();
        sync_dir(mnt.path());
        f.write_all(&[b'u'; 5000]).unwrap();
        drop(f);
        fs.crash(seed).unwrap();
        let after = fs::read(backing.path().join("a")).unwrap();
        assert_eq!(after[..1000], [b'd'; 1000], "seed {seed}");
        assert!(after[1000..].iter().all(|&b| b == b'u'), "seed {seed}");
        // A torn write ends at a sector boundary of the file.
        assert!(
            after.len() == 6000 || after.len() % 512 == 0 || after.len() == 1000,
            "seed {seed}: {}",
            after.len()
        );
        outcomes.insert(after.len());
    }
    assert!(
        outcomes.contains(&1000) && outcomes.contains(&6000) && outcomes.len() > 2,
        "{outcomes:?}"
    );
}

#[test]
fn an_unsynced_rename_is_done_or_not_never_half() {
    let Some((backing, mnt)) = dirs() else { return };
    let mut seen = HashSet::new();
    for seed in 0..40 {
        for entry in fs::read_dir(backing.path()).unwrap() {
            fs::remove_file(entry.unwrap().path()).unwrap();
        }
        fs::write(backing.path().join("state"), b"old").unwrap();
        let fs = PowerCut::mount(backing.path(), mnt.path()).unwrap();
        let mut f = File::create(mnt.path().join("tmp")).unwrap();
        f.write_all(b"new").unwrap();
        f.sync_data().unwrap();
        drop(f);
        fs::rename(mnt.path().join("tmp"), mnt.path().join("state")).unwrap();
        fs.crash(seed).unwrap();
        let state = fs::read(backing.path().join("state")).unwrap();
        let tmp = fs::read(backing.path().join("tmp")).ok();
        match (&state[..], tmp.as_deref()) {
            // The rename happened (whether or not the create of tmp did).
            (b"new", None) => seen.insert("renamed"),
            // It did not: the old state, and tmp if its create survived.
            (b"old", None | Some(b"new")) => seen.insert("not renamed"),
            other => panic!("seed {seed}: half a rename: {other:?}"),
        };
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// The example of docs/user-guide.md, section 11, as written there.
#[test]
fn the_user_guide_example_holds() {
    let Some((backing, mnt)) = dirs() else { return };
    let seed = 3;
    let fs = PowerCut::mount(backing.path(), mnt.path()).unwrap();
    let mut f = std::fs::File::create(mnt.path().join("state")).unwrap();
    f.write_all(b"acknowledged").unwrap();
    f.sync_data().unwrap();
    std::fs::File::open(mnt.path()).unwrap().sync_all().unwrap(); // the new entry, too
    fs.cut_after(fs.ops() + 1); // the power fails after one more operation
    f.write_all(b", and more").unwrap(); // accepted, never synced
    assert!(f.sync_data().is_err()); // EIO: the power is off
    drop(f); // files must be closed to unmount
    let report = fs.crash(seed).unwrap(); // the backing directory: what survived
    assert!(
        std::fs::read(backing.path().join("state"))
            .unwrap()
            .starts_with(b"acknowledged")
    );
    assert_eq!(report.seed, seed);
}
