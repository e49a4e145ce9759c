//! Apply: turn committed raft entries into MVCC changes, in log order, and wake each entry's
//! waiter with the result.
//!
//! Applying is deterministic (same entries, same store) — that is what lets a restarted member
//! rebuild its store by re-applying its log, and what lets replicas be compared by hash.

use std::sync::{Arc, Mutex};

use prost::Message as _;
use raft::prelude::Entry;

use crate::pb::detcdpb::{raft_request, RaftRequest};
use crate::pb::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, LeaseCheckpointResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use crate::server::lease::{self, Lessor};
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
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint(LeaseCheckpointResponse),
}

pub type ApplyResult = Result<Applied, ServerError>;

pub struct Applier {
    kv: Arc<Mutex<KvStore>>,
    lessor: Arc<Mutex<Lessor>>,
    wait: Arc<Wait<ApplyResult>>,
    metrics: Arc<Metrics>,
    applied_index: u64,
}

impl Applier {
    pub fn new(
        kv: Arc<Mutex<KvStore>>,
        lessor: Arc<Mutex<Lessor>>,
        wait: Arc<Wait<ApplyResult>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Applier {
            kv,
            lessor,
            wait,
            metrics,
            applied_index: 0,
        }
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
        // Lock order: lessor, then kv.
        let mut lessor = self.lessor.lock().unwrap();
        let mut kv = self.kv.lock().unwrap();
        let revision_before = kv.current_revision();
        let lease_exists = |lease: i64| lessor.exists(lease);
        let result = match request.expect("a RaftRequest always carries a request") {
            raft_request::Request::Put(put) => {
                self.metrics.mvcc_put.inc();
                kv.put(&put, &lease_exists).map(Applied::Put)
            }
            raft_request::Request::DeleteRange(delete) => {
                self.metrics.mvcc_delete.inc();
                kv.delete_range(&delete).map(Applied::DeleteRange)
            }
            raft_request::Request::Txn(txn) => {
                self.metrics.mvcc_txn.inc();
                kv.txn(&txn, &lease_exists).map(Applied::Txn)
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
            request @ (raft_request::Request::LeaseGrant(_)
            | raft_request::Request::LeaseRevoke(_)
            | raft_request::Request::LeaseCheckpoint(_)) => {
                return lease::apply(&mut lessor, &mut kv, request);
            }
        };
        // Keys follow their writes: a put attaches its key to its lease, a delete detaches it.
        if kv.current_revision() > revision_before {
            lessor.track_writes(&kv, revision_before + 1);
        }
        result.map_err(ServerError::from)
    }
}
