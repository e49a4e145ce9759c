//! [`SimDisk`]: an in-memory [`Disk`] for the deterministic simulator.
//!
//! # Model
//!
//! Each file holds *durable* bytes followed by *pending* bytes (appended but not
//! yet synced). Reads see both, like a page cache. [`DiskFile::sync`] moves
//! the bytes pending at its call to durable once its [`SyncLatency`] has passed
//! in simulated time; the member's other tasks run meanwhile, and a crash before
//! then loses (some of) them like any other unsynced bytes. [`SimDisk::crash`] models a power loss: pending
//! bytes are dropped, or, depending on [`CrashMode`], a random prefix of them
//! survives (a torn write).
//!
//! Directory entries are modelled as ext4 and xfs treat them: files are inodes,
//! and there are two namespaces mapping paths to them. The *live* one is what
//! processes see; the *durable* one holds each directory's entries as of its
//! last [`FileSystem::sync_dir`]. A created file or directory, a rename and an
//! unlink change only the live namespace; a power loss restores the durable one,
//! so an entry whose directory was never fsynced is lost (and with a directory,
//! everything below it). The composite operations of [`crate::io::Disk`] add
//! those directory fsyncs, the same code for this disk and the real one.
//!
//! The handle is an `Arc<Mutex<..>>`, cheap to clone, so the simulator can keep a
//! node's disk across the node's crash and restart. File handles opened before a
//! crash fail afterwards (the process that held them is gone).
//!
//! All randomness (torn prefixes, random fault rates) comes from the `u64` seed
//! given to [`SimDisk::new`]; maps are `BTreeMap`s, so behaviour is a pure
//! function of the seed and the call sequence.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::disk::{DiskFile, FileSystem, Syncing};

/// What a crash does to bytes that were appended but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Unsynced bytes are lost.
    DropUnsynced,
    /// Unsynced bytes happen to survive (the disk flushed them in time).
    KeepUnsynced,
    /// A uniformly random prefix (possibly empty or whole) of each file's
    /// unsynced bytes survives. The default: the most adversarial of the three.
    TornPrefix,
}

/// Probabilities (0.0..=1.0) of random failures, drawn from the seeded rng.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// `DiskFile::sync` fails (data stays pending).
    pub sync_fail: f64,
    /// `DiskFile::append` fails (nothing is appended).
    pub append_fail: f64,
    /// `Disk::read` fails.
    pub read_fail: f64,
}

/// How long a simulated fsync takes, drawn per fsync from the disk's seeded rng. The default,
/// zero, completes every fsync at once.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SyncLatency {
    /// An ordinary fsync takes between these two durations.
    pub usual: (Duration, Duration),
    /// Chance (0.0..=1.0) that an fsync is slow instead: a busy device, a journal commit.
    pub slow_chance: f64,
    /// A slow fsync takes between these two durations.
    pub slow: (Duration, Duration),
}

impl SyncLatency {
    fn draw(&self, rng: &mut StdRng) -> Duration {
        if *self == SyncLatency::default() {
            return Duration::ZERO;
        }
        let (low, high) = if self.slow_chance > 0.0 && rng.random_bool(self.slow_chance.min(1.0)) {
            self.slow
        } else {
            self.usual
        };
        if high <= low {
            return low;
        }
        rng.random_range(low..=high)
    }
}

/// Counters of what happened on a [`SimDisk`], for test assertions and
/// simulator reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub appends: u64,
    pub appended_bytes: u64,
    pub syncs: u64,
    pub failed_syncs: u64,
    /// Simulated time spent in fsyncs, in microseconds.
    pub sync_wait_us: u64,
    pub failed_appends: u64,
    pub reads: u64,
    pub failed_reads: u64,
    pub crashes: u64,
    /// Bytes that were pending at a crash and survived it (torn or kept).
    pub torn_bytes_kept: u64,
    /// Bytes that were pending at a crash and were lost.
    pub unsynced_bytes_lost: u64,
    /// Directory entries (created, renamed or removed) that a crash undid because their
    /// directory had not been fsynced.
    pub unsynced_entries_lost: u64,
}

