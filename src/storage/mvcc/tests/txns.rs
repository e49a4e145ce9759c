use super::support::*;
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
};
use crate::storage::mvcc::{txn_has_duplicate_keys, KvStore, MvccError};

use CompareResult::{Equal, Greater, Less, NotEqual};

fn succeeds(store: &mut KvStore, compare: Vec<Compare>) -> bool {
    let req = txn_req(compare, vec![], vec![]);
    store.txn(&req, &no_leases).unwrap().succeeded
}

#[test]
fn a_txn_of_writes_bumps_the_revision_once_with_sub_revisions() {
    let mut store = KvStore::new();
    let resp = txn(&mut store, vec![op_put("a", "1"), op_put("b", "1")]).unwrap();
    assert_eq!(resp.header.unwrap().revision, 2);
    assert_eq!(store.current_revision(), 2);
    assert_eq!(get(&store, "a").unwrap().mod_revision, 2);
    assert_eq!(get(&store, "b").unwrap().mod_revision, 2);
}

#[test]
fn a_read_only_txn_keeps_the_revision() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let resp = txn(&mut store, vec![op_range("a", "")]).unwrap();
    assert_eq!(resp.header.unwrap().revision, 2);
    assert_eq!(store.current_revision(), 2);
}

#[test]
fn a_txn_deleting_only_missing_keys_keeps_the_revision() {
    // etcd 3.4.23 prints {"header":{"revision":"4"},"succeeded":true,
    // "responses":[{"response_delete_range":{"header":{"revision":"4"}}}]}.
    let mut store = KvStore::new();
    let resp = txn(&mut store, vec![op_del("missing", "")]).unwrap();
    assert_eq!(resp.header.unwrap().revision, 1);
    assert_eq!(op_revision(&resp.responses[0]), Some(1));
    assert_eq!(store.current_revision(), 1);
}

#[test]
fn nested_responses_carry_etcds_headers_and_reads_see_earlier_writes() {
    // etcd 3.4.23, at revision 6, for [range x, del nothere, put x, range x,
    // del nothere, txn{range x, del nothere2}, txn{}] prints header revisions
    // 6, 6, 7, 7 (with x at mod revision 7), 7, then a nested txn with
    // "header":{} whose range and delete say 7, then another "header":{}.
    let mut store = KvStore::new();
    for k in ["p", "q", "r", "s", "t"] {
        put(&mut store, k, "1");
    }
    let resp = txn(
        &mut store,
        vec![
            op_range("x", ""),
            op_del("nothere", ""),
            op_put("x", "1"),
            op_range("x", ""),
            op_del("nothere", ""),
            op_txn(
                vec![],
                vec![op_range("x", ""), op_del("nothere2", "")],
                vec![],
            ),
            op_txn(vec![], vec![], vec![]),
        ],
    )
    .unwrap();
    assert_eq!(resp.header.unwrap().revision, 7);
    let revs: Vec<_> = resp.responses.iter().map(op_revision).collect();
    assert_eq!(
        revs,
        [
            Some(6),
            Some(6),
            Some(7),
            Some(7),
            Some(7),
            Some(0),
            Some(0)
        ]
    );
    assert!(range_of(&resp.responses[0]).kvs.is_empty());
    assert_eq!(
        range_of(&resp.responses[3]).kvs,
        vec![kv("x", "1", 7, 7, 1)]
    );
    let nested = txn_of(&resp.responses[5]);
    assert_eq!(nested.header, Some(ResponseHeader::default()));
    assert!(nested.succeeded);
    let nested_revs: Vec<_> = nested.responses.iter().map(op_revision).collect();
    assert_eq!(nested_revs, [Some(7), Some(7)]);
    assert_eq!(range_of(&nested.responses[0]).kvs.len(), 1);
}

#[test]
fn nested_compares_see_the_store_before_the_txn() {
    // etcd 3.4.23: with y missing, [put y, txn{compare version(y) > 0 ?
    // range y : range zz}] takes the failure branch of the nested txn.
    let mut store = KvStore::new();
    let resp = txn(
        &mut store,
        vec![
            op_put("y", "1"),
            op_txn(
                vec![version_is("y", Greater, 0)],
                vec![op_range("y", "")],
                vec![op_range("zz", "")],
            ),
        ],
    )
    .unwrap();
    let nested = txn_of(&resp.responses[1]);
    assert!(!nested.succeeded);
    assert_eq!(op_revision(&nested.responses[0]), Some(2));
}

