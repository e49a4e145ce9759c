//! Response headers: which cluster and member answer, at which revision and raft term.

use std::sync::{Arc, Mutex};

use crate::pb::etcdserverpb::ResponseHeader;
use crate::raft_node::RaftStatus;
use crate::storage::mvcc::KvStore;
use crate::watched::Watched;

#[derive(Clone)]
pub struct Headers {
    cluster_id: u64,
    member_id: u64,
    raft_status: Arc<Watched<RaftStatus>>,
    kv: Arc<Mutex<KvStore>>,
}

impl Headers {
    pub fn new(
        cluster_id: u64,
        member_id: u64,
        raft_status: Arc<Watched<RaftStatus>>,
        kv: Arc<Mutex<KvStore>>,
    ) -> Headers {
        Headers {
            cluster_id,
            member_id,
            raft_status,
            kv,
        }
    }

    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub fn at(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_status.get().term,
        }
    }

    /// A header at the store's revision now.
    pub fn current(&self) -> ResponseHeader {
        self.at(self.kv.lock().unwrap().current_revision())
    }

    /// Completes the header the applier left (its revision only) with this member's identity.
    pub fn complete(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.at(revision));
    }
}
