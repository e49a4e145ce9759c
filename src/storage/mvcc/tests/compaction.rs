use super::support::*;
use crate::storage::mvcc::{KvStore, MvccError};

/// a=1 (2), a=2 (3), b=1 (4), del a (5), c=1 (6)
fn history() -> KvStore {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "a", "2");
    put(&mut store, "b", "1");
    del(&mut store, "a", "");
    put(&mut store, "c", "1");
    store
}

#[test]
fn reads_below_the_compact_revision_fail_and_reads_at_it_succeed() {
    // etcd 3.4.23: after `compact 2`, `get a --rev 2` works and `--rev 1`
    // prints "mvcc: required revision has been compacted".
    let mut store = history();
    store.compact(3).unwrap();
    assert_eq!(store.compacted_revision(), 3);
    assert_eq!(get_at(&store, "a", 2), Err(MvccError::Compacted));
    assert_eq!(get_at(&store, "a", 3).unwrap(), Some(kv("a", "2", 2, 3, 2)));
    assert_eq!(get_at(&store, "a", 5).unwrap(), None);
    assert_eq!(get_at(&store, "b", 4).unwrap(), Some(kv("b", "1", 4, 4, 1)));
}

#[test]
fn compaction_keeps_every_read_at_or_after_it_unchanged() {
    let reference = history();
    for at in 1..=6 {
        let mut store = history();
        store.compact(at).unwrap();
        for rev in at..=6 {
            let all = |s: &KvStore| {
                let req = crate::pb::etcdserverpb::RangeRequest {
                    revision: rev,
                    ..range_req("\0", "\0")
                };
                s.range(&req).unwrap()
            };
            assert_eq!(all(&store), all(&reference), "compact {at}, read {rev}");
        }
    }
}

#[test]
fn compacting_past_a_delete_forgets_the_key() {
    let mut store = history();
    store.compact(5).unwrap();
    let events = store.events_since(5).unwrap();
    // a's tombstone at 5 is gone with a; only c's put at 6 is left from 5 on.
    let revs: Vec<_> = events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(revs, [6]);
    assert_eq!(get_at(&store, "a", 5).unwrap(), None);
}

/// The tombstone of a delete at the compaction revision goes with the compaction, and its event
/// with it: the store says which, so that a watch still waiting for it can be told.
#[test]
fn deletes_dropped_at_the_compact_revision_are_listed() {
    let mut store = history();
    store.compact(4).unwrap();
    assert!(store.deletes_dropped_by_compaction().is_empty());
    store.compact(5).unwrap();
    let dropped: Vec<(Vec<u8>, i64)> = store
        .deletes_dropped_by_compaction()
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (kv.key.clone(), kv.mod_revision)
        })
        .collect();
    assert_eq!(dropped, [(b"a".to_vec(), 5)]);
    store.compact(6).unwrap();
    assert!(store.deletes_dropped_by_compaction().is_empty());
}

#[test]
fn compacting_at_or_below_the_compact_revision_fails() {
    // etcd 3.4.23: a second `etcdctl compact 0` exits with status 1.
    let mut store = history();
    store.compact(0).unwrap();
    assert_eq!(store.compact(0), Err(MvccError::Compacted));
    store.compact(4).unwrap();
    assert_eq!(store.compact(4), Err(MvccError::Compacted));
    assert_eq!(store.compact(3), Err(MvccError::Compacted));
}

#[test]
fn compacting_a_future_revision_fails() {
    let mut store = history();
    assert_eq!(store.compact(7), Err(MvccError::FutureRevision));
    store.compact(6).unwrap();
    // Stale is reported before future, as in etcd.
    assert_eq!(store.compact(6), Err(MvccError::Compacted));
}

#[test]
fn a_fresh_store_can_be_compacted_at_revision_one() {
    let mut store = KvStore::new();
    store.compact(1).unwrap();
    assert_eq!(put(&mut store, "a", "1"), 2);
    assert_eq!(get_at(&store, "a", 1).unwrap(), None);
}

#[test]
fn hash_kv_refuses_the_compact_revision_and_the_future() {
    let mut store = history();
    store.compact(3).unwrap();
    assert_eq!(store.hash_kv(3), Err(MvccError::Compacted));
    assert_eq!(store.hash_kv(7), Err(MvccError::FutureRevision));
    assert_eq!(store.hash_kv(4).unwrap().1, 3);
}

#[test]
fn hash_kv_depends_on_the_revision_and_the_contents() {
    let store = history();
    assert_ne!(store.hash_kv(5).unwrap(), store.hash_kv(6).unwrap());
    let mut other = history();
    put(&mut other, "d", "1");
    assert_ne!(other.hash_kv(6).unwrap(), other.hash_kv(7).unwrap());
    assert_eq!(other.hash_kv(6).unwrap(), store.hash_kv(6).unwrap());
}

#[test]
fn hash_kv_matches_etcd() {
    // Same requests against a fresh etcd 3.4.23: put a 1, put a 2, put b 1,
    // del a, put c 1, then `etcdctl endpoint hashkv -w json` prints
    // {"hash":1306755273,"compact_revision":-1}; after `compact 3` it prints
    // {"hash":3684001879,"compact_revision":3}: compaction changes the hash,
    // because a's value at 3 is kept but no longer live at 6.
    let mut store = history();
    assert_eq!(store.hash_kv(0), Ok((1_306_755_273, -1)));
    store.compact(3).unwrap();
    assert_eq!(store.hash_kv(0), Ok((3_684_001_879, 3)));
}
