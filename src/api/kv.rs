//! `etcdserverpb.KV`: request validation as etcd does it before raft (v3rpc `key.go`), then the
//! server. Validation lives here, not in a tower layer, so the simulator runs it too.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::requester::requester;
use crate::api::status::to_status;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use crate::server::{EtcdServer, ServerError};
use crate::storage::mvcc::txn_has_duplicate_keys;

pub struct KvService {
    server: Arc<EtcdServer>,
}

impl KvService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        KvService { server }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        let request = request.into_inner();
        check_range(&request).map_err(to_status)?;
        self.server
            .kv()
            .range(&requester, request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        let request = request.into_inner();
        check_put(&request).map_err(to_status)?;
        self.server
            .kv()
            .put(&requester, request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        let request = request.into_inner();
        check_delete(&request).map_err(to_status)?;
        self.server
            .kv()
            .delete_range(&requester, request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        let request = request.into_inner();
        check_txn(&request, self.server.config().max_txn_ops).map_err(to_status)?;
        self.server
            .kv()
            .txn(&requester, request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        // etcd 3.4 lets any client compact (no permission is checked), but a token must be valid.
        requester(&self.server, &request)?;
        self.server
            .kv()
            .compact(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

pub(crate) fn check_range(request: &RangeRequest) -> Result<(), ServerError> {
    if request.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    Ok(())
}

pub(crate) fn check_put(request: &PutRequest) -> Result<(), ServerError> {
    if request.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    if request.ignore_value && !request.value.is_empty() {
        return Err(ServerError::ValueProvided);
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(ServerError::LeaseProvided);
    }
    Ok(())
}

pub(crate) fn check_delete(request: &DeleteRangeRequest) -> Result<(), ServerError> {
    if request.key.is_empty() {
        return Err(ServerError::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: at most `max_ops` compares, and as many ops per branch, at every
/// level of nesting (`--max-txn-ops`); no empty keys; no key written twice.
pub(crate) fn check_txn(request: &TxnRequest, max_ops: usize) -> Result<(), ServerError> {
    check_txn_shape(request, max_ops)?;
    if txn_has_duplicate_keys(request) {
        return Err(ServerError::DuplicateKey);
    }
    Ok(())
}

fn check_txn_shape(request: &TxnRequest, max_ops: usize) -> Result<(), ServerError> {
    if request.compare.len() > max_ops
        || request.success.len() > max_ops
        || request.failure.len() > max_ops
    {
        return Err(ServerError::TooManyOps);
    }
    if request.compare.iter().any(|compare| compare.key.is_empty()) {
        return Err(ServerError::EmptyKey);
    }
    request
        .success
        .iter()
        .chain(request.failure.iter())
        .try_for_each(|op| check_op(op, max_ops))
}

fn check_op(op: &RequestOp, max_ops: usize) -> Result<(), ServerError> {
    match &op.request {
        Some(Op::RequestRange(range)) => check_range(range),
        Some(Op::RequestPut(put)) => check_put(put),
        Some(Op::RequestDeleteRange(delete)) => check_delete(delete),
        Some(Op::RequestTxn(txn)) => check_txn_shape(txn, max_ops),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_TXN_OPS_DEFAULT;

    fn put_op(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn empty_keys_are_rejected_everywhere() {
        assert_eq!(
            check_range(&RangeRequest::default()),
            Err(ServerError::EmptyKey)
        );
        assert_eq!(
            check_put(&PutRequest::default()),
            Err(ServerError::EmptyKey)
        );
        assert_eq!(
            check_delete(&DeleteRangeRequest::default()),
            Err(ServerError::EmptyKey)
        );
        let txn = TxnRequest {
            success: vec![put_op("")],
            ..Default::default()
        };
        assert_eq!(
            check_txn(&txn, MAX_TXN_OPS_DEFAULT),
            Err(ServerError::EmptyKey)
        );
    }

    #[test]
    fn ignore_value_with_a_value_is_rejected() {
        let put = PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(check_put(&put), Err(ServerError::ValueProvided));
    }

    fn puts(count: usize) -> Vec<RequestOp> {
        (0..count).map(|i| put_op(&format!("k{i}"))).collect()
    }

    #[test]
    fn txn_ops_are_bounded_per_list_and_at_every_level() {
        let at_limit = TxnRequest {
            success: puts(4),
            failure: puts(4),
            ..Default::default()
        };
        assert_eq!(check_txn(&at_limit, 4), Ok(()));
        let over = TxnRequest {
            failure: puts(5),
            ..Default::default()
        };
        assert_eq!(check_txn(&over, 4), Err(ServerError::TooManyOps));
        let nested = TxnRequest {
            success: vec![RequestOp {
                request: Some(Op::RequestTxn(over)),
            }],
            ..Default::default()
        };
        assert_eq!(check_txn(&nested, 4), Err(ServerError::TooManyOps));
        assert_eq!(check_txn(&nested, 5), Ok(()));
        let too_many_compares = TxnRequest {
            compare: (0..=MAX_TXN_OPS_DEFAULT)
                .map(|i| crate::pb::etcdserverpb::Compare {
                    key: format!("k{i}").into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            check_txn(&too_many_compares, MAX_TXN_OPS_DEFAULT),
            Err(ServerError::TooManyOps)
        );
    }

    #[test]
    fn duplicate_puts_in_one_txn_are_rejected() {
        let txn = TxnRequest {
            success: vec![put_op("a"), put_op("a")],
            ..Default::default()
        };
        assert_eq!(
            check_txn(&txn, MAX_TXN_OPS_DEFAULT),
            Err(ServerError::DuplicateKey)
        );
    }
}
