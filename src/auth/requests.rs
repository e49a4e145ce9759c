//! The permissions each KV request needs (etcd's `checkTxnReqsPermission` and friends): a range
//! reads its range; a put writes its key and, with `prev_kv`, reads it; a delete writes its range
//! and, with `prev_kv`, reads it; a txn reads every compared key and needs what each op of both
//! branches needs, nested txns included, whichever branch runs.

use super::{Access, AuthError, AuthStore, Requester};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

pub fn check_range(
    store: &AuthStore,
    requester: &Requester,
    request: &RangeRequest,
) -> Result<(), AuthError> {
    store.check(requester, Access::Read, &request.key, &request.range_end)
}

pub fn check_put(
    store: &AuthStore,
    requester: &Requester,
    request: &PutRequest,
) -> Result<(), AuthError> {
    store.check(requester, Access::Write, &request.key, &[])?;
    if request.prev_kv {
        store.check(requester, Access::Read, &request.key, &[])?;
    }
    Ok(())
}

pub fn check_delete(
    store: &AuthStore,
    requester: &Requester,
    request: &DeleteRangeRequest,
) -> Result<(), AuthError> {
    store.check(requester, Access::Write, &request.key, &request.range_end)?;
    if request.prev_kv {
        store.check(requester, Access::Read, &request.key, &request.range_end)?;
    }
    Ok(())
}

pub fn check_txn(
    store: &AuthStore,
    requester: &Requester,
    request: &TxnRequest,
) -> Result<(), AuthError> {
    for compare in &request.compare {
        store.check(requester, Access::Read, &compare.key, &compare.range_end)?;
    }
    request
        .success
        .iter()
        .chain(request.failure.iter())
        .try_for_each(|op| match &op.request {
            Some(Op::RequestRange(range)) => check_range(store, requester, range),
            Some(Op::RequestPut(put)) => check_put(store, requester, put),
            Some(Op::RequestDeleteRange(delete)) => check_delete(store, requester, delete),
            Some(Op::RequestTxn(txn)) => check_txn(store, requester, txn),
            None => Ok(()),
        })
}
