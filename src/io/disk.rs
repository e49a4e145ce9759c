//! The [`Disk`] trait: the durability contract every storage module relies on, built once on top
//! of the [`FileSystem`] primitives that [`crate::io::RealDisk`] and [`crate::io::SimDisk`] both
//! implement. So the simulator runs the very code that makes production's metadata durable: a
//! missing directory fsync in a composite below is lost at a simulated power loss too.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;

/// The primitives: each is one system call (or a write and the fsync of that same file). None of
/// them makes a *directory entry* durable except [`FileSystem::sync_dir`]: as on ext4 or xfs, a
/// created file or directory, a rename and an unlink may be undone by a power loss until the
/// directory holding the entry is fsynced. Implement these; use [`Disk`].
pub trait FileSystem: Send + Sync + std::fmt::Debug + 'static {
    /// Creates one directory; its parent must exist. `AlreadyExists` if something is there.
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    /// fsync of a directory: every entry change inside it so far (create, rename, unlink)
    /// survives a power loss once this returns `Ok`.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Sorted file names (not paths) directly inside `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whole content of a file, including appended but unsynced bytes.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Opens a file for appending, creating it if missing (the new entry is not durable).
    fn open_file(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Creates or replaces a file holding `data`, and fsyncs the file (its content is durable,
    /// its entry is not).
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Cuts a file to `len` bytes and fsyncs it: the new length is durable when it returns.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Renames a file, replacing `to` atomically if it exists; not durable until the directories
    /// are fsynced.
    fn rename_entry(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file's entry; not durable until its directory is fsynced.
    fn unlink(&self, path: &Path) -> io::Result<()>;
}

/// A minimal file system, just large enough for the WAL and snapshot files.
///
/// # Durability contract
///
/// Callers get exactly these guarantees and must not assume more (the simulated disk,
/// [`crate::io::SimDisk`], provides nothing stronger, so code relying on more fails in simulation
/// rather than in production):
///
/// * Bytes passed to [`DiskFile::append`] are visible to [`FileSystem::read`] immediately, but
///   are **not durable** until a later [`DiskFile::sync`] on the same handle resolves to `Ok`.
///   An fsync takes time: other tasks run while it is awaited, and a power loss before it
///   resolves may drop the bytes it was making durable. A power loss may drop unsynced bytes, or
///   keep an arbitrary *prefix* of them (a torn write).
///   Unsynced bytes are never reordered or corrupted into something other than a prefix.
/// * If `sync` returns `Err`, nothing is promised about the unsynced bytes: they may or may not
///   survive a crash (the "fsyncgate" lesson). Callers must treat the file as poisoned and stop
///   writing to it.
/// * A directory entry (a created file or directory, a rename, an unlink) is durable only once
///   its parent directory is fsynced. The methods of this trait do that fsync before they return
///   `Ok`: [`Disk::create_dir_all`] fsyncs the parent of every directory it creates, up to the
///   first that existed; [`Disk::open_append`] the parent of a file it creates (its *content* is
///   durable only after `sync`); [`Disk::rename`], [`Disk::remove`] and [`Disk::write_atomic`]
///   the directories they change. [`FileSystem::truncate`] is durable when it returns.
/// * [`Disk::rename`] and [`Disk::write_atomic`] are atomic: after a crash the destination holds
///   either the old or the new content, never a mix.
/// * An open [`DiskFile`] handle addresses the file by path; do not rename or remove a file while
///   a handle to it is in use.
///
/// Every [`FileSystem`] is a `Disk` through the one blanket implementation below: the composite
/// operations cannot be overridden, so the real and the simulated disk share them.
pub trait Disk: FileSystem {
    /// Creates `dir` and any missing parents, durably.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens for appending, creating the file (durably) if missing.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Atomic, durable when it returns; replaces `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file; durable when it returns.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Writes a whole file atomically and durably (temp file + fsync + rename + dir fsync).
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()>;
}

/// An fsync in flight: see [`DiskFile::sync`].
pub type Syncing<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

/// The directory holding `path`'s entry (`.` for a bare relative name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

impl<F: FileSystem + ?Sized> Disk for F {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // The missing directories, innermost first.
        let missing: Vec<&Path> = dir
            .ancestors()
            .filter(|p| !p.as_os_str().is_empty())
            .take_while(|p| !self.exists(p))
            .collect();
        // Outermost first, each entry made durable in its parent before the next goes inside it:
        // fsyncing only the leaf's parent (bug 5) left `member` in the data dir unsynced, so a
        // power loss after the first start could take a member's whole WAL, votes included.
        for &new in missing.iter().rev() {
            match self.mkdir(new) {
                Ok(()) => self.sync_dir(parent_dir(new))?,
                // Made meanwhile by someone else, who makes it durable; a file there fails below.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        if self.list(dir).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a directory", dir.display()),
            ));
        }
        Ok(())
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let existed = self.exists(path);
        let file = self.open_file(path)?;
        if !existed {
            self.sync_dir(parent_dir(path))?;
        }
        Ok(file)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.rename_entry(from, to)?;
        if crate::planted_bug!(SkipDirSync) {
            return Ok(());
        }
        self.sync_dir(parent_dir(to))?;
        if parent_dir(from) != parent_dir(to) {
            self.sync_dir(parent_dir(from))?;
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.unlink(path)?;
        self.sync_dir(parent_dir(path))
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = Path::new(&tmp);
        self.write_file(tmp, data)?;
        self.rename(tmp, path)
    }
}

/// A file opened for appending.
pub trait DiskFile: Send {
    /// Appends `data`; not durable until [`DiskFile::sync`] resolves to `Ok`.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// fsync: everything appended before the call is durable once this resolves to `Ok`.
    ///
    /// A future, because an fsync takes time during which the rest of the process goes on:
    /// the simulated disk sleeps a drawn latency in simulated time (so a crash can strike
    /// mid-fsync, and a message sent before the fsync it depends on can arrive before it ends).
    /// The real disk fsyncs on the calling thread and resolves at the first poll, blocking like
    /// etcd's raft loop does.
    fn sync(&mut self) -> Syncing<'_>;
}
/// Checks that `dir` can be created and durably written, so that a server with
/// a bad `--data-dir` fails at startup with a clear message instead of at its
/// first raft write. The returned error keeps the original [`io::ErrorKind`].
pub fn probe_writable(disk: &dyn Disk, dir: &Path) -> io::Result<()> {
    let wrap = |what: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!(
                "data directory {} is not usable ({what}): {e}",
                dir.display()
            ),
        )
    };
    disk.create_dir_all(dir)
        .map_err(|e| wrap("cannot create it", e))?;
    let probe = dir.join(".detcd-write-probe");
    disk.write_atomic(&probe, b"probe")
        .map_err(|e| wrap("cannot write a file in it", e))?;
    disk.remove(&probe)
        .map_err(|e| wrap("cannot remove a file in it", e))?;
    Ok(())
}
