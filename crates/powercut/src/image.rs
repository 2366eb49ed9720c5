//! Reading the backing directory into an [`Image`] and writing an image back to it.

use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, io_err};
use crate::model::Image;

/// Reads the tree under `dir` (not following symbolic links).
pub(crate) fn load(dir: &Path) -> Result<Image, Error> {
    let meta = fs::symlink_metadata(dir).map_err(io_err("stat", dir))?;
    let perm = (meta.permissions().mode() & 0o7777) as u16;
    if meta.file_type().is_file() {
        let data = fs::read(dir).map_err(io_err("read", dir))?;
        let mtime = meta.modified().map_err(io_err("stat", dir))?;
        return Ok(Image::File { perm, mtime, data });
    }
    if !meta.file_type().is_dir() {
        return Err(Error::Unsupported {
            path: dir.to_path_buf(),
        });
    }
    let mut entries = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        entries.insert(entry.file_name(), load(&entry.path())?);
    }
    Ok(Image::Dir { perm, entries })
}

/// Replaces everything under `dir` by `image` (whose root must be a directory).
pub(crate) fn store(dir: &Path, image: &Image) -> Result<(), Error> {
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err("stat", &path))?;
        if kind.is_dir() {
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        } else {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    if let Image::Dir { entries, perm } = image {
        for (name, child) in entries {
            write(&dir.join(name), child)?;
        }
        fs::set_permissions(dir, Permissions::from_mode(u32::from(*perm)))
            .map_err(io_err("chmod", dir))?;
    }
    Ok(())
}

fn write(path: &Path, image: &Image) -> Result<(), Error> {
    match image {
        Image::File { perm, mtime, data } => {
            fs::write(path, data).map_err(io_err("write", path))?;
            let file = File::options()
                .write(true)
                .open(path)
                .map_err(io_err("open", path))?;
            file.set_modified(*mtime)
                .map_err(io_err("set mtime", path))?;
            file.set_permissions(Permissions::from_mode(u32::from(*perm)))
                .map_err(io_err("chmod", path))?;
        }
        Image::Dir { perm, entries } => {
            fs::create_dir(path).map_err(io_err("mkdir", path))?;
            for (name, child) in entries {
                write(&path.join(name), child)?;
            }
            fs::set_permissions(path, Permissions::from_mode(u32::from(*perm)))
                .map_err(io_err("chmod", path))?;
        }
    }
    Ok(())
}
