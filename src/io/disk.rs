//! The [`Disk`] trait: the durability contract every storage module relies on.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;

/// A minimal file system, just large enough for the WAL and snapshot files.
///
/// # Durability contract
///
/// Implementations must provide exactly these guarantees, and callers must not
/// assume more (the simulated disk, [`crate::io::SimDisk`], enforces nothing
/// stronger, so code relying on more fails in simulation rather than in
/// production):
///
/// * Bytes passed to [`DiskFile::append`] are visible to [`Disk::read`]
///   immediately, but are **not durable** until a later [`DiskFile::sync`] on
///   the same handle resolves to `Ok`. An fsync takes time: other tasks run
///   while it is awaited, and a power loss before it resolves may drop the bytes
///   it was making durable. A power loss may drop unsynced bytes, or keep
///   an arbitrary *prefix* of them (a torn write). Unsynced bytes are never
///   reordered or corrupted into something other than a prefix.
/// * If `sync` returns `Err`, nothing is promised about the unsynced bytes: they
///   may or may not survive a crash (the "fsyncgate" lesson). Callers must treat
///   the file as poisoned and stop writing to it.
/// * [`Disk::create_dir_all`], [`Disk::truncate`], [`Disk::rename`],
///   [`Disk::remove`] and [`Disk::write_atomic`] are durable when they return
///   `Ok` (the implementation syncs the file and its directory as needed).
///   Creating a file with [`Disk::open_append`] is durable when it returns, its
///   *content* only after `sync`.
/// * [`Disk::rename`] and [`Disk::write_atomic`] are atomic: after a crash the
///   destination holds either the old or the new content, never a mix.
/// * An open [`DiskFile`] handle addresses the file by path; do not rename or
///   remove a file while a handle to it is in use.
pub trait Disk: Send + Sync + std::fmt::Debug + 'static {
    /// Creates `dir` and any missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Sorted file names (not paths) directly inside `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whole content of a file, including appended but unsynced bytes.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens for appending, creating it if missing.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Cuts the file to `len` bytes; durable when it returns.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Atomic, durable when it returns; replaces `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file; durable when it returns.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Writes a whole file atomically and durably (temp file + fsync + rename + dir sync).
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()>;
}

/// An fsync in flight: see [`DiskFile::sync`].
pub type Syncing<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

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
