use super::support::*;
use crate::pb::etcdserverpb::{DeleteRangeRequest, PutRequest};
use crate::storage::mvcc::{KvStore, MvccError};

#[test]
fn a_new_store_is_at_revision_one_with_no_keys() {
    let store = KvStore::new();
    assert_eq!(store.current_revision(), 1);
    assert_eq!(store.compacted_revision(), 0);
    let resp = store.range(&range_req("\0", "\0")).unwrap();
    assert_eq!(resp.header.unwrap().revision, 1);
    assert_eq!(resp.count, 0);
}

#[test]
fn each_put_bumps_the_revision_and_reports_it() {
    let mut store = KvStore::new();
    assert_eq!(put(&mut store, "a", "1"), 2);
    assert_eq!(put(&mut store, "b", "1"), 3);
    assert_eq!(store.current_revision(), 3);
}

#[test]
fn versions_count_puts_since_creation_and_reset_after_delete() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "a", "2");
    assert_eq!(get(&store, "a"), Some(kv("a", "2", 2, 3, 2)));
    del(&mut store, "a", "");
    put(&mut store, "a", "3");
    assert_eq!(get(&store, "a"), Some(kv("a", "3", 5, 5, 1)));
}

#[test]
fn put_returns_the_previous_value_only_when_asked() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let plain = store.put(&put_req("a", "2"), &no_leases).unwrap();
    assert_eq!(plain.prev_kv, None);
    let req = PutRequest {
        prev_kv: true,
        ..put_req("a", "3")
    };
    let asked = store.put(&req, &no_leases).unwrap();
    assert_eq!(asked.prev_kv, Some(kv("a", "2", 2, 3, 2)));
}

#[test]
fn put_with_prev_kv_on_a_new_key_returns_none() {
    let mut store = KvStore::new();
    let req = PutRequest {
        prev_kv: true,
        ..put_req("a", "1")
    };
    assert_eq!(store.put(&req, &no_leases).unwrap().prev_kv, None);
}

#[test]
fn put_with_an_unknown_lease_fails_without_writing() {
    let mut store = KvStore::new();
    let req = PutRequest {
        lease: 7,
        ..put_req("a", "1")
    };
    assert_eq!(
        store.put(&req, &no_leases),
        Err(MvccError::LeaseNotFound(7))
    );
    assert_eq!(store.current_revision(), 1);
    store.put(&req, &any_lease).unwrap();
    assert_eq!(get(&store, "a").unwrap().lease, 7);
}

#[test]
fn put_checks_the_lease_before_the_previous_value() {
    let mut store = KvStore::new();
    let req = PutRequest {
        lease: 7,
        ignore_value: true,
        ..put_req("a", "")
    };
    assert_eq!(
        store.put(&req, &no_leases),
        Err(MvccError::LeaseNotFound(7))
    );
}

#[test]
fn ignore_value_keeps_the_previous_value() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let req = PutRequest {
        ignore_value: true,
        lease: 5,
        ..put_req("a", "")
    };
    store.put(&req, &any_lease).unwrap();
    let got = get(&store, "a").unwrap();
    assert_eq!(
        (got.value.as_slice(), got.lease, got.version),
        (&b"1"[..], 5, 2)
    );
}

#[test]
fn ignore_lease_keeps_the_previous_lease() {
    let mut store = KvStore::new();
    let with_lease = PutRequest {
        lease: 9,
        ..put_req("a", "1")
    };
    store.put(&with_lease, &any_lease).unwrap();
    let req = PutRequest {
        ignore_lease: true,
        ..put_req("a", "2")
    };
    store.put(&req, &no_leases).unwrap();
    let got = get(&store, "a").unwrap();
    assert_eq!((got.value.as_slice(), got.lease), (&b"2"[..], 9));
}

#[test]
fn ignore_value_or_lease_on_a_missing_key_is_key_not_found() {
    let mut store = KvStore::new();
    for req in [
        PutRequest {
            ignore_value: true,
            ..put_req("a", "")
        },
        PutRequest {
            ignore_lease: true,
            ..put_req("a", "1")
        },
    ] {
        assert_eq!(store.put(&req, &no_leases), Err(MvccError::KeyNotFound));
    }
    assert_eq!(store.current_revision(), 1);
}

#[test]
fn delete_counts_deleted_keys_and_bumps_the_revision_once() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "b", "1");
    put(&mut store, "c", "1");
    let resp = store.delete_range(&del_req("a", "c")).unwrap();
    assert_eq!(resp.deleted, 2);
    assert_eq!(resp.header.unwrap().revision, 5);
    assert_eq!(store.current_revision(), 5);
    assert!(resp.prev_kvs.is_empty());
}

#[test]
fn delete_of_nothing_keeps_the_revision() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let resp = store.delete_range(&del_req("zzz", "")).unwrap();
    assert_eq!((resp.deleted, resp.header.unwrap().revision), (0, 2));
    assert_eq!(store.current_revision(), 2);
}

#[test]
fn delete_returns_previous_values_when_asked() {
    // etcd 3.4.23 prints {"header":{"revision":"14"},"deleted":"2","prev_kvs":[s3, s4]}
    // for `deleterange s3..s5 prev_kv` and then {"header":{"revision":"14"}}.
    let mut store = KvStore::new();
    put(&mut store, "s3", "b");
    put(&mut store, "s4", "a");
    let req = DeleteRangeRequest {
        prev_kv: true,
        ..del_req("s3", "s5")
    };
    let resp = store.delete_range(&req).unwrap();
    assert_eq!(
        resp.prev_kvs,
        vec![kv("s3", "b", 2, 2, 1), kv("s4", "a", 3, 3, 1)]
    );
    let again = store.delete_range(&req).unwrap();
    assert_eq!((again.deleted, again.prev_kvs.len()), (0, 0));
    assert_eq!(again.header.unwrap().revision, 4);
}

#[test]
fn delete_with_nul_range_end_deletes_every_key_from_key_on() {
    let mut store = KvStore::new();
    for k in ["a", "b", "c"] {
        put(&mut store, k, "1");
    }
    assert_eq!(del(&mut store, "b", "\0"), 2);
    assert!(get(&store, "a").is_some());
}