#[test]
fn the_failure_branch_runs_when_any_compare_fails() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let req = txn_req(
        vec![version_is("a", Equal, 1), version_is("a", Equal, 2)],
        vec![op_put("ok", "1")],
        vec![op_put("failed", "1")],
    );
    let resp = store.txn(&req, &no_leases).unwrap();
    assert!(!resp.succeeded);
    assert!(get(&store, "failed").is_some());
    assert!(get(&store, "ok").is_none());
}

#[test]
fn compares_on_every_target_and_result() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    store
        .put(
            &PutRequest {
                lease: 9,
                ..put_req("a", "m")
            },
            &any_lease,
        )
        .unwrap();
    // a: create 2, mod 3, version 2, value "m", lease 9
    let cases = [
        (CompareTarget::Version, TargetUnion::Version(2), Equal, true),
        (
            CompareTarget::Version,
            TargetUnion::Version(1),
            Greater,
            true,
        ),
        (
            CompareTarget::Create,
            TargetUnion::CreateRevision(2),
            Equal,
            true,
        ),
        (
            CompareTarget::Create,
            TargetUnion::CreateRevision(3),
            Less,
            true,
        ),
        (
            CompareTarget::Mod,
            TargetUnion::ModRevision(3),
            NotEqual,
            false,
        ),
        (CompareTarget::Mod, TargetUnion::ModRevision(4), Less, true),
        (
            CompareTarget::Value,
            TargetUnion::Value(b"m".to_vec()),
            Equal,
            true,
        ),
        (
            CompareTarget::Value,
            TargetUnion::Value(b"n".to_vec()),
            Less,
            true,
        ),
        (
            CompareTarget::Value,
            TargetUnion::Value(b"l".to_vec()),
            Greater,
            true,
        ),
        (CompareTarget::Lease, TargetUnion::Lease(9), Equal, true),
        (CompareTarget::Lease, TargetUnion::Lease(9), NotEqual, false),
    ];
    for (target, with, result, expected) in cases {
        let c = cmp("a", target, result, with.clone());
        assert_eq!(
            succeeds(&mut store, vec![c]),
            expected,
            "{target:?} {with:?} {result:?}"
        );
    }
}

#[test]
fn a_compare_on_a_missing_key_sees_zero_values() {
    // etcd 3.4.23 prints "succeeded":true for version(nokey) = 0.
    let mut store = KvStore::new();
    assert!(succeeds(&mut store, vec![version_is("nokey", Equal, 0)]));
    let create = cmp(
        "nokey",
        CompareTarget::Create,
        Equal,
        TargetUnion::CreateRevision(0),
    );
    assert!(succeeds(&mut store, vec![create]));
}

#[test]
fn a_value_compare_on_a_missing_key_always_fails() {
    // etcd 3.4.23 prints no "succeeded" (false) for value(nokey) != "x".
    let mut store = KvStore::new();
    for result in [Equal, NotEqual, Greater, Less] {
        let c = cmp(
            "nokey",
            CompareTarget::Value,
            result,
            TargetUnion::Value(b"x".to_vec()),
        );
        assert!(!succeeds(&mut store, vec![c]));
    }
}

#[test]
fn a_compare_with_a_target_union_of_another_kind_compares_against_zero() {
    // etcd 3.4.23: target VERSION with mod_revision=100 and GREATER succeeds
    // on a key at version 1.
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let c = cmp(
        "a",
        CompareTarget::Version,
        Greater,
        TargetUnion::ModRevision(100),
    );
    assert!(succeeds(&mut store, vec![c]));
}

#[test]
fn a_compare_with_range_end_requires_every_key_in_range_to_match() {
    // etcd 3.4.23: over s1..s4 (versions 1,2,1,1) version > 0 succeeds and
    // version > 1 fails.
    let mut store = KvStore::new();
    for k in ["s1", "s2", "s3", "s4", "s2"] {
        put(&mut store, k, "v");
    }
    let over = |version| Compare {
        range_end: b"t".to_vec(),
        ..version_is("s", Greater, version)
    };
    assert!(succeeds(&mut store, vec![over(0)]));
    assert!(!succeeds(&mut store, vec![over(1)]));
}

