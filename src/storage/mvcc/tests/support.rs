//! Terse builders for requests, so tests read like the etcdctl sessions
//! they reproduce.

use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::response_op::Response;
use crate::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, ResponseOp,
    TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;
use crate::storage::mvcc::{KvStore, MvccError};

pub fn no_leases(_: i64) -> bool {
    false
}

pub fn any_lease(_: i64) -> bool {
    true
}

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

pub fn put(store: &mut KvStore, key: &str, value: &str) -> i64 {
    let resp = store.put(&put_req(key, value), &no_leases).unwrap();
    resp.header.unwrap().revision
}

pub fn del_req(key: &str, range_end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..Default::default()
    }
}

pub fn del(store: &mut KvStore, key: &str, range_end: &str) -> i64 {
    store
        .delete_range(&del_req(key, range_end))
        .unwrap()
        .deleted
}

pub fn range_req(key: &str, range_end: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..Default::default()
    }
}

pub fn get(store: &KvStore, key: &str) -> Option<KeyValue> {
    store.range(&range_req(key, "")).unwrap().kvs.pop()
}

pub fn get_at(store: &KvStore, key: &str, revision: i64) -> Result<Option<KeyValue>, MvccError> {
    let req = RangeRequest {
        revision,
        ..range_req(key, "")
    };
    store.range(&req).map(|mut r| r.kvs.pop())
}

pub fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

pub fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version,
        lease: 0,
    }
}

pub fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(put_req(key, value))),
    }
}

pub fn op_del(key: &str, range_end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(del_req(key, range_end))),
    }
}

pub fn op_range(key: &str, range_end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(range_req(key, range_end))),
    }
}

pub fn op_txn(
    compare: Vec<Compare>,
    success: Vec<RequestOp>,
    failure: Vec<RequestOp>,
) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestTxn(TxnRequest {
            compare,
            success,
            failure,
        })),
    }
}

pub fn txn_req(
    compare: Vec<Compare>,
    success: Vec<RequestOp>,
    failure: Vec<RequestOp>,
) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

pub fn txn(store: &mut KvStore, success: Vec<RequestOp>) -> Result<TxnResponse, MvccError> {
    store.txn(&txn_req(vec![], success, vec![]), &no_leases)
}

pub fn cmp(key: &str, target: CompareTarget, result: CompareResult, with: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(with),
    }
}

pub fn version_is(key: &str, result: CompareResult, version: i64) -> Compare {
    cmp(
        key,
        CompareTarget::Version,
        result,
        TargetUnion::Version(version),
    )
}

/// The revision in a response op's header (`None` if it has no header).
pub fn op_revision(op: &ResponseOp) -> Option<i64> {
    let header = match op.response.as_ref()? {
        Response::ResponseRange(r) => r.header.as_ref(),
        Response::ResponsePut(r) => r.header.as_ref(),
        Response::ResponseDeleteRange(r) => r.header.as_ref(),
        Response::ResponseTxn(r) => r.header.as_ref(),
    };
    header.map(|h| h.revision)
}

pub fn range_of(op: &ResponseOp) -> &RangeResponse {
    match &op.response {
        Some(Response::ResponseRange(r)) => r,
        other => panic!("not a range response: {other:?}"),
    }
}

pub fn txn_of(op: &ResponseOp) -> &TxnResponse {
    match &op.response {
        Some(Response::ResponseTxn(r)) => r,
        other => panic!("not a txn response: {other:?}"),
    }
}
