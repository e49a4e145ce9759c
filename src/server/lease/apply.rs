//! Applying the lease entries of the raft log: grant, revoke (with its keys, in one revision)
//! and checkpoint. Same entries, same leases on every member.

use crate::pb::detcdpb::raft_request::Request;
use crate::pb::etcdserverpb::{
    LeaseCheckpointResponse, LeaseGrantResponse, LeaseRevokeResponse, ResponseHeader,
};
use crate::server::apply::{Applied, ApplyResult};
use crate::storage::mvcc::KvStore;

use super::Lessor;

/// Applies one lease request; `request` must be one of the lease variants.
pub fn apply(lessor: &mut Lessor, kv: &mut KvStore, request: Request) -> ApplyResult {
    match request {
        Request::LeaseGrant(grant) => {
            let ttl = lessor.grant(grant.id, grant.ttl)?;
            Ok(Applied::LeaseGrant(LeaseGrantResponse {
                header: header(kv),
                id: grant.id,
                ttl,
                error: String::new(),
            }))
        }
        Request::LeaseRevoke(revoke) => {
            lessor.revoke(revoke.id, kv)?;
            Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
                header: header(kv),
            }))
        }
        Request::LeaseCheckpoint(checkpoint) => {
            lessor.checkpoint(&checkpoint.checkpoints);
            Ok(Applied::LeaseCheckpoint(LeaseCheckpointResponse {
                header: header(kv),
            }))
        }
        other => unreachable!("not a lease request: {other:?}"),
    }
}

fn header(kv: &KvStore) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: kv.current_revision(),
        ..Default::default()
    })
}