#[test]
fn a_txn_put_with_an_unknown_lease_fails_and_writes_nothing() {
    let mut store = KvStore::new();
    let leased = RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            lease: 3,
            ..put_req("b", "1")
        })),
    };
    let req = txn_req(vec![], vec![op_put("a", "1"), leased], vec![]);
    assert_eq!(
        store.txn(&req, &no_leases),
        Err(MvccError::LeaseNotFound(3))
    );
    assert_eq!(store.current_revision(), 1);
    assert!(get(&store, "a").is_none());
}

#[test]
fn a_txn_checks_ignore_value_against_the_store_before_the_txn() {
    let mut store = KvStore::new();
    let ignore = |key: &str| RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            ignore_value: true,
            ..put_req(key, "")
        })),
    };
    let req = txn_req(vec![], vec![op_put("a", "1"), ignore("b")], vec![]);
    assert_eq!(store.txn(&req, &no_leases), Err(MvccError::KeyNotFound));
    assert_eq!(store.current_revision(), 1);
}

#[test]
fn a_txn_checks_puts_before_ranges() {
    let mut store = KvStore::new();
    let future = RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            revision: 100,
            ..range_req("a", "")
        })),
    };
    let leased = RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            lease: 3,
            ..put_req("b", "1")
        })),
    };
    let req = txn_req(vec![], vec![future.clone(), leased], vec![]);
    assert_eq!(
        store.txn(&req, &no_leases),
        Err(MvccError::LeaseNotFound(3))
    );
    let req = txn_req(vec![], vec![future], vec![]);
    assert_eq!(store.txn(&req, &no_leases), Err(MvccError::FutureRevision));
}

#[test]
fn a_txn_range_at_the_txns_own_revision_is_a_future_revision() {
    // etcd 3.4.23 prints "mvcc: required revision is a future revision" for
    // [put n, range n at revision 100]; the check uses the pre-txn revision.
    let mut store = KvStore::new();
    let own = RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            revision: 2,
            ..range_req("n", "")
        })),
    };
    let req = txn_req(vec![], vec![op_put("n", "1"), own], vec![]);
    assert_eq!(store.txn(&req, &no_leases), Err(MvccError::FutureRevision));
}

#[test]
fn a_txn_range_at_a_negative_revision_after_compaction_is_compacted() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    store.compact(2).unwrap();
    let negative = RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            revision: -1,
            ..range_req("a", "")
        })),
    };
    let req = txn_req(vec![], vec![negative], vec![]);
    assert_eq!(store.txn(&req, &no_leases), Err(MvccError::Compacted));
    // Outside a txn a negative revision just means "current".
    assert!(get_at(&store, "a", -1).unwrap().is_some());
}

#[test]
fn a_nested_put_then_a_later_nested_delete_of_the_same_key_is_allowed() {
    // etcd 3.4.23: [txn{put k}, txn{del k}] succeeds at one revision with
    // the delete reporting deleted 1; the reverse order is a duplicate key.
    let mut store = KvStore::new();
    let ok = txn_req(
        vec![],
        vec![
            op_txn(vec![], vec![op_put("k", "1")], vec![]),
            op_txn(vec![], vec![op_del("k", "")], vec![]),
        ],
        vec![],
    );
    assert!(!txn_has_duplicate_keys(&ok));
    let resp = store.txn(&ok, &no_leases).unwrap();
    assert_eq!(resp.header.unwrap().revision, 2);
    let deleted = match &txn_of(&resp.responses[1]).responses[0].response {
        Some(crate::pb::etcdserverpb::response_op::Response::ResponseDeleteRange(d)) => d.deleted,
        other => panic!("{other:?}"),
    };
    assert_eq!(deleted, 1);
    assert!(get(&store, "k").is_none());
    assert_eq!(get_at(&store, "k", 1).unwrap(), None);

    let reversed = txn_req(
        vec![],
        vec![
            op_txn(vec![], vec![op_del("k", "")], vec![]),
            op_txn(vec![], vec![op_put("k", "1")], vec![]),
        ],
        vec![],
    );
    assert!(txn_has_duplicate_keys(&reversed));
    assert_eq!(
        store.txn(&reversed, &no_leases),
        Err(MvccError::DuplicateKey)
    );
}

