use super::support::*;
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::RangeRequest;
use crate::storage::mvcc::{KvStore, MvccError};

/// s1=c (rev 2), s2=a (3), s3=b (4), s4=a (5), then s2=z (6): the keys of
/// the etcdctl session the sort tests were checked against (there the
/// revisions were 8..12).
fn sorted_fixture() -> KvStore {
    let mut store = KvStore::new();
    for (k, v) in [
        ("s1", "c"),
        ("s2", "a"),
        ("s3", "b"),
        ("s4", "a"),
        ("s2", "z"),
    ] {
        put(&mut store, k, v);
    }
    store
}

fn range(store: &KvStore, req: RangeRequest) -> crate::pb::etcdserverpb::RangeResponse {
    store.range(&req).unwrap()
}

#[test]
fn a_range_end_selects_the_half_open_interval() {
    let store = sorted_fixture();
    let resp = range(&store, range_req("s2", "s4"));
    assert_eq!(keys(&resp), ["s2", "s3"]);
    assert_eq!(resp.count, 2);
}

#[test]
fn nul_key_and_nul_range_end_select_everything() {
    let store = sorted_fixture();
    assert_eq!(range(&store, range_req("\0", "\0")).count, 4);
    assert_eq!(keys(&range(&store, range_req("s3", "\0"))), ["s3", "s4"]);
}

#[test]
fn a_range_reports_the_current_revision_even_when_reading_the_past() {
    let store = sorted_fixture();
    let req = RangeRequest {
        revision: 3,
        ..range_req("s", "t")
    };
    let resp = range(&store, req);
    assert_eq!(keys(&resp), ["s1", "s2"]);
    assert_eq!(resp.header.unwrap().revision, 6);
}

#[test]
fn a_range_at_a_future_revision_fails() {
    let store = sorted_fixture();
    assert_eq!(get_at(&store, "s1", 7), Err(MvccError::FutureRevision));
    assert!(get_at(&store, "s1", 6).is_ok());
}

#[test]
fn a_negative_revision_means_the_current_one() {
    let store = sorted_fixture();
    assert_eq!(get_at(&store, "s2", -5).unwrap().unwrap().version, 2);
}

#[test]
fn limit_truncates_and_sets_more_but_count_counts_all() {
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            limit: 3,
            ..range_req("s", "t")
        },
    );
    assert_eq!(keys(&resp), ["s1", "s2", "s3"]);
    assert!(resp.more);
    assert_eq!(resp.count, 4);
    let exact = range(
        &store,
        RangeRequest {
            limit: 4,
            ..range_req("s", "t")
        },
    );
    assert!(!exact.more);
}

#[test]
fn sorting_happens_before_limit() {
    // etcd 3.4.23 prints kvs [s2, s1], "more":true, "count":"4" for
    // `range s..t sort_order=DESCEND sort_target=VALUE limit=2 keys_only`.
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            limit: 2,
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Value as i32,
            keys_only: true,
            ..range_req("s", "t")
        },
    );
    assert_eq!(keys(&resp), ["s2", "s1"]);
    assert!(resp.more);
    assert_eq!(resp.count, 4);
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(resp.kvs[0].version, 2);
}

#[test]
fn sort_order_none_with_a_non_key_target_sorts_ascending_with_ties_in_key_order() {
    // etcd 3.4.23 prints kvs [s1, s3], "more":true for sort_target=VERSION limit=2.
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            limit: 2,
            sort_target: SortTarget::Version as i32,
            ..range_req("s", "t")
        },
    );
    assert_eq!(keys(&resp), ["s1", "s3"]);
    let all = range(
        &store,
        RangeRequest {
            sort_target: SortTarget::Version as i32,
            ..range_req("s", "t")
        },
    );
    assert_eq!(keys(&all), ["s1", "s3", "s4", "s2"]);
}

#[test]
fn sort_order_none_with_limit_sorts_only_the_first_limit_plus_one_keys() {
    // etcd only fetches limit+1 keys when sort_order is NONE, then sorts
    // them by the target. etcd 3.4.23 prints kvs [a] for
    // `range a..e sort_target=VERSION limit=1` with a,b,c at version 2 and d at 1.
    let mut store = KvStore::new();
    for k in ["a", "b", "c", "a", "b", "c", "d"] {
        put(&mut store, k, "v");
    }
    let req = RangeRequest {
        limit: 1,
        sort_target: SortTarget::Version as i32,
        ..range_req("a", "e")
    };
    assert_eq!(keys(&range(&store, req.clone())), ["a"]);
    let ascend = RangeRequest {
        sort_order: SortOrder::Ascend as i32,
        ..req
    };
    assert_eq!(keys(&range(&store, ascend)), ["d"]);
}