#[derive(Debug, Default, Clone)]
struct SimFile {
    durable: Vec<u8>,
    pending: Vec<u8>,
}

impl SimFile {
    fn contents(&self) -> Vec<u8> {
        let mut v = self.durable.clone();
        v.extend_from_slice(&self.pending);
        v
    }
}

/// Paths to inode numbers: the files and directories one view of the disk holds.
#[derive(Debug, Default, Clone, PartialEq)]
struct Namespace {
    files: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
}

/// The top of the tree, which always exists: `/`, or `""` (`.`) for relative paths.
fn is_root(dir: &Path) -> bool {
    dir.parent().is_none() || dir.as_os_str().is_empty() || dir == Path::new(".")
}

/// The directory holding `path`'s entry, with `.` spelled `""` as `Path::parent` does.
fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || (is_root(a) && is_root(b) && a.has_root() == b.has_root())
}

impl Namespace {
    fn has_dir(&self, dir: &Path) -> bool {
        is_root(dir) || self.dirs.contains(dir)
    }

    /// Drops entries whose directory is gone (a lost directory takes its subtree with it).
    /// Sorted paths list a directory before everything inside it, so one pass suffices.
    fn prune(&mut self) {
        let mut kept = BTreeSet::new();
        for dir in std::mem::take(&mut self.dirs) {
            let parent = parent_of(&dir);
            if is_root(parent) || kept.contains(parent) {
                kept.insert(dir);
            }
        }
        self.dirs = kept;
        let dirs = &self.dirs;
        self.files
            .retain(|path, _| is_root(parent_of(path)) || dirs.contains(parent_of(path)));
    }
}

#[derive(Debug)]
struct State {
    /// File contents by inode number.
    inodes: BTreeMap<u64, SimFile>,
    next_inode: u64,
    /// What processes see.
    live: Namespace,
    /// What a power loss leaves: each directory's entries as of its last fsync.
    durable: Namespace,
    rng: StdRng,
    crash_mode: CrashMode,
    rates: FaultRates,
    sync_latency: SyncLatency,
    /// Draws fsync latencies; apart from `rng`, so that giving a disk a latency leaves its
    /// other random choices (torn prefixes, random faults) as they were.
    latency_rng: StdRng,
    fail_syncs: u64,
    read_fault_prefixes: Vec<PathBuf>,
    write_fault_prefixes: Vec<PathBuf>,
    /// Reads of each path, for the simulator's checks of who read damaged data.
    reads_by_path: BTreeMap<PathBuf, u64>,
    /// Bumped by every crash; handles from an older generation are dead.
    generation: u64,
    stats: DiskStats,
}

/// An in-memory, seeded, crashable disk. See the module docs for the model.
#[derive(Debug, Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn injected(what: &str, path: &Path) -> io::Error {
    io::Error::other(format!("injected fault: {what} {}", path.display()))
}

impl State {
    fn parent_exists(&self, path: &Path) -> io::Result<()> {
        let parent = parent_of(path);
        if self.live.has_dir(parent) {
            Ok(())
        } else {
            Err(not_found(parent))
        }
    }

    fn not_a_dir(&self, path: &Path) -> io::Result<()> {
        if self.live.dirs.contains(path) {
            return Err(io::Error::other(format!(
                "{}: is a directory",
                path.display()
            )));
        }
        Ok(())
    }

