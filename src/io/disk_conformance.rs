//! One conformance suite for every [`Disk`] implementation, so the simulated
//! disk cannot drift from the real one; plus crash tests only the simulated
//! disk can run.

use std::io::ErrorKind;

use futures::executor::block_on;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{probe_writable, CrashMode, Disk, FileSystem, RealDisk, SimDisk, SyncLatency};

/// Runs every generic check against `disk`, using the (existing or not) directory `root`.
fn run_all(disk: &dyn Disk, root: &Path) {
    dirs_and_listing(disk, &root.join("a"));
    append_and_read(disk, &root.join("b"));
    truncate_rename_remove(disk, &root.join("c"));
    write_atomic_replaces(disk, &root.join("d"));
    missing_things_are_not_found(disk, &root.join("e"));
    primitives(disk, &root.join("g"));
    probe_writable(disk, &root.join("f/data")).expect("probe");
}

fn dirs_and_listing(disk: &dyn Disk, dir: &Path) {
    assert!(!disk.exists(dir));
    disk.create_dir_all(&dir.join("sub/deeper")).unwrap();
    disk.create_dir_all(dir).unwrap(); // idempotent
    assert!(disk.exists(dir));
    for name in ["zz", "aa", "mm"] {
        disk.write_atomic(&dir.join(name), name.as_bytes()).unwrap();
    }
    assert_eq!(disk.list(dir).unwrap(), vec!["aa", "mm", "sub", "zz"]);
    assert_eq!(disk.list(&dir.join("sub")).unwrap(), vec!["deeper"]);
}

fn append_and_read(disk: &dyn Disk, dir: &Path) {
    disk.create_dir_all(dir).unwrap();
    let p = dir.join("log");
    {
        let mut f = disk.open_append(&p).unwrap();
        assert!(disk.exists(&p));
        assert_eq!(disk.read(&p).unwrap(), b"");
        f.append(b"hello ").unwrap();
        block_on(f.sync()).unwrap();
        f.append(b"world").unwrap();
        // Visible before sync.
        assert_eq!(disk.read(&p).unwrap(), b"hello world");
        block_on(f.sync()).unwrap();
    }
    // Reopening appends after the existing content.
    let mut f = disk.open_append(&p).unwrap();
    f.append(b"!").unwrap();
    block_on(f.sync()).unwrap();
    assert_eq!(disk.read(&p).unwrap(), b"hello world!");
}

fn truncate_rename_remove(disk: &dyn Disk, dir: &Path) {
    disk.create_dir_all(dir).unwrap();
    let p = dir.join("x");
    let q = dir.join("y");
    disk.write_atomic(&p, b"0123456789").unwrap();
    disk.truncate(&p, 4).unwrap();
    assert_eq!(disk.read(&p).unwrap(), b"0123");
    disk.write_atomic(&q, b"old").unwrap();
    disk.rename(&p, &q).unwrap();
    assert!(!disk.exists(&p));
    assert_eq!(disk.read(&q).unwrap(), b"0123");
    assert_eq!(disk.list(dir).unwrap(), vec!["y"]);
    disk.remove(&q).unwrap();
    assert!(!disk.exists(&q));
    assert_eq!(disk.list(dir).unwrap(), Vec::<String>::new());
}

fn write_atomic_replaces(disk: &dyn Disk, dir: &Path) {
    disk.create_dir_all(dir).unwrap();
    let p = dir.join("state");
    disk.write_atomic(&p, b"first version").unwrap();
    disk.write_atomic(&p, b"second").unwrap();
    assert_eq!(disk.read(&p).unwrap(), b"second");
    // No temp file left behind.
    assert_eq!(disk.list(dir).unwrap(), vec!["state"]);
}

