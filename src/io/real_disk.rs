//! [`RealDisk`]: the production disk, the [`FileSystem`] primitives over `std::fs`. The fsyncs of
//! directories that make them durable are added once, for both disks, by [`crate::io::Disk`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::disk::{DiskFile, FileSystem, Syncing};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl RealDisk {
    pub fn new() -> RealDisk {
        RealDisk
    }
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl FileSystem for RealDisk {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir).map_err(|e| with_path(e, "create directory", dir))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| with_path(e, "fsync directory", dir))
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

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn open_file(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| with_path(e, "open", path))?;
        Ok(Box::new(RealFile { file }))
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = File::create(path).map_err(|e| with_path(e, "create", path))?;
        file.write_all(data)?;
        file.sync_all()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| with_path(e, "truncate", path))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn rename_entry(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to).map_err(|e| with_path(e, "rename", from))
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path).map_err(|e| with_path(e, "remove", path))
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
