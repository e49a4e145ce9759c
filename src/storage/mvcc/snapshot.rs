//! The store as a raft snapshot payload: every retained revision, the two revision counters, and
//! the deletes the last compaction dropped. Restoring replays the retained changes in revision
//! order, which rebuilds exactly the index that compaction left, so a member restored from a
//! snapshot answers every read (and hashes, and cancels watches) like the member that took it.

use crate::pb::detcdpb::{KvChange, KvSnapshot};

use super::revision::Revision;
use super::{Key, KvStore};

impl KvStore {
    pub fn to_snapshot(&self) -> KvSnapshot {
        KvSnapshot {
            current_revision: self.current_rev,
            compact_revision: self.compact_rev,
            changes: self
                .log
                .all()
                .iter()
                .map(|change| KvChange {
                    main: change.rev.main,
                    sub: change.rev.sub,
                    kv: Some(change.kv()),
                    tombstone: change.tombstone,
                })
                .collect(),
            deletes_at_compact_revision: self
                .deletes_at_compact_rev
                .iter()
                .map(|key| key.to_vec())
                .collect(),
        }
    }

    /// The store a snapshot describes; takes the snapshot by value so its values move into the
    /// store rather than being copied (a restart of a big store would hold both).
    pub fn from_snapshot(snapshot: KvSnapshot) -> KvStore {
        let mut store = KvStore::new();
        let mut changes = snapshot.changes;
        // The log is kept in revision order; a snapshot detcd wrote is in that order already,
        // one converted from elsewhere (a backup) need not be.
        if !changes.is_sorted_by_key(|c| (c.main, c.sub)) {
            changes.sort_by_key(|c| (c.main, c.sub));
        }
        for change in changes {
            let rev = Revision::new(change.main, change.sub);
            assert!(
                rev.main <= snapshot.current_revision,
                "snapshot change {rev:?} beyond its revision {}",
                snapshot.current_revision
            );
            store.record(rev, change.kv.unwrap_or_default(), change.tombstone);
        }
        store.current_rev = snapshot.current_revision;
        store.compact_rev = snapshot.compact_revision;
        // The compaction dropped these tombstones, so replaying the changes cannot rebuild them.
        if !crate::planted_bug!(SnapshotForgetsCompactedDeletes) {
            store.deletes_at_compact_rev = snapshot
                .deletes_at_compact_revision
                .into_iter()
                .map(Key::from)
                .collect();
        }
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};

    fn put(store: &mut KvStore, key: &str, value: &str) {
        let request = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        store.put(&request, &|_| false).unwrap();
    }

    #[test]
    fn a_restored_store_answers_and_hashes_like_the_original() {
        let mut store = KvStore::new();
        for i in 0..10 {
            put(&mut store, &format!("k{}", i % 3), &format!("v{i}"));
        }
        store
            .delete_range(&DeleteRangeRequest {
                key: b"k1".to_vec(),
                ..Default::default()
            })
            .unwrap();
        store.compact(6).unwrap();
        put(&mut store, "k9", "last");

        let restored = KvStore::from_snapshot(store.to_snapshot());
        assert_eq!(restored.current_revision(), store.current_revision());
        assert_eq!(restored.compacted_revision(), store.compacted_revision());
        assert_eq!(restored.hash_kv(0).unwrap(), store.hash_kv(0).unwrap());
        assert_eq!(
            restored.deletes_dropped_by_compaction(),
            store.deletes_dropped_by_compaction()
        );
        for revision in [6, 8, 12, 0] {
            let all = RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision,
                ..Default::default()
            };
            assert_eq!(restored.range(&all).unwrap(), store.range(&all).unwrap());
        }
    }
}