#[test]
fn duplicate_key_rule_follows_etcd() {
    let dup = |success: Vec<RequestOp>| txn_has_duplicate_keys(&txn_req(vec![], success, vec![]));
    // Two puts of one key, or a put and a delete of it, at one level.
    assert!(dup(vec![op_put("a", "1"), op_put("a", "2")]));
    assert!(dup(vec![op_put("a", "1"), op_del("a", "")]));
    assert!(dup(vec![op_del("a", "b"), op_put("a", "1")]));
    // Deleting twice is fine, and so are different keys.
    assert!(!dup(vec![op_del("a", ""), op_del("a", "")]));
    assert!(!dup(vec![
        op_put("a", "1"),
        op_put("b", "1"),
        op_del("c", "")
    ]));
    // A from-key delete ("\0" range end) conflicts with nothing: etcd 3.4.23
    // accepts [put b, del a.."\0"] and reports deleted 3.
    assert!(!dup(vec![op_put("b", "1"), op_del("a", "\0")]));
    // A nested put against an outer put or delete.
    assert!(dup(vec![
        op_put("a", "1"),
        op_txn(vec![], vec![op_put("a", "2")], vec![])
    ]));
    assert!(dup(vec![
        op_del("a", ""),
        op_txn(vec![], vec![op_put("a", "2")], vec![])
    ]));
    // A nested delete against an outer put.
    assert!(dup(vec![
        op_put("a", "1"),
        op_txn(vec![], vec![op_del("a", "")], vec![])
    ]));
    // Then and else branches of one nested txn may put the same key...
    assert!(!dup(vec![op_txn(
        vec![],
        vec![op_put("a", "1")],
        vec![op_put("a", "2")]
    )]));
    // ...but not a key an earlier nested txn put.
    assert!(dup(vec![
        op_txn(vec![], vec![op_put("a", "1")], vec![]),
        op_txn(vec![], vec![], vec![op_put("a", "2")]),
    ]));
    // Success and failure of the top level are checked separately.
    let both = txn_req(vec![], vec![op_put("a", "1")], vec![op_put("a", "2")]);
    assert!(!txn_has_duplicate_keys(&both));
    let in_failure = txn_req(vec![], vec![], vec![op_put("a", "1"), op_put("a", "2")]);
    assert!(txn_has_duplicate_keys(&in_failure));
}

#[test]
fn a_from_key_delete_and_a_put_in_one_txn_apply_in_order() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "b", "1");
    let resp = txn(&mut store, vec![op_put("b", "2"), op_del("a", "\0")]).unwrap();
    assert_eq!(resp.header.unwrap().revision, 4);
    assert_eq!(store.range(&range_req("\0", "\0")).unwrap().count, 0);
    let resp = txn(&mut store, vec![op_del("a", "\0"), op_put("b", "3")]).unwrap();
    assert_eq!(resp.header.unwrap().revision, 5);
    assert_eq!(get(&store, "b"), Some(kv("b", "3", 5, 5, 1)));
}

#[test]
fn a_put_with_ignore_value_after_an_earlier_delete_in_the_txn_rolls_back() {
    // Passes etcd's checks (b exists before the txn) but the from-key delete
    // removes b first. etcd 3.4.23 crashes on [del za.."\0", put zb
    // ignore_value] with "panic: unexpected error during txn: etcdserver: key
    // not found"; we refuse the whole txn instead.
    let mut store = KvStore::new();
    put(&mut store, "b", "1");
    let ignore = RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            ignore_value: true,
            ..put_req("b", "")
        })),
    };
    let req = txn_req(
        vec![],
        vec![op_put("c", "1"), op_del("a", "\0"), ignore],
        vec![],
    );
    assert_eq!(store.txn(&req, &no_leases), Err(MvccError::KeyNotFound));
    assert_eq!(store.current_revision(), 2);
    assert_eq!(get(&store, "b"), Some(kv("b", "1", 2, 2, 1)));
    assert!(get(&store, "c").is_none());
    assert_eq!(put(&mut store, "c", "1"), 3);
}

#[test]
fn an_empty_request_op_gets_an_empty_response_op() {
    let mut store = KvStore::new();
    let resp = txn(&mut store, vec![RequestOp { request: None }]).unwrap();
    assert_eq!(resp.responses[0].response, None);
}

#[test]
fn unknown_compare_results_hold_as_in_etcd() {
    let mut store = KvStore::new();
    let c = Compare {
        result: 42,
        ..version_is("a", Equal, 5)
    };
    assert!(succeeds(&mut store, vec![c]));
}

#[test]
fn a_txn_without_branches_or_compares_succeeds() {
    let mut store = KvStore::new();
    let resp = store.txn(&TxnRequest::default(), &no_leases).unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.header.unwrap().revision, 1);
}
