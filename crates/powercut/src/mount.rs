//! [`PowerCut`]: mounting the filesystem over a backing directory, cutting the power, crashing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fuser::{BackgroundSession, Config, MountOption};

use crate::error::{Error, io_err};
use crate::fs::PowerCutFs;
use crate::image;
use crate::model::{CrashReport, Model};

/// A mounted power-cut filesystem: a view of a backing directory that remembers what was made
/// durable, and can lose the rest as a power cut would.
///
/// [`mount`](PowerCut::mount) reads the backing directory (all of it counts as durable: it is
/// the disk as the last crash or clean unmount left it) and serves it at the mount point.
/// Programs then use the mount point as any directory. [`crash`](PowerCut::crash) cuts the
/// power — every later request fails with `EIO` — unmounts, and rewrites the backing directory
/// as the power cut leaves it, chosen by a seed. [`unmount`](PowerCut::unmount) is a clean
/// shutdown instead: everything written survives.
///
/// What counts as durable — a file's bytes up to its last `fsync`/`fdatasync`, a directory's
/// entries up to its last `fsync` — and which states a cut may leave are described in
/// `docs/architecture.md`, "What durable means here".
///
/// # Requirements
///
/// `/dev/fuse`, and root (the mount is made directly), or `fusermount3` (package `fuse3`)
/// otherwise. [`fuse_unavailable`](crate::fuse_unavailable) says why it cannot run here.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use powercut::PowerCut;
///
/// # if powercut::skip_unless_fuse().is_some() { return Ok(()); }
/// let backing = tempfile::tempdir()?;
/// let mnt = tempfile::tempdir()?;
/// let fs = PowerCut::mount(backing.path(), mnt.path())?;
/// let mut f = std::fs::File::create(mnt.path().join("a"))?;
/// f.write_all(b"synced\n")?;
/// f.sync_data()?;
/// std::fs::File::open(mnt.path())?.sync_all()?; // the directory entry
/// f.write_all(b"not synced\n")?;
/// drop(f);
///
/// let report = fs.crash(42)?;
/// let after = std::fs::read(backing.path().join("a"))?;
/// assert!(after.starts_with(b"synced\n"));
/// assert!(b"synced\nnot synced\n".starts_with(&after));
/// assert_eq!(report.seed, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a PowerCut unmounts it without writing anything back"]
pub struct PowerCut {
    backing: PathBuf,
    mountpoint: PathBuf,
    model: Arc<Mutex<Model>>,
    session: Option<BackgroundSession>,
}

impl PowerCut {
    /// Mounts a power-cut view of `backing` at `mountpoint` (an existing, empty directory).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the backing directory cannot be read or the mount fails;
    /// [`Error::Unsupported`] if it holds anything but regular files and directories.
    pub fn mount(
        backing: impl AsRef<Path>,
        mountpoint: impl AsRef<Path>,
    ) -> Result<PowerCut, Error> {
        let backing = backing.as_ref().to_path_buf();
        let mountpoint = mountpoint.as_ref().to_path_buf();
        let model = Arc::new(Mutex::new(Model::from_image(image::load(&backing)?)));
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("powercut".to_owned()),
            MountOption::Subtype("powercut".to_owned()),
        ];
        let session = fuser::spawn_mount(
            PowerCutFs {
                model: Arc::clone(&model),
            },
            &mountpoint,
            &config,
        )
        .map_err(io_err("mount", &mountpoint))?;
        Ok(PowerCut {
            backing,
            mountpoint,
            model,
            session: Some(session),
        })
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing directory.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Arms the cut: the power fails just before the operation after the first `ops` counted
    /// ones (counting from the mount). Counted are the requests that change something or make
    /// it durable: create, mkdir, unlink, rmdir, rename, write, truncate, chmod, fsync,
    /// fsyncdir. `cut_after(0)` fails the very first one.
    pub fn cut_after(&self, ops: u64) {
        self.model().cut_after = Some(ops);
    }

    /// Cuts the power now: every later request fails with `EIO`.
    pub fn cut_now(&self) {
        self.model().cut = true;
    }

    /// Whether the power is off (cut by [`cut_now`](PowerCut::cut_now), or by the armed
    /// [`cut_after`](PowerCut::cut_after) count being reached).
    pub fn is_cut(&self) -> bool {
        self.model().cut
    }

    /// Counted operations accepted so far.
    pub fn ops(&self) -> u64 {
        self.model().ops
    }

    /// Cuts the power (if not already cut), unmounts, and rewrites the backing directory as the
    /// power cut leaves it, the choices made by `seed`.
    ///
    /// Every process using the mount must have closed its files first (kill it): the unmount
    /// fails while a file is open.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the unmount or the rewrite of the backing directory fails.
    pub fn crash(mut self, seed: u64) -> Result<CrashReport, Error> {
        self.cut_now();
        self.shut()?;
        let (image, report) = self.model().crash(seed);
        image::store(&self.backing, &image)?;
        Ok(report)
    }

    /// A clean shutdown: unmounts and writes everything written to the backing directory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the unmount or the rewrite of the backing directory fails.
    pub fn unmount(mut self) -> Result<(), Error> {
        self.cut_now();
        self.shut()?;
        let image = self.model().current_image();
        image::store(&self.backing, &image)
    }

    fn shut(&mut self) -> Result<(), Error> {
        if let Some(session) = self.session.take() {
            match session.umount_and_join() {
                Ok(()) => {}
                // The session's last read can see the kernel close the connection as the
                // mount goes away (ECONNABORTED, or ENODEV): the mount is gone either way,
                // and the model already holds everything, so that is a clean end.
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionAborted
                        || e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => {}
                Err(e) => return Err(io_err("unmount", &self.mountpoint)(e)),
            }
        }
        Ok(())
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        if self.session.is_some() {
            self.cut_now();
            if let Err(e) = self.shut() {
                tracing::warn!(
                    reason = "PowerCutUnmountFailed",
                    mountpoint = %self.mountpoint.display(),
                    error = %e,
                    "could not unmount the power-cut filesystem"
                );
            }
        }
    }
}

/// Why a power-cut filesystem cannot be mounted here, or `None` if it can: `/dev/fuse` must be
/// readable and writable, and either this process is root or `fusermount3` is installed.
pub fn fuse_unavailable() -> Option<String> {
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        return Some(format!("cannot open /dev/fuse: {e}"));
    }
    let root = rustix::process::geteuid().is_root();
    if !root && !has_fusermount3() {
        return Some("not root and no fusermount3 (Debian package fuse3)".to_owned());
    }
    None
}

fn has_fusermount3() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("fusermount3").is_file())
    })
}
