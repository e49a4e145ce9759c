use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::executor::block_on;
use proptest::prelude::*;
use raft::prelude::{Entry, HardState, SnapshotMetadata};

use super::*;
use crate::io::{CrashMode, Disk, RealDisk, SimDisk, SyncLatency};

fn dir() -> PathBuf {
    PathBuf::from("/data/member/wal")
}

fn ent(index: u64, term: u64) -> Entry {
    let mut e = Entry::default();
    e.set_index(index);
    e.set_term(term);
    e.set_data(format!("entry {index}@{term}").into_bytes().into());
    e
}

fn ents(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to).map(|i| ent(i, term)).collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    let mut h = HardState::default();
    h.set_term(term);
    h.set_vote(vote);
    h.set_commit(commit);
    h
}

fn snap(index: u64, term: u64) -> SnapshotMetadata {
    let mut s = SnapshotMetadata::default();
    s.set_index(index);
    s.set_term(term);
    s
}

fn sim() -> (SimDisk, Arc<dyn Disk>) {
    let disk = SimDisk::new(42);
    let dyn_disk: Arc<dyn Disk> = Arc::new(disk.clone());
    (disk, dyn_disk)
}

fn seg_path(wal: &Wal, i: usize) -> PathBuf {
    dir().join(&wal.segment_names()[i])
}

/// A save resolves only after its fsync's latency; one whose future is dropped mid-fsync (the
/// member is going away) leaves the tail unknown, like a failed fsync, and a power loss then
/// loses its entries.
#[tokio::test]
async fn a_save_dropped_mid_fsync_poisons_the_wal_and_is_not_durable() {
    let (sim, disk) = sim();
    sim.set_crash_mode(CrashMode::DropUnsynced);
    let latency = std::time::Duration::from_millis(3);
    sim.set_sync_latency(SyncLatency {
        usual: (latency, latency),
        ..SyncLatency::default()
    });
    let mut wal = Wal::create(disk.clone(), &dir(), b"m").unwrap();
    wal.save(Some(&hs(1, 0, 0)), &ents(1, 2, 1)).await.unwrap();
    {
        let entries = ents(3, 3, 1);
        let mut saving = std::pin::pin!(wal.save(None, &entries));
        assert!(futures::poll!(saving.as_mut()).is_pending());
    }
    assert!(matches!(
        wal.save(None, &ents(3, 3, 1)).await,
        Err(WalError::Poisoned)
    ));
    sim.crash();
    let (_, contents) = Wal::open(disk, &dir()).unwrap();
    assert_eq!(contents.entries, ents(1, 2, 1));
}

#[test]
fn create_save_reopen_round_trip() {
    let (_, disk) = sim();
    assert!(!Wal::exists(&*disk, &dir()));
    let mut wal = Wal::create(disk.clone(), &dir(), b"node-1").unwrap();
    assert!(Wal::exists(&*disk, &dir()));
    assert!(matches!(
        Wal::create(disk.clone(), &dir(), b"x"),
        Err(WalError::AlreadyExists(_))
    ));
    block_on(wal.save(Some(&hs(1, 1, 0)), &ents(1, 3, 1))).unwrap();
    block_on(wal.save(Some(&hs(1, 1, 3)), &[])).unwrap();
    drop(wal);
    let (mut wal, c) = Wal::open(disk.clone(), &dir()).unwrap();
    assert_eq!(c.metadata, b"node-1");
    assert_eq!(c.hard_state, hs(1, 1, 3));
    assert_eq!(c.entries, ents(1, 3, 1));
    assert_eq!(c.snapshot, None);
    // Appendable after reopen, and replays again.
    block_on(wal.save(None, &ents(4, 5, 2))).unwrap();
    drop(wal);
    let (_, c) = Wal::open(disk, &dir()).unwrap();
    assert_eq!(c.entries.len(), 5);
    assert_eq!(c.entries[4], ent(5, 2));
}

#[test]
fn open_missing_is_not_found() {
    let (_, disk) = sim();
    assert!(matches!(
        Wal::open(disk, &dir()),
        Err(WalError::NotFound(_))
    ));
}

#[test]
fn overwrite_suffix() {
    let (_, disk) = sim();
    let mut wal = Wal::create(disk.clone(), &dir(), b"m").unwrap();
    block_on(wal.save(None, &ents(1, 5, 1))).unwrap();
    block_on(wal.save(None, &ents(3, 4, 2))).unwrap();
    drop(wal);
    let (_, c) = Wal::open(disk, &dir()).unwrap();
    let mut want = ents(1, 2, 1);
    want.extend(ents(3, 4, 2));
    assert_eq!(c.entries, want);
}

