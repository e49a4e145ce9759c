//! The KV requests (etcd's `v3_server.go` Range/Put/DeleteRange/Txn/Compact): writes go through
//! raft, reads answer from this member's store, after a ReadIndex barrier unless serializable.

use std::sync::{Arc, Mutex};

use crate::auth::{requests, AuthStore, Requester};
use crate::metrics::Metrics;
use crate::pb::detcdpb::raft_request;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use crate::server::header::Headers;
use crate::server::propose::Proposer;
use crate::server::ServerError;
use crate::storage::mvcc::KvStore;

pub struct KvServer {
    kv: Arc<Mutex<KvStore>>,
    auth: Arc<Mutex<AuthStore>>,
    proposer: Arc<Proposer>,
    headers: Headers,
    metrics: Arc<Metrics>,
}

impl KvServer {
    pub fn new(
        kv: Arc<Mutex<KvStore>>,
        auth: Arc<Mutex<AuthStore>>,
        proposer: Arc<Proposer>,
        headers: Headers,
        metrics: Arc<Metrics>,
    ) -> KvServer {
        KvServer {
            kv,
            auth,
            proposer,
            headers,
            metrics,
        }
    }

    /// The store itself, which watch streams read history from (they never write it).
    pub(crate) fn store(&self) -> &Mutex<KvStore> {
        &self.kv
    }

    pub async fn range(
        &self,
        requester: &Requester,
        request: RangeRequest,
    ) -> Result<RangeResponse, ServerError> {
        if !request.serializable {
            self.proposer.linearizable_read_barrier().await?;
        }
        requests::check_range(&self.auth.lock().unwrap(), requester, &request)?;
        self.metrics.mvcc_range.inc();
        let mut response = self.kv.lock().unwrap().range(&request)?;
        self.headers.complete(&mut response.header);
        Ok(response)
    }

    pub async fn put(
        &self,
        requester: &Requester,
        request: PutRequest,
    ) -> Result<PutResponse, ServerError> {
        let mut response: PutResponse = self
            .proposer
            .propose(requester, raft_request::Request::Put(request))
            .await?;
        self.headers.complete(&mut response.header);
        Ok(response)
    }

    pub async fn delete_range(
        &self,
        requester: &Requester,
        request: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, ServerError> {
        let mut response: DeleteRangeResponse = self
            .proposer
            .propose(requester, raft_request::Request::DeleteRange(request))
            .await?;
        self.headers.complete(&mut response.header);
        Ok(response)
    }

    pub async fn txn(
        &self,
        requester: &Requester,
        request: TxnRequest,
    ) -> Result<TxnResponse, ServerError> {
        if is_read_only_txn(&request) {
            return self.read_only_txn(requester, &request).await;
        }
        let mut response: TxnResponse = self
            .proposer
            .propose(requester, raft_request::Request::Txn(request))
            .await?;
        self.headers.complete(&mut response.header);
        Ok(response)
    }

    /// A read-only txn needs no log entry: read at a linearizable point, as etcd does, or
    /// locally when every range in it is serializable.
    async fn read_only_txn(
        &self,
        requester: &Requester,
        request: &TxnRequest,
    ) -> Result<TxnResponse, ServerError> {
        let serializable = request_ops(request)
            .all(|op| matches!(&op.request, Some(Op::RequestRange(r)) if r.serializable));
        if !serializable {
            self.proposer.linearizable_read_barrier().await?;
        }
        requests::check_txn(&self.auth.lock().unwrap(), requester, request)?;
        // Read-only: no put, so no lease is ever looked up.
        let no_leases = |_lease: i64| false;
        let mut response = self.kv.lock().unwrap().txn(request, &no_leases)?;
        self.headers.complete(&mut response.header);
        Ok(response)
    }

    pub async fn compact(
        &self,
        request: CompactionRequest,
    ) -> Result<CompactionResponse, ServerError> {
        let mut response: CompactionResponse = self
            .proposer
            .propose(
                &Requester::Server,
                raft_request::Request::Compaction(request),
            )
            .await?;
        self.headers.complete(&mut response.header);
        Ok(response)
    }
}

fn request_ops(request: &TxnRequest) -> impl Iterator<Item = &RequestOp> {
    request.success.iter().chain(request.failure.iter())
}

/// A txn whose every branch only reads (etcd's `isTxnReadonly`), recursively.
pub fn is_read_only_txn(request: &TxnRequest) -> bool {
    request_ops(request).all(|op| match &op.request {
        Some(Op::RequestRange(_)) | None => true,
        Some(Op::RequestTxn(txn)) => is_read_only_txn(txn),
        Some(Op::RequestPut(_) | Op::RequestDeleteRange(_)) => false,
    })
}