fn missing_things_are_not_found(disk: &dyn Disk, dir: &Path) {
    assert_eq!(
        disk.read(&dir.join("nope")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(disk.list(dir).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        disk.remove(&dir.join("nope")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(disk.open_append(&dir.join("sub/file")).is_err());
    assert!(disk.write_atomic(&dir.join("sub/file"), b"x").is_err());
}

/// The primitives behave alike on both disks (what each makes durable is checked by the crash
/// tests below, which only the simulated disk can run).
fn primitives(disk: &dyn Disk, dir: &Path) {
    assert_eq!(
        disk.mkdir(&dir.join("sub")).unwrap_err().kind(),
        ErrorKind::NotFound,
        "mkdir needs its parent"
    );
    disk.mkdir(dir).unwrap();
    assert_eq!(
        disk.mkdir(dir).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    disk.write_file(&dir.join("f"), b"first").unwrap();
    disk.write_file(&dir.join("f"), b"2nd").unwrap();
    assert_eq!(disk.read(&dir.join("f")).unwrap(), b"2nd");
    disk.rename_entry(&dir.join("f"), &dir.join("g")).unwrap();
    disk.unlink(&dir.join("g")).unwrap();
    assert_eq!(
        disk.unlink(&dir.join("g")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let mut file = disk.open_file(&dir.join("h")).unwrap();
    file.append(b"x").unwrap();
    block_on(file.sync()).unwrap();
    disk.sync_dir(dir).unwrap();
    assert_eq!(disk.list(dir).unwrap(), vec!["h"]);
    // A file where a directory should be.
    assert!(disk.create_dir_all(&dir.join("h")).is_err());
    assert!(disk.create_dir_all(&dir.join("h/sub")).is_err());
}

#[test]
fn real_disk_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    run_all(&RealDisk::new(), tmp.path());
}

#[test]
fn sim_disk_conforms() {
    run_all(&SimDisk::new(7), Path::new("/data"));
}

#[test]
fn sim_probe_reports_unwritable_dir() {
    let disk = SimDisk::new(1);
    disk.fail_writes("/ro");
    let err = probe_writable(&disk, Path::new("/ro/data")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("/ro/data"), "{err}");
}

#[test]
fn real_probe_reports_unwritable_dir() {
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where the directory should be: fails even when running as root.
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = probe_writable(&RealDisk::new(), &file.join("data")).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

fn sim_with_file(mode: CrashMode, seed: u64) -> (SimDisk, PathBuf) {
    let disk = SimDisk::new(seed);
    disk.set_crash_mode(mode);
    disk.create_dir_all(Path::new("/d")).unwrap();
    (disk, PathBuf::from("/d/f"))
}

#[test]
fn crash_drops_unsynced_keeps_synced() {
    let (disk, p) = sim_with_file(CrashMode::DropUnsynced, 1);
    let mut f = disk.open_append(&p).unwrap();
    f.append(b"synced").unwrap();
    block_on(f.sync()).unwrap();
    f.append(b"-unsynced").unwrap();
    disk.crash();
    assert_eq!(disk.read(&p).unwrap(), b"synced");
    // The old handle died with the process.
    assert!(f.append(b"x").is_err());
    assert!(block_on(f.sync()).is_err());
    let s = disk.stats();
    assert_eq!((s.crashes, s.unsynced_bytes_lost), (1, 9));
}

#[test]
fn crash_keep_mode_keeps_everything() {
    let (disk, p) = sim_with_file(CrashMode::KeepUnsynced, 1);
    let mut f = disk.open_append(&p).unwrap();
    f.append(b"abc").unwrap();
    disk.crash();
    assert_eq!(disk.read(&p).unwrap(), b"abc");
}

#[test]
fn torn_crash_keeps_a_prefix_and_is_deterministic() {
    let unsynced = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut lens = Vec::new();
    for seed in 0..20 {
        let run = || {
            let (disk, p) = sim_with_file(CrashMode::TornPrefix, seed);
            let mut f = disk.open_append(&p).unwrap();
            f.append(b"base|").unwrap();
            block_on(f.sync()).unwrap();
            f.append(unsynced).unwrap();
            disk.crash();
            disk.read(&p).unwrap()
        };
        let got = run();
        assert_eq!(got, run(), "same seed, same outcome");
        assert!(got.starts_with(b"base|"));
        let tail = &got[5..];
        assert_eq!(tail, &unsynced[..tail.len()], "only a prefix survives");
        lens.push(tail.len());
    }
    lens.sort();
    lens.dedup();
    assert!(
        lens.len() > 3,
        "torn lengths should vary across seeds: {lens:?}"
    );
}

#[test]
fn wipe_removes_everything_and_kills_handles() {
    let (disk, p) = sim_with_file(CrashMode::KeepUnsynced, 1);
    let mut f = disk.open_append(&p).unwrap();
    f.append(b"data").unwrap();
    disk.wipe();
    assert!(!disk.exists(&p));
    assert!(!disk.exists(Path::new("/d")));
    assert!(f.append(b"x").is_err());
    // An empty disk again: a new data dir can be made on it.
    disk.create_dir_all(Path::new("/d")).unwrap();
    assert!(disk.list(Path::new("/d")).unwrap().is_empty());
}

/// An fsync takes its drawn latency in (simulated) time, and a power loss before it resolves
/// loses the bytes it was making durable, as one during a real fsync may.
#[tokio::test]
async fn an_fsync_takes_time_and_a_crash_meanwhile_loses_its_bytes() {
    let (disk, p) = sim_with_file(CrashMode::DropUnsynced, 1);
    let latency = Duration::from_millis(5);
    disk.set_sync_latency(SyncLatency {
        usual: (latency, latency),
        ..SyncLatency::default()
    });
    let mut f = disk.open_append(&p).unwrap();
    f.append(b"first").unwrap();
    let started = tokio::time::Instant::now();
    f.sync().await.unwrap();
    assert!(started.elapsed() >= latency);
    assert_eq!(disk.file_sizes(&p), Some((5, 0)));
    f.append(b"second").unwrap();
    let mut syncing = f.sync();
    assert!(futures::poll!(&mut syncing).is_pending(), "still in flight");
    assert_eq!(
        disk.file_sizes(&p),
        Some((5, 6)),
        "not durable before it resolves"
    );
    disk.crash();
    assert!(syncing.await.is_err(), "the process that waited is gone");
    assert_eq!(disk.read(&p).unwrap(), b"first");
    assert_eq!(disk.stats().sync_wait_us, 10_000);
}

#[test]
fn failed_sync_leaves_data_pending() {
    let (disk, p) = sim_with_file(CrashMode::DropUnsynced, 1);
    let mut f = disk.open_append(&p).unwrap();
    f.append(b"data").unwrap();
    disk.fail_next_syncs(1);
    assert!(block_on(f.sync()).is_err());
    assert_eq!(disk.file_sizes(&p), Some((0, 4)));
    block_on(f.sync()).unwrap();
    assert_eq!(disk.file_sizes(&p), Some((4, 0)));
    assert_eq!(disk.stats().failed_syncs, 1);
}

#[test]
fn read_faults_and_bit_flips() {
    let (disk, p) = sim_with_file(CrashMode::DropUnsynced, 1);
    disk.write_atomic(&p, &[0u8; 4]).unwrap();
    disk.flip_bit(&p, 2, 3).unwrap();
    assert_eq!(disk.read(&p).unwrap(), [0, 0, 8, 0]);
    assert!(disk.flip_bit(&p, 4, 0).is_err());
    disk.fail_reads("/d");
    assert!(disk.read(&p).is_err());
    disk.clear_faults();
    assert!(disk.read(&p).is_ok());
}

/// A fresh disk with `/d` created and durable.
fn sim_with_dir(seed: u64) -> SimDisk {
    let disk = SimDisk::new(seed);
    disk.create_dir_all(Path::new("/d")).unwrap();
    disk
}

#[test]
fn crash_undoes_entries_whose_directory_was_not_fsynced() {
    let disk = sim_with_dir(1);
    let d = Path::new("/d");
    disk.write_file(&d.join("kept"), b"old").unwrap();
    disk.sync_dir(d).unwrap();
    // Unsynced: a new directory, a new file, a rename over `kept`, an unlink.
    disk.mkdir(&d.join("newdir")).unwrap();
    disk.write_file(&d.join("new"), b"new").unwrap();
    disk.write_file(&d.join("tmp"), b"replacement").unwrap();
    disk.rename_entry(&d.join("tmp"), &d.join("kept")).unwrap();
    disk.crash();
    assert_eq!(disk.list(d).unwrap(), vec!["kept"]);
    assert_eq!(
        disk.read(&d.join("kept")).unwrap(),
        b"old",
        "the rename was undone"
    );
    assert_eq!(disk.stats().unsynced_entries_lost, 3);
    // An unlink is undone too; after the directory fsync it sticks.
    disk.unlink(&d.join("kept")).unwrap();
    disk.crash();
    assert!(disk.exists(&d.join("kept")));
    disk.unlink(&d.join("kept")).unwrap();
    disk.sync_dir(d).unwrap();
    disk.crash();
    assert!(!disk.exists(&d.join("kept")));
}

#[test]
fn a_lost_directory_takes_its_subtree() {
    let disk = sim_with_dir(1);
    let sub = Path::new("/d/sub");
    disk.mkdir(sub).unwrap();
    disk.write_file(&sub.join("f"), b"data").unwrap();
    // The file's entry is durable inside `sub`, but `sub`'s own entry in `/d` is not.
    disk.sync_dir(sub).unwrap();
    disk.crash();
    assert!(!disk.exists(sub));
    assert!(!disk.exists(&sub.join("f")));
}
#[test]
fn composite_operations_are_durable() {
    let disk = sim_with_dir(3);
    let deep = Path::new("/d/a/b/c");
    disk.create_dir_all(deep).unwrap();
    disk.write_atomic(&deep.join("state"), b"v1").unwrap();
    let mut log = disk.open_append(&deep.join("log")).unwrap();
    log.append(b"entry").unwrap();
    block_on(log.sync()).unwrap();
    disk.write_atomic(&deep.join("gone"), b"x").unwrap();
    disk.remove(&deep.join("gone")).unwrap();
    disk.create_dir_all(Path::new("/d/a/other")).unwrap();
    disk.rename(&deep.join("state"), Path::new("/d/a/other/state"))
        .unwrap();
    disk.crash();
    assert_eq!(disk.list(deep).unwrap(), vec!["log"]);
    assert_eq!(disk.read(&deep.join("log")).unwrap(), b"entry");
    assert_eq!(disk.read(Path::new("/d/a/other/state")).unwrap(), b"v1");
    assert_eq!(disk.stats().unsynced_entries_lost, 0);
}
