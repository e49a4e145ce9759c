//! Apply: turn committed raft entries into MVCC changes, in log order, and wake each entry's
//! waiter with the result.
//!
//! Applying is deterministic (same entries, same store) — that is what lets a restarted member
//! rebuild its store by re-applying its log, and what lets replicas be compared by hash.

use std::sync::{Arc, Mutex};

use prost::Message as _;
use raft::prelude::Entry;
use tokio::sync::watch;

use crate::pb::detcdpb::{raft_request, RaftRequest};
use crate::pb::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use crate::server::metrics::Metrics;
use crate::server::wait::Wait;
use crate::server::ServerError;
use crate::storage::mvcc::KvStore;

/// What a waiter receives for its applied request.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
}

pub type ApplyResult = Result<Applied, ServerError>;

pub struct Applier {
    kv: Arc<Mutex<KvStore>>,
    wait: Arc<Wait<ApplyResult>>,
    metrics: Arc<Metrics>,
    applied_index: u64,
    /// The store's revision after the last applied entry, announced to watch streams: O(1) and
    /// never blocking, so slow watchers cannot hold up applying.
    applied_revision: watch::Sender<i64>,
}

impl Applier {
    pub fn new(
        kv: Arc<Mutex<KvStore>>,
        wait: Arc<Wait<ApplyResult>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Applier {
            kv,
            wait,
            metrics,
            applied_index: 0,
            applied_revision: watch::channel(0).0,
        }
    }

    /// Follows the store's revision as entries are applied (see `server::watchable`).
    pub fn applied_revision(&self) -> watch::Receiver<i64> {
        self.applied_revision.subscribe()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn set_applied_index(&mut self, index: u64) {
        assert!(
            index > self.applied_index,
            "applied index must grow: {index} after {}",
            self.applied_index
        );
        self.applied_index = index;
        self.metrics.proposals_applied.set(index);
    }

    /// The proposal under `id` will never be applied: wake its waiter with `error` now.
    pub fn reject(&self, id: u64, error: ServerError) {
        self.metrics.proposals_failed.inc();
        self.wait.trigger(id, Err(error));
    }

    /// Applies one normal entry. Empty entries are the no-ops a new leader appends.
    pub fn apply_normal(&mut self, entry: &Entry) {
        if entry.get_data().is_empty() {
            return;
        }
        let request = RaftRequest::decode(entry.get_data())
            .expect("normal entries hold RaftRequests written by this server");
        let result = self.apply_request(request.request);
        self.metrics.proposals_committed.set(entry.index);
        self.wait.trigger(request.id, result);
    }

    fn apply_request(&mut self, request: Option<raft_request::Request>) -> ApplyResult {
        // Leases are not granted by this version, so no lease id can exist yet.
        let no_leases = |_lease: i64| false;
        let mut kv = self.kv.lock().unwrap();
        let result = match request.expect("a RaftRequest always carries a request") {
            raft_request::Request::Put(put) => {
                self.metrics.mvcc_put.inc();
                kv.put(&put, &no_leases).map(Applied::Put)
            }
            raft_request::Request::DeleteRange(delete) => {
                self.metrics.mvcc_delete.inc();
                kv.delete_range(&delete).map(Applied::DeleteRange)
            }
            raft_request::Request::Txn(txn) => {
                self.metrics.mvcc_txn.inc();
                kv.txn(&txn, &no_leases).map(Applied::Txn)
            }
            raft_request::Request::Compaction(compaction) => {
                kv.compact(compaction.revision).map(|()| {
                    Applied::Compaction(CompactionResponse {
                        header: Some(ResponseHeader {
                            revision: kv.current_revision(),
                            ..Default::default()
                        }),
                    })
                })
            }
        };
        self.applied_revision.send_replace(kv.current_revision());
        result.map_err(ServerError::from)
    }
}