    fn check_writable(&self, path: &Path) -> io::Result<()> {
        if self
            .write_fault_prefixes
            .iter()
            .any(|p| path.starts_with(p))
        {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: permission denied (injected)", path.display()),
            ));
        }
        Ok(())
    }

    /// The live file at `path`.
    fn file_mut(&mut self, path: &Path) -> io::Result<&mut SimFile> {
        let inode = *self.live.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(self.inodes.get_mut(&inode).expect("live files have inodes"))
    }

    fn file(&self, path: &Path) -> Option<&SimFile> {
        self.live.files.get(path).map(|inode| &self.inodes[inode])
    }

    /// The live file at `path`, created (as a new, empty inode) if missing.
    fn create_file(&mut self, path: &Path) -> &mut SimFile {
        let inode = match self.live.files.get(path) {
            Some(&inode) => inode,
            None => {
                self.next_inode += 1;
                self.live.files.insert(path.to_path_buf(), self.next_inode);
                self.next_inode
            }
        };
        self.inodes.entry(inode).or_default()
    }
}

impl SimDisk {
    /// An empty disk whose random choices all derive from `seed`.
    pub fn new(seed: u64) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(State {
                inodes: BTreeMap::new(),
                next_inode: 0,
                live: Namespace::default(),
                durable: Namespace::default(),
                rng: StdRng::seed_from_u64(seed),
                crash_mode: CrashMode::TornPrefix,
                rates: FaultRates::default(),
                sync_latency: SyncLatency::default(),
                latency_rng: StdRng::seed_from_u64(seed ^ 0xf5c_1a7e_11c7),
                fail_syncs: 0,
                read_fault_prefixes: Vec::new(),
                write_fault_prefixes: Vec::new(),
                reads_by_path: BTreeMap::new(),
                generation: 0,
                stats: DiskStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (a failing test) must not hide the
        // disk from the code that reports it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power loss: every file loses (some of) its unsynced bytes according to
    /// the [`CrashMode`], every directory entry not yet fsynced is undone, and
    /// every open [`DiskFile`] handle becomes invalid.
    pub fn crash(&self) {
        let mut st = self.lock();
        let st = &mut *st;
        st.generation += 1;
        st.stats.crashes += 1;
        for file in st.inodes.values_mut() {
            let pending = std::mem::take(&mut file.pending);
            let keep = match st.crash_mode {
                CrashMode::DropUnsynced => 0,
                CrashMode::KeepUnsynced => pending.len(),
                CrashMode::TornPrefix => st.rng.random_range(0..=pending.len()),
            };
            file.durable.extend_from_slice(&pending[..keep]);
            st.stats.torn_bytes_kept += keep as u64;
            st.stats.unsynced_bytes_lost += (pending.len() - keep) as u64;
        }
        st.durable.prune();
        let (live, durable) = (&st.live, &st.durable);
        let changed_files = live
            .files
            .iter()
            .filter(|(path, inode)| durable.files.get(*path) != Some(inode))
            .count()
            + durable
                .files
                .keys()
                .filter(|path| !live.files.contains_key(*path))
                .count();
        let changed_dirs = live.dirs.symmetric_difference(&durable.dirs).count();
        st.stats.unsynced_entries_lost += (changed_files + changed_dirs) as u64;
        st.live = st.durable.clone();
        let reachable: BTreeSet<u64> = st.live.files.values().copied().collect();
        st.inodes.retain(|inode, _| reachable.contains(inode));
    }

    /// An operator's `rm -rf` of everything on the disk (replacing a member starts it on an empty
    /// data dir): every file and directory is gone, and handles opened before fail like after a
    /// crash. Fault settings and statistics stay.
    pub fn wipe(&self) {
        let mut st = self.lock();
        st.generation += 1;
        st.inodes.clear();
        st.live = Namespace::default();
        st.durable = Namespace::default();
    }

    pub fn set_crash_mode(&self, mode: CrashMode) {
        self.lock().crash_mode = mode;
    }

    /// The next `n` syncs (on any file) return `Err`; their data stays pending.
    pub fn fail_next_syncs(&self, n: u64) {
        self.lock().fail_syncs = n;
    }

    /// Reads of paths under `prefix` (component-wise) fail until cleared.
    pub fn fail_reads(&self, prefix: impl Into<PathBuf>) {
        self.lock().read_fault_prefixes.push(prefix.into());
    }

    /// Mutations under `prefix` fail with `PermissionDenied`, like a read-only
    /// or foreign-owned data directory.
    pub fn fail_writes(&self, prefix: impl Into<PathBuf>) {
        self.lock().write_fault_prefixes.push(prefix.into());
    }

    /// Removes every fault set up by `fail_*` and resets the fault rates.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.fail_syncs = 0;
        st.read_fault_prefixes.clear();
        st.write_fault_prefixes.clear();
        st.rates = FaultRates::default();
    }

    /// Random failures, drawn from the seeded rng.
    pub fn set_fault_rates(&self, rates: FaultRates) {
        self.lock().rates = rates;
    }

    /// How long each later fsync takes.
    pub fn set_sync_latency(&self, latency: SyncLatency) {
        self.lock().sync_latency = latency;
    }

    /// Flips one bit of a file's *durable* bytes (bit rot, a bad sector).
    pub fn flip_bit(&self, path: &Path, byte_offset: u64, bit: u8) -> io::Result<()> {
        let mut st = self.lock();
        let file = st.file_mut(path)?;
        let byte = file.durable.get_mut(byte_offset as usize).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: offset {byte_offset} beyond durable data",
                    path.display()
                ),
            )
        })?;
        *byte ^= 1 << (bit % 8);
        Ok(())
    }

    /// Overwrites durable bytes of a file in place (a misdirected write landing on it, or an
    /// operator repairing one); returns the bytes it replaced.
    pub fn overwrite(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut st = self.lock();
        let file = st.file_mut(path)?;
        let range = offset as usize..offset as usize + data.len();
        let old = file.durable.get(range.clone()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {range:?} beyond durable data", path.display()),
            )
        })?;
        let old = old.to_vec();
        file.durable[range].copy_from_slice(data);
        Ok(old)
    }

    /// Durable and pending byte counts of a file.
    pub fn file_sizes(&self, path: &Path) -> Option<(usize, usize)> {
        self.lock()
            .file(path)
            .map(|f| (f.durable.len(), f.pending.len()))
    }

    /// Every file on the disk (its live paths), sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock().live.files.keys().cloned().collect()
    }

    /// How often `path` was read (successfully or not).
    pub fn reads_of(&self, path: &Path) -> u64 {
        self.lock().reads_by_path.get(path).copied().unwrap_or(0)
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }
}