#[test]
fn snapshot_marker_filters_entries() {
    let (_, disk) = sim();
    let mut wal = Wal::create(disk.clone(), &dir(), b"m").unwrap();
    block_on(wal.save(None, &ents(1, 5, 1))).unwrap();
    block_on(wal.save_snapshot_marker(&snap(3, 1))).unwrap();
    // A snapshot beyond the log, then entries after it.
    block_on(wal.save_snapshot_marker(&snap(10, 2))).unwrap();
    block_on(wal.save(None, &ents(11, 12, 2))).unwrap();
    drop(wal);
    let (_, c) = Wal::open(disk, &dir()).unwrap();
    assert_eq!(c.snapshot, Some(snap(10, 2)));
    assert_eq!(c.entries, ents(11, 12, 2));
}

#[test]
fn torn_tail_is_truncated_and_wal_stays_usable() {
    let (sdisk, disk) = sim();
    let mut wal = Wal::create(disk.clone(), &dir(), b"m").unwrap();
    block_on(wal.save(Some(&hs(1, 0, 1)), &ents(1, 2, 1))).unwrap();
    let path = seg_path(&wal, 0);
    let good_len = disk.read(&path).unwrap().len();
    // A save whose fsync fails, then a power loss that keeps part of it.
    sdisk.fail_next_syncs(1);
    assert!(block_on(wal.save(None, &ents(3, 3, 1))).is_err());
    assert!(matches!(
        block_on(wal.save(None, &ents(3, 3, 1))),
        Err(WalError::Poisoned)
    ));
    sdisk.set_crash_mode(CrashMode::KeepUnsynced);
    drop(wal);
    sdisk.crash();
    let full = disk.read(&path).unwrap();
    disk.truncate(&path, (full.len() - 3) as u64).unwrap();

    let (mut wal, c) = Wal::open(disk.clone(), &dir()).unwrap();
    assert_eq!(c.entries, ents(1, 2, 1));
    assert_eq!(
        disk.read(&path).unwrap().len(),
        good_len,
        "torn tail truncated"
    );
    block_on(wal.save(Some(&hs(1, 0, 3)), &ents(3, 3, 1))).unwrap();
    drop(wal);
    let (_, c) = Wal::open(disk, &dir()).unwrap();
    assert_eq!(c.entries, ents(1, 3, 1));
    assert_eq!(c.hard_state, hs(1, 0, 3));
}

#[test]
fn zero_filled_tail_is_torn() {
    let (_, disk) = sim();
    let mut wal = Wal::create(disk.clone(), &dir(), b"m").unwrap();
    block_on(wal.save(None, &ents(1, 2, 1))).unwrap();
    let path = seg_path(&wal, 0);
    drop(wal);
    let len = disk.read(&path).unwrap().len() as u64;
    disk.truncate(&path, len + 100).unwrap(); // extends with zeros
    let (_, c) = Wal::open(disk.clone(), &dir()).unwrap();
    assert_eq!(c.entries, ents(1, 2, 1));
    assert_eq!(disk.read(&path).unwrap().len() as u64, len);
}

/// Byte offsets of every record in a segment.
fn record_offsets(data: &[u8]) -> Vec<usize> {
    let mut offs = Vec::new();
    let mut off = 0;
    while off < data.len() {
        offs.push(off);
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        off += record::HEADER_LEN + len;
    }
    offs
}

