//! [`RealDisk`]: the production [`Disk`], a thin layer over `std::fs` that adds
//! the fsyncs (of files *and* their directories) the durability contract needs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::disk::{Disk, DiskFile, Syncing};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl RealDisk {
    pub fn new() -> RealDisk {
        RealDisk
    }
}

/// Makes a directory entry change (create, rename, remove) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl Disk for RealDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir).map_err(|e| with_path(e, "create directory", dir))?;
        sync_dir(dir)?;
        sync_parent(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| with_path(e, "list directory", dir))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path).map_err(|e| with_path(e, "read", path))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| with_path(e, "open", path))?;
        if !existed {
            sync_parent(path)?;
        }
        Ok(Box::new(RealFile { file }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| with_path(e, "truncate", path))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to).map_err(|e| with_path(e, "rename", from))?;
        sync_parent(to)?;
        if from.parent() != to.parent() {
            sync_parent(from)?;
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path).map_err(|e| with_path(e, "remove", path))?;
        sync_parent(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = Path::new(&tmp);
        {
            let mut file = File::create(tmp).map_err(|e| with_path(e, "create", tmp))?;
            file.write_all(data)?;
            file.sync_all()?;
        }
        fs::rename(tmp, path).map_err(|e| with_path(e, "rename", tmp))?;
        sync_parent(path)
    }
}

struct RealFile {
    file: File,
}

impl DiskFile for RealFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    fn sync(&mut self) -> Syncing<'_> {
        // Blocking, on the caller's thread, as etcd's raft loop blocks on its fsync: nothing
        // after it in the loop may run before the log is durable anyway. sync_data suffices:
        // the size change is data for fdatasync's purposes.
        let result = self.file.sync_data();
        Box::pin(std::future::ready(result))
    }
}