impl FileSystem for SimDisk {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_writable(dir)?;
        st.parent_exists(dir)?;
        if st.live.has_dir(dir) || st.live.files.contains_key(dir) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: already exists", dir.display()),
            ));
        }
        st.live.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let st = &mut *st;
        if !st.live.has_dir(dir) {
            return Err(not_found(dir));
        }
        let inside = |path: &PathBuf| same_dir(parent_of(path), dir);
        st.durable.files.retain(|path, _| !inside(path));
        st.durable.dirs.retain(|path| !inside(path));
        for (path, &inode) in st.live.files.iter().filter(|(path, _)| inside(path)) {
            st.durable.files.insert(path.clone(), inode);
        }
        for path in st.live.dirs.iter().filter(|path| inside(path)) {
            st.durable.dirs.insert(path.clone());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        if !st.live.has_dir(dir) {
            return Err(not_found(dir));
        }
        let children = st.live.files.keys().chain(st.live.dirs.iter());
        let names: BTreeSet<String> = children
            .filter(|p| same_dir(parent_of(p), dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        Ok(names.into_iter().collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut st = self.lock();
        st.stats.reads += 1;
        *st.reads_by_path.entry(path.to_path_buf()).or_default() += 1;
        let random_fail = st.rates.read_fail > 0.0 && {
            let p = st.rates.read_fail;
            st.rng.random_bool(p.min(1.0))
        };
        if random_fail || st.read_fault_prefixes.iter().any(|p| path.starts_with(p)) {
            st.stats.failed_reads += 1;
            return Err(injected("read", path));
        }
        st.file(path)
            .map(SimFile::contents)
            .ok_or_else(|| not_found(path))
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        st.live.files.contains_key(path) || st.live.dirs.contains(path)
    }

    fn open_file(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut st = self.lock();
        st.check_writable(path)?;
        st.parent_exists(path)?;
        st.not_a_dir(path)?;
        st.create_file(path);
        Ok(Box::new(SimFileHandle {
            disk: self.clone(),
            path: path.to_path_buf(),
            generation: st.generation,
        }))
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        st.check_writable(path)?;
        st.parent_exists(path)?;
        st.not_a_dir(path)?;
        // Like `File::create`: an existing file is truncated in place (same inode).
        *st.create_file(path) = SimFile {
            durable: data.to_vec(),
            pending: Vec::new(),
        };
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.check_writable(path)?;
        let file = st.file_mut(path)?;
        let mut all = file.contents();
        all.resize(len as usize, 0);
        file.durable = all;
        file.pending.clear();
        Ok(())
    }

    fn rename_entry(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_writable(from)?;
        st.check_writable(to)?;
        st.parent_exists(to)?;
        st.not_a_dir(to)?;
        let inode = st.live.files.remove(from).ok_or_else(|| not_found(from))?;
        st.live.files.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_writable(path)?;
        st.live
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
}

struct SimFileHandle {
    disk: SimDisk,
    path: PathBuf,
    generation: u64,
}

impl SimFileHandle {
    fn check_alive(&self, st: &State) -> io::Result<()> {
        if st.generation != self.generation {
            return Err(io::Error::other(format!(
                "{}: file handle from before a crash",
                self.path.display()
            )));
        }
        Ok(())
    }
}

impl DiskFile for SimFileHandle {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut st = self.disk.lock();
        let st = &mut *st;
        self.check_alive(st)?;
        st.check_writable(&self.path)?;
        if st.rates.append_fail > 0.0 && st.rng.random_bool(st.rates.append_fail.min(1.0)) {
            st.stats.failed_appends += 1;
            return Err(injected("append to", &self.path));
        }
        let file = st.file_mut(&self.path)?;
        file.pending.extend_from_slice(data);
        st.stats.appends += 1;
        st.stats.appended_bytes += data.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Syncing<'_> {
        // Everything is decided at the call, in call order, so the seeded draws do not depend on
        // how the member's tasks interleave while fsyncs are in flight.
        let started = {
            let mut st = self.disk.lock();
            let st = &mut *st;
            self.check_alive(st).map(|()| {
                st.stats.syncs += 1;
                let random_fail =
                    st.rates.sync_fail > 0.0 && st.rng.random_bool(st.rates.sync_fail.min(1.0));
                let fail = st.fail_syncs > 0 || random_fail;
                st.fail_syncs = st.fail_syncs.saturating_sub(u64::from(fail));
                let pending = st.file(&self.path).map_or(0, |f| f.pending.len());
                let latency = st.sync_latency.draw(&mut st.latency_rng);
                st.stats.sync_wait_us += latency.as_micros() as u64;
                (fail, pending, latency)
            })
        };
        Box::pin(async move {
            let (fail, pending, latency) = started?;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let mut st = self.disk.lock();
            let st = &mut *st;
            // A crash while the fsync was in flight took its bytes' fate out of its hands.
            self.check_alive(st)?;
            if fail {
                st.stats.failed_syncs += 1;
                return Err(injected("fsync of", &self.path));
            }
            let file = st.file_mut(&self.path)?;
            // Only what was appended before the call: later appends wait for a later fsync.
            let synced = pending.min(file.pending.len());
            file.durable.extend(file.pending.drain(..synced));
            Ok(())
        })
    }
}