fn corrupt_record(record: usize, byte_in_payload: usize) -> WalError {
    let (sdisk, disk) = sim();
    let mut wal = Wal::create(disk.clone(), &dir(), b"m").unwrap();
    for i in 1..=4 {
        block_on(wal.save(None, &ents(i, i, 1))).unwrap();
    }
    let path = seg_path(&wal, 0);
    drop(wal);
    let offs = record_offsets(&disk.read(&path).unwrap());
    assert_eq!(offs.len(), 6, "segment + metadata + 4 entries");
    let at = offs[record] + record::HEADER_LEN + byte_in_payload;
    sdisk.flip_bit(&path, at as u64, 2).unwrap();
    let err = Wal::open(disk, &dir()).unwrap_err();
    match &err {
        WalError::Corrupt { file, offset, .. } => {
            assert_eq!(file, &path.file_name().unwrap().to_string_lossy());
            assert_eq!(*offset, offs[record] as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    err
}

#[test]
fn bit_flip_in_middle_record_is_corrupt() {
    let err = corrupt_record(3, 1);
    let msg = err.to_string();
    assert!(
        msg.contains("0000000000000000-0000000000000001.wal"),
        "{msg}"
    );
    assert!(msg.contains("checksum"), "{msg}");
}

#[test]
fn bit_flip_in_last_record_is_corrupt_not_torn() {
    corrupt_record(5, 0);
}

#[test]
fn bit_flip_in_length_field_is_corrupt_not_torn() {
    let (sdisk, disk) = sim();
    let mut wal = Wal::create(disk.clone(), &dir(), b"m").unwrap();
    block_on(wal.save(None, &ents(1, 2, 1))).unwrap();
    let path = seg_path(&wal, 0);
    drop(wal);
    let offs = record_offsets(&disk.read(&path).unwrap());
    // Make the last record's length huge: it would look like a torn write
    // without the inverted length check.
    sdisk.flip_bit(&path, offs[3] as u64 + 2, 7).unwrap();
    assert!(matches!(
        Wal::open(disk, &dir()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn segments_cut_replay_and_release() {
    let (_, disk) = sim();
    let mut wal = Wal::create(disk.clone(), &dir(), b"meta").unwrap();
    wal.set_segment_bytes_max(200);
    for i in 1..=30 {
        block_on(wal.save(Some(&hs(1, 1, i - 1)), &[ent(i, 1)])).unwrap();
    }
    let names = wal.segment_names();
    assert!(names.len() > 3, "{names:?}");
    assert_eq!(disk.list(&dir()).unwrap(), names);
    drop(wal);
    let (mut wal, c) = Wal::open(disk.clone(), &dir()).unwrap();
    assert_eq!(c.entries, ents(1, 30, 1));
    assert_eq!(c.hard_state, hs(1, 1, 29));

    block_on(wal.save_snapshot_marker(&snap(20, 1))).unwrap();
    wal.release_to(20).unwrap();
    let kept = wal.segment_names();
    assert!(kept.len() < names.len(), "{names:?} -> {kept:?}");
    let firsts: Vec<u64> = kept
        .iter()
        .map(|n| Segment::parse(n).unwrap().first_index)
        .collect();
    assert!(
        firsts[0] <= 20 && firsts.get(1).is_none_or(|&f| f > 20),
        "{kept:?}"
    );
    drop(wal);
    let (_, c) = Wal::open(disk.clone(), &dir()).unwrap();
    assert_eq!(c.metadata, b"meta");
    assert_eq!(c.snapshot, Some(snap(20, 1)));
    assert_eq!(c.entries, ents(21, 30, 1));
    assert_eq!(c.hard_state, hs(1, 1, 29));
}

#[test]
fn missing_middle_segment_is_corrupt() {
    let (_, disk) = sim();
    let mut wal = Wal::create(disk.clone(), &dir(), b"m").unwrap();
    wal.set_segment_bytes_max(100);
    for i in 1..=10 {
        block_on(wal.save(None, &[ent(i, 1)])).unwrap();
    }
    let mid = seg_path(&wal, 1);
    drop(wal);
    disk.remove(&mid).unwrap();
    assert!(matches!(
        Wal::open(disk, &dir()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn real_disk_round_trip_with_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Disk> = Arc::new(RealDisk::new());
    let d = tmp.path().join("wal");
    let mut wal = Wal::create(disk.clone(), &d, b"real").unwrap();
    wal.set_segment_bytes_max(300);
    for i in 1..=20 {
        block_on(wal.save(Some(&hs(2, 1, i)), &[ent(i, 2)])).unwrap();
    }
    block_on(wal.save(None, &ents(15, 16, 3))).unwrap();
    drop(wal);
    let (_, c) = Wal::open(disk.clone(), &d).unwrap();
    let mut want = ents(1, 14, 2);
    want.extend(ents(15, 16, 3));
    assert_eq!(c.entries, want);
    assert_eq!(c.hard_state, hs(2, 1, 20));
    assert!(Wal::exists(&*disk, &d));
    assert!(!Wal::exists(&*disk, Path::new("/nonexistent/wal")));
}

#[derive(Debug, Clone)]
enum Op {
    /// Save entries starting `back` before the next index (overwrite if > 0).
    Save {
        back: u64,
        count: u64,
        hs: bool,
    },
    /// Like Save, but the fsync fails and the node then crashes.
    FailedSave {
        back: u64,
        count: u64,
    },
    Crash,
    Restart,
    SnapshotAndRelease {
        back: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4u64, 0..4u64, any::<bool>()).prop_map(|(back, count, hs)| Op::Save { back, count, hs }),
        1 => (0..3u64, 1..4u64).prop_map(|(back, count)| Op::FailedSave { back, count }),
        1 => Just(Op::Crash),
        1 => Just(Op::Restart),
        1 => (0..5u64).prop_map(|back| Op::SnapshotAndRelease { back }),
    ]
}

/// Applies a batch to the expected log with the WAL's replay rules.
fn apply(log: &mut Vec<Entry>, batch: &[Entry]) {
    if let Some(first) = batch.first() {
        log.retain(|e| e.index < first.index);
        log.extend_from_slice(batch);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Everything a `save` acknowledged survives any crash, in order; a save
    /// that failed may survive only as a prefix of its entries.
    #[test]
    fn acknowledged_saves_survive_crashes(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..40)) {
        let sdisk = SimDisk::new(seed);
        let disk: Arc<dyn Disk> = Arc::new(sdisk.clone());
        let mut wal = Wal::create(disk.clone(), &dir(), b"p").unwrap();
        wal.set_segment_bytes_max(256);
        // Expected durable state (entries after the snapshot, hard state, snapshot).
        let mut log: Vec<Entry> = Vec::new();
        let mut hard = HardState::default();
        let mut snapshot: Option<u64> = None;
        let mut term = 1;
        let mut step = 0u64;
        let last = |log: &Vec<Entry>, snapshot: Option<u64>| {
            log.last().map(|e| e.index).or(snapshot).unwrap_or(0)
        };
        let reopen = |log: &mut Vec<Entry>, hard: &mut HardState, snapshot: Option<u64>, pending: Option<(Vec<Entry>, HardState)>| -> Result<Wal, TestCaseError> {
            let (mut wal, c) = Wal::open(disk.clone(), &dir()).unwrap();
            wal.set_segment_bytes_max(256);
            prop_assert_eq!(c.snapshot.map(|s| s.index), snapshot);
            let ok = match &pending {
                None => c.entries == *log && c.hard_state == *hard,
                Some((batch, new_hs)) => (0..=batch.len()).any(|k| {
                    let mut l = log.clone();
                    apply(&mut l, &batch[..k]);
                    let hs_ok = c.hard_state == *hard || (k == batch.len() && c.hard_state == *new_hs);
                    c.entries == l && hs_ok
                }),
            };
            prop_assert!(ok, "replayed {:?} / {:?}, expected {:?} / {:?} (+ prefix of {:?})",
                c.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), c.hard_state,
                log.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), hard,
                pending.as_ref().map(|p| p.0.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>()));
            *log = c.entries;
            *hard = c.hard_state;
            Ok(wal)
        };
        for op in ops {
            step += 1;
            match op {
                Op::Save { back, count, hs: with_hs } => {
                    let next = last(&log, snapshot) + 1;
                    let from = next.saturating_sub(back).max(snapshot.map_or(1, |s| s + 1)).max(1);
                    if back > 0 { term += 1; }
                    let batch = ents(from, from + count - 1 + u64::from(count == 0), term);
                    let batch = if count == 0 { Vec::new() } else { batch };
                    let h = hs(term, step % 3, step);
                    block_on(wal.save(with_hs.then_some(&h), &batch)).unwrap();
                    apply(&mut log, &batch);
                    if with_hs { hard = h; }
                }
                Op::FailedSave { back, count } => {
                    let next = last(&log, snapshot) + 1;
                    let from = next.saturating_sub(back).max(snapshot.map_or(1, |s| s + 1)).max(1);
                    term += 1;
                    let batch = ents(from, from + count - 1, term);
                    let h = hs(term, 9, step);
                    sdisk.fail_next_syncs(1);
                    prop_assert!(block_on(wal.save(Some(&h), &batch)).is_err());
                    drop(wal);
                    sdisk.crash();
                    wal = reopen(&mut log, &mut hard, snapshot, Some((batch, h)))?;
                }
                Op::Crash => {
                    drop(wal);
                    sdisk.crash();
                    wal = reopen(&mut log, &mut hard, snapshot, None)?;
                }
                Op::Restart => {
                    drop(wal);
                    wal = reopen(&mut log, &mut hard, snapshot, None)?;
                }
                Op::SnapshotAndRelease { back } => {
                    let Some(last_e) = log.last() else { continue };
                    let idx = last_e.index.saturating_sub(back).max(log[0].index);
                    let t = log.iter().find(|e| e.index == idx).unwrap().term;
                    block_on(wal.save_snapshot_marker(&snap(idx, t))).unwrap();
                    wal.release_to(idx).unwrap();
                    log.retain(|e| e.index > idx);
                    snapshot = Some(idx);
                }
            }
        }
        drop(wal);
        sdisk.crash();
        reopen(&mut log, &mut hard, snapshot, None)?;
    }
}
