//! The compact layout's promises: a key's bytes are stored once however often it changes, and a
//! store restored from a snapshot shares them the same way.

use std::sync::Arc;

use super::support::*;
use crate::storage::mvcc::KvStore;

/// Every logged change of `key` holds the very bytes its index entry holds.
fn assert_key_stored_once(store: &KvStore, key: &[u8]) {
    let (indexed, _) = store.index.get_key_value(key).expect("key is indexed");
    let changes: Vec<_> = store.log.all().iter().filter(|c| *c.key == *key).collect();
    assert!(!changes.is_empty());
    for change in changes {
        assert!(
            Arc::ptr_eq(indexed, &change.key),
            "revision {:?} holds its own copy of the key",
            change.rev
        );
    }
}

#[test]
fn a_key_changed_many_times_is_stored_once() {
    let mut store = KvStore::new();
    for i in 0..5 {
        put(&mut store, "k", &format!("v{i}"));
        put(&mut store, "other", "x");
    }
    del(&mut store, "k", "");
    put(&mut store, "k", "again");
    assert_key_stored_once(&store, b"k");
    assert_key_stored_once(&store, b"other");
}

#[test]
fn a_restored_store_shares_key_bytes_too() {
    let mut store = KvStore::new();
    for i in 0..3 {
        put(&mut store, "k", &format!("v{i}"));
    }
    del(&mut store, "k", "");
    let restored = KvStore::from_snapshot(store.to_snapshot());
    assert_key_stored_once(&restored, b"k");
    assert_eq!(restored.size_bytes(), store.size_bytes());
}

/// A backup converted from elsewhere may list its changes in any order; the store logs them
/// in revision order all the same.
#[test]
fn a_snapshot_out_of_revision_order_restores_in_order() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "b", "2");
    put(&mut store, "a", "3");
    let mut snapshot = store.to_snapshot();
    snapshot.changes.reverse();
    let restored = KvStore::from_snapshot(snapshot);
    assert_eq!(restored.hash_kv(0), store.hash_kv(0));
    assert_eq!(get(&restored, "a").unwrap().value, b"3");
}
