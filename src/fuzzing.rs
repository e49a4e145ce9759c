//! Fuzz entry points: each takes arbitrary bytes and drives one of the places where detcd reads
//! bytes it did not write itself a moment ago — the WAL and snapshot files after a crash or bit
//! rot, client requests off the wire, command-line flags. The property is always the same: a
//! clear error or a correct result, never a panic, a hang or an unbounded allocation.
//!
//! `fuzz/` runs them under libFuzzer (`cargo fuzz run <target>`, nightly); `tests/fuzz_smoke.rs`
//! runs them on every `scripts/test` over a seeded corpus of random and mutated-valid inputs.

use std::path::Path;
use std::sync::Arc;

use prost::Message as _;
use raft::prelude::{Entry, HardState, SnapshotMetadata};

use crate::api::kv::{check_delete, check_put, check_range, check_txn};
use crate::io::{Disk, FileSystem, SimDisk};
use crate::pb::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};
use crate::raft_node::SnapshotFiles;
use crate::storage::mvcc::KvStore;
use crate::storage::wal::Wal;

const WAL_DIR: &str = "/fuzz/wal";

/// A WAL with a few entries, as a crash would leave it: the bytes of its one segment.
pub fn valid_wal_segment() -> Vec<u8> {
    let disk = SimDisk::new(0);
    let mut wal = Wal::create(Arc::new(disk.clone()), Path::new(WAL_DIR), b"meta").unwrap();
    let entries: Vec<Entry> = (1..=5)
        .map(|index| Entry {
            index,
            term: 1,
            data: vec![index as u8; 10].into(),
            ..Default::default()
        })
        .collect();
    let hard_state = HardState {
        term: 1,
        commit: 5,
        ..Default::default()
    };
    // A SimDisk without fsync latency: the save resolves at its first poll.
    futures::executor::block_on(wal.save(Some(&hard_state), &entries)).unwrap();
    let name = &wal.segment_names()[0];
    disk.read(&Path::new(WAL_DIR).join(name)).unwrap()
}

/// Replays a WAL whose only segment holds `data`: Ok with a contiguous log, or an error.
pub fn wal_replay(data: &[u8]) {
    let disk = SimDisk::new(0);
    let segment = Path::new(WAL_DIR).join("0000000000000000-0000000000000001.wal");
    disk.create_dir_all(Path::new(WAL_DIR)).unwrap();
    disk.write_atomic(&segment, data).unwrap();
    if let Ok((_, contents)) = Wal::open(Arc::new(disk), Path::new(WAL_DIR)) {
        for pair in contents.entries.windows(2) {
            assert_eq!(pair[0].index + 1, pair[1].index, "replayed log has a hole");
        }
    }
}

/// Loads a snapshot file holding `data`: Ok or a clear error.
pub fn snapshot_file(data: &[u8]) {
    let disk = SimDisk::new(0);
    let dir = Path::new("/fuzz/snap");
    disk.create_dir_all(dir).unwrap();
    let metadata = SnapshotMetadata {
        index: 7,
        term: 2,
        ..Default::default()
    };
    disk.write_atomic(&dir.join("0000000000000002-0000000000000007.snap"), data)
        .unwrap();
    let _ = SnapshotFiles::new(Arc::new(disk), dir.to_path_buf()).load(&metadata);
}

/// Reads `data` as a backup file, checked and unchecked (`--skip-hash-check`): Ok or a clear
/// error. What reads back restores into a store, and writes out and reads back the same.
pub fn backup_file(data: &[u8]) {
    let _ = crate::backup::decode(data, false);
    let Ok(backup) = crate::backup::decode(data, true) else {
        return;
    };
    if crate::backup::is_legacy(data) {
        return; // its hash vouched for it; only etcd's format is rewritten now
    }
    let kv = backup.data.kv.clone().unwrap_or_default();
    let store = KvStore::from_snapshot(kv.clone());
    let _ = store.hash_kv(0);
    let again = crate::backup::decode(&crate::backup::encode(&backup.data, 1), false)
        .expect("a backup detcd wrote reads back");
    let mut without_drops = kv;
    without_drops.deletes_at_compact_revision.clear();
    assert_eq!(again.data.kv, Some(without_drops));
    assert_eq!(again.data.leases, backup.data.leases);
    assert_eq!(again.data.auth, backup.data.auth);
}

/// A backup of a store with some history, for the fuzzers to damage: its key bucket fills
/// several leaf pages under a branch, so most damage lands in entries rather than padding.
pub fn valid_backup_file() -> Vec<u8> {
    use crate::pb::detcdpb::{LeaseSnapshot, SnapshotData};
    let mut store = KvStore::new();
    for i in 0..200u8 {
        let put = PutRequest {
            key: vec![b'a' + i % 7],
            value: vec![i; usize::from(i % 30)],
            lease: i64::from(i % 2),
            ..Default::default()
        };
        store.put(&put, &|_| true).unwrap();
    }
    store
        .delete_range(&DeleteRangeRequest {
            key: b"c".to_vec(),
            ..Default::default()
        })
        .unwrap();
    store.compact(12).unwrap();
    let data = SnapshotData {
        kv: Some(store.to_snapshot()),
        leases: vec![LeaseSnapshot {
            id: 1,
            ttl_seconds: 30,
            remaining_ttl_seconds: 10,
        }],
        ..Default::default()
    };
    crate::backup::encode(&data, 9)
}

/// Decodes `data` as each KV request, validates it as the API does, and applies what passes
/// to a store with some history; the store's revision never goes backwards.
pub fn kv_request(data: &[u8]) {
    let mut store = KvStore::new();
    for i in 0..8u8 {
        let put = PutRequest {
            key: vec![b'a' + i % 4],
            value: vec![i],
            ..Default::default()
        };
        store.put(&put, &|_| false).unwrap();
    }
    let _ = store.compact(3);
    let before = store.current_revision();
    let no_leases = |_lease: i64| false;
    if let Ok(request) = RangeRequest::decode(data) {
        if check_range(&request).is_ok() {
            let _ = store.range(&request);
        }
    }
    if let Ok(request) = PutRequest::decode(data) {
        if check_put(&request).is_ok() {
            let _ = store.put(&request, &no_leases);
        }
    }
    if let Ok(request) = DeleteRangeRequest::decode(data) {
        if check_delete(&request).is_ok() {
            let _ = store.delete_range(&request);
        }
    }
    if let Ok(request) = TxnRequest::decode(data) {
        if check_txn(&request, crate::config::MAX_TXN_OPS_DEFAULT).is_ok() {
            let _ = store.txn(&request, &no_leases);
        }
    }
    assert!(store.current_revision() >= before);
    let _ = store.hash_kv(0);
}

/// Parses `data` as NUL-separated command-line arguments: a config or a named error.
pub fn flags(data: &[u8]) {
    use clap::Parser as _;
    let text = String::from_utf8_lossy(data);
    let args = std::iter::once("detcd").chain(text.split('\0'));
    if let Ok(flags) = crate::config::Flags::try_parse_from(args) {
        let _ = flags.into_config();
    }
}
