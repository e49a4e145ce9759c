//! `etcdserverpb.KV` through the proxy (etcd's grpcproxy `kv.go`): serializable ranges from the
//! cache, everything else forwarded; writes drop the cache entries they touch.

use std::sync::Arc;

use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::cache::{KeyRange, Lookup};
use super::upstream::{Retry, RESPONSE_BYTES_MAX};
use super::Shared;
use crate::api::status::to_status;
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::server::ServerError;
use crate::storage::mvcc::MvccError;

pub struct KvProxy {
    shared: Arc<Shared>,
}

impl KvProxy {
    pub fn new(shared: Arc<Shared>) -> KvProxy {
        KvProxy { shared }
    }
}

fn client(channel: Channel) -> KvClient<Channel> {
    KvClient::new(channel).max_decoding_message_size(RESPONSE_BYTES_MAX)
}

#[tonic::async_trait]
impl Kv for KvProxy {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let shared = &self.shared;
        let metadata = request.metadata().clone();
        let mut message = request.into_inner();
        shared.namespace.range_request(&mut message);
        if message.serializable {
            match shared.cache.get(&message) {
                Lookup::Hit(mut response) => {
                    shared.metrics.cache_hit();
                    shared.namespace.range_response(&mut response);
                    return Ok(Response::new(response));
                }
                Lookup::Compacted => {
                    shared.metrics.cache_hit();
                    return Err(to_status(ServerError::Mvcc(MvccError::Compacted)));
                }
                Lookup::Miss => shared.metrics.cache_miss(),
            }
        }
        let mut response = shared
            .upstream
            .call(
                Retry::Always,
                &metadata,
                message.clone(),
                |ch, r| async move { client(ch).range(r).await },
            )
            .await?;
        shared.cache.add(&message, &response);
        shared.namespace.range_response(&mut response);
        Ok(Response::new(response))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let shared = &self.shared;
        shared.writable()?;
        let metadata = request.metadata().clone();
        let mut message = request.into_inner();
        shared.namespace.put_request(&mut message);
        let result = shared
            .upstream
            .call(
                Retry::IfNotSent,
                &metadata,
                message.clone(),
                |ch, r| async move { client(ch).put(r).await },
            )
            .await;
        // Even a failed write may have been applied: drop what it could have changed.
        shared.cache.invalidate(&KeyRange::new(&message.key, b""));
        let mut response = result?;
        shared.namespace.put_response(&mut response);
        Ok(Response::new(response))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let shared = &self.shared;
        shared.writable()?;
        let metadata = request.metadata().clone();
        let mut message = request.into_inner();
        shared.namespace.delete_request(&mut message);
        let result = shared
            .upstream
            .call(
                Retry::IfNotSent,
                &metadata,
                message.clone(),
                |ch, r| async move { client(ch).delete_range(r).await },
            )
            .await;
        shared
            .cache
            .invalidate(&KeyRange::new(&message.key, &message.range_end));
        let mut response = result?;
        shared.namespace.delete_response(&mut response);
        Ok(Response::new(response))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let shared = &self.shared;
        let metadata = request.metadata().clone();
        let mut message = request.into_inner();
        let mut written = Vec::new();
        txn_writes(&message, &mut written);
        if !written.is_empty() {
            shared.writable()?;
        }
        shared.namespace.txn_request(&mut message);
        let result = shared
            .upstream
            .call(
                Retry::IfNotSent,
                &metadata,
                message.clone(),
                |ch, r| async move { client(ch).txn(r).await },
            )
            .await;
        let mut written = Vec::new();
        txn_writes(&message, &mut written);
        for range in &written {
            shared.cache.invalidate(range);
        }
        let mut response = result?;
        shared.namespace.txn_response(&mut response);
        Ok(Response::new(response))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let shared = &self.shared;
        shared.writable()?;
        let metadata = request.metadata().clone();
        let message = request.into_inner();
        let response = shared
            .upstream
            .call(Retry::IfNotSent, &metadata, message, |ch, r| async move {
                client(ch).compact(r).await
            })
            .await?;
        shared.cache.compact(message.revision);
        Ok(Response::new(response))
    }
}

/// Every key range a txn's puts and deletes (in either branch, at any depth) may change.
fn txn_writes(txn: &TxnRequest, ranges: &mut Vec<KeyRange>) {
    for op in txn.success.iter().chain(&txn.failure) {
        match &op.request {
            Some(Op::RequestPut(put)) => ranges.push(KeyRange::new(&put.key, b"")),
            Some(Op::RequestDeleteRange(delete)) => {
                ranges.push(KeyRange::new(&delete.key, &delete.range_end))
            }
            Some(Op::RequestTxn(inner)) => txn_writes(inner, ranges),
            Some(Op::RequestRange(_)) | None => {}
        }
    }
}