#[test]
fn descending_key_order_reverses_the_keys() {
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            limit: 3,
            sort_order: SortOrder::Descend as i32,
            ..range_req("s", "t")
        },
    );
    assert_eq!(keys(&resp), ["s4", "s3", "s2"]);
    assert!(resp.more);
}

#[test]
fn descending_sort_keeps_ties_in_key_order() {
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Version as i32,
            ..range_req("s", "t")
        },
    );
    assert_eq!(keys(&resp), ["s2", "s1", "s3", "s4"]);
}

#[test]
fn sorting_by_create_and_mod_revision() {
    let store = sorted_fixture();
    let by = |target: SortTarget| {
        keys(&range(
            &store,
            RangeRequest {
                sort_order: SortOrder::Descend as i32,
                sort_target: target as i32,
                ..range_req("s", "t")
            },
        ))
    };
    assert_eq!(by(SortTarget::Create), ["s4", "s3", "s2", "s1"]);
    assert_eq!(by(SortTarget::Mod), ["s2", "s4", "s3", "s1"]);
}

#[test]
fn revision_filters_apply_after_count_and_before_limit() {
    // etcd 3.4.23 prints kvs [s2], "more":true, "count":"4" for
    // min_mod_revision=12 limit=1 (s2's mod revision there was 12), and
    // kvs [s1], "count":"4" (no "more") for max_create_revision=8.
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            min_mod_revision: 6,
            limit: 1,
            ..range_req("s", "t")
        },
    );
    assert_eq!(
        (keys(&resp), resp.more, resp.count),
        (vec!["s2".into()], false, 4)
    );
    let resp = range(
        &store,
        RangeRequest {
            min_mod_revision: 4,
            limit: 1,
            ..range_req("s", "t")
        },
    );
    assert_eq!(
        (keys(&resp), resp.more, resp.count),
        (vec!["s2".into()], true, 4)
    );
    let resp = range(
        &store,
        RangeRequest {
            max_create_revision: 2,
            ..range_req("s", "t")
        },
    );
    assert_eq!(
        (keys(&resp), resp.more, resp.count),
        (vec!["s1".into()], false, 4)
    );
}

#[test]
fn create_revision_and_max_mod_filters_combine() {
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            min_create_revision: 3,
            max_mod_revision: 5,
            ..range_req("s", "t")
        },
    );
    assert_eq!(keys(&resp), ["s3", "s4"]);
}

#[test]
fn a_negative_filter_still_applies() {
    // etcd 3.4.23 prints {"count":"4"} and no kvs for max_mod_revision=-1.
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            max_mod_revision: -1,
            ..range_req("s", "t")
        },
    );
    assert!(resp.kvs.is_empty());
    assert_eq!(resp.count, 4);
}

#[test]
fn count_only_returns_the_count_and_no_kvs_even_with_a_limit() {
    // etcd 3.4.23 prints {"count":"4"} (no "more") for count_only limit=1.
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            count_only: true,
            limit: 1,
            ..range_req("s", "t")
        },
    );
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (0, false, 4));
}

#[test]
fn keys_only_omits_values_but_keeps_metadata() {
    let store = sorted_fixture();
    let resp = range(
        &store,
        RangeRequest {
            keys_only: true,
            ..range_req("s1", "")
        },
    );
    assert_eq!(resp.kvs, vec![kv("s1", "", 2, 2, 1)]);
}

#[test]
fn a_deleted_key_is_visible_at_revisions_before_its_delete() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    del(&mut store, "a", "");
    assert_eq!(get_at(&store, "a", 2).unwrap(), Some(kv("a", "1", 2, 2, 1)));
    assert_eq!(get_at(&store, "a", 3).unwrap(), None);
}

#[test]
fn an_inverted_range_is_empty() {
    let store = sorted_fixture();
    assert_eq!(range(&store, range_req("s3", "s1")).count, 0);
}
