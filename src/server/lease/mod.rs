//! Leases (etcd's `lease` package and the lease half of `v3_server.go`).
//!
//! Grant, revoke and checkpoint are raft entries: every member applies them in log order
//! ([`apply`]), and a restart rebuilds all leases by re-applying the log. Keep-alives are not:
//! the leader alone keeps expiry times, in memory ([`lessor`]), and its [`duties`] task proposes
//! the revoke of each lease that expires.

mod apply;
mod duties;
pub mod lessor;
#[cfg(test)]
mod tests;

pub use apply::apply;
pub use lessor::Lessor;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Requester;
use crate::pb::detcdpb::raft_request;
use crate::pb::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::server::apply::Applied;
use crate::server::{EtcdServer, ServerError};

/// How often a keep-alive that reached the leader before it promoted its leases asks again.
const PROMOTION_POLL_INTERVAL: Duration = Duration::from_millis(50);

impl EtcdServer {
    fn current_revision(&self) -> i64 {
        self.kv.lock().unwrap().current_revision()
    }

    /// Starts the leader's lease duties; they end when the server stops.
    pub(super) fn start_lease_duties(self: &Arc<Self>) {
        tokio::spawn(duties::run(self.clone()));
    }

    pub async fn lease_grant(
        &self,
        requester: &Requester,
        mut request: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, ServerError> {
        // A leader grants after promoting its leases, so the new lease starts to expire at once.
        if self.raft_status().leader_id == self.member_id {
            self.await_primary().await?;
        }
        // No id given: choose one from the request-id generator (unique per member and run),
        // positive as etcd's are.
        while request.id == 0 {
            let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
            request.id = (id & i64::MAX as u64) as i64;
        }
        match self
            .propose_as(requester, raft_request::Request::LeaseGrant(request))
            .await?
        {
            Applied::LeaseGrant(mut response) => {
                self.with_header(&mut response.header);
                Ok(response)
            }
            other => unreachable!("a lease grant applied as {other:?}"),
        }
    }

    pub async fn lease_revoke(
        &self,
        requester: &Requester,
        request: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, ServerError> {
        match self
            .propose_as(requester, raft_request::Request::LeaseRevoke(request))
            .await?
        {
            Applied::LeaseRevoke(mut response) => {
                self.with_header(&mut response.header);
                Ok(response)
            }
            other => unreachable!("a lease revoke applied as {other:?}"),
        }
    }

    /// Revokes a lease this member, as the leader of `term`, found expired.
    async fn lease_revoke_expired(&self, term: u64, id: i64) -> Result<(), ServerError> {
        let request = raft_request::Request::LeaseRevoke(LeaseRevokeRequest { id });
        match self.propose_as_leader_of(term, request).await? {
            Applied::LeaseRevoke(_) => Ok(()),
            other => unreachable!("a lease revoke applied as {other:?}"),
        }
    }

    /// Records remaining TTLs: due ones this member found as the leader of `term`, or (`None`)
    /// the clearing of one by a keep-alive, which only ever gives a lease more time.
    async fn lease_checkpoint(
        &self,
        term: Option<u64>,
        checkpoints: Vec<LeaseCheckpoint>,
    ) -> Result<(), ServerError> {
        let request =
            raft_request::Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints });
        let applied = match term {
            Some(term) => self.propose_as_leader_of(term, request).await?,
            None => self.propose(request).await?,
        };
        match applied {
            Applied::LeaseCheckpoint(_) => Ok(()),
            other => unreachable!("a lease checkpoint applied as {other:?}"),
        }
    }

    /// One keep-alive. A lease that does not exist (or has expired) answers TTL 0, as etcd's
    /// keep-alive stream does.
    pub async fn lease_renew(&self, id: i64) -> Result<LeaseKeepAliveResponse, ServerError> {
        let renewed = self.renew_on_leader(id).await;
        let ttl = match renewed {
            Ok(renewed) => {
                if renewed.clear_checkpoint {
                    self.lease_checkpoint(
                        None,
                        vec![LeaseCheckpoint {
                            id,
                            remaining_ttl: 0,
                        }],
                    )
                    .await?;
                }
                renewed.ttl_seconds
            }
            Err(ServerError::LeaseNotFound) => 0,
            Err(error) => return Err(error),
        };
        Ok(LeaseKeepAliveResponse {
            header: Some(self.header(self.current_revision())),
            id,
            ttl,
        })
    }

    /// Renews on this member if it is the leader; `api::lease_forward` sends a follower's
    /// keep-alives to the leader.
    async fn renew_on_leader(&self, id: i64) -> Result<lessor::Renewed, ServerError> {
        if !self.await_primary().await? {
            return Err(ServerError::NotLeader);
        }
        if !crate::planted_bug!(RenewWithoutQuorum) {
            self.confirm_leadership().await?;
        }
        self.lessor.lock().unwrap().renew(id)
    }

    /// A quorum round (a ReadIndex) proves this member still led after the request arrived
    /// (etcd's `ensureLeadership`): a leader cut off from the majority believes it leads until
    /// check-quorum deposes it, while a new leader may already have revoked the lease.
    async fn confirm_leadership(&self) -> Result<(), ServerError> {
        let term = self.raft_status().term;
        let (reply, receiver) = tokio::sync::oneshot::channel();
        self.submit(crate::raft_node::RaftInput::ReadIndex { reply })
            .await?;
        self.await_with_timeout(receiver).await??;
        let raft = self.raft_status();
        if raft.leader_id != self.member_id || raft.term != term {
            return Err(ServerError::NotLeader);
        }
        Ok(())
    }

    /// Whether this member leads, with its leases promoted: a leader that has not promoted them
    /// yet will within a heartbeat (etcd's keep-alive waits the same way, by forwarding to
    /// itself until the lessor is primary).
    async fn await_primary(&self) -> Result<bool, ServerError> {
        let deadline = self.io.clock.now() + self.config.request_timeout;
        loop {
            let leader = self.raft_status().leader_id;
            if leader == 0 {
                return Err(ServerError::NoLeader);
            }
            if leader != self.member_id {
                return Ok(false);
            }
            if self.lessor.lock().unwrap().is_primary() {
                return Ok(true);
            }
            if self.io.clock.now() >= deadline {
                return Err(ServerError::Timeout);
            }
            self.io.clock.sleep(PROMOTION_POLL_INTERVAL).await;
        }
    }

    /// Remaining and granted TTL (and keys); TTL -1 for a lease that does not exist, as etcd.
    pub async fn lease_time_to_live(
        &self,
        request: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ServerError> {
        // Only the leader knows expiry times; `api::lease_forward` asks it for a follower.
        if !self.await_primary().await? {
            return Err(ServerError::NotLeader);
        }
        self.confirm_leadership().await?;
        let found = {
            let lessor = self.lessor.lock().unwrap();
            // Deposed and elected again during the quorum round, its new term's leases not yet
            // promoted: a lessor that is not primary knows no expiry, and would answer "forever"
            // (seeds 0x1312dc2, 0x1312e4f). As a keep-alive does then, refuse.
            if !lessor.is_primary() {
                return Err(ServerError::NotLeader);
            }
            lessor.time_to_live(request.id, request.keys)
        };
        let (ttl, granted_ttl, keys) = match found {
            Some(found) if crate::planted_bug!(TtlReportsGranted) => {
                (found.granted_seconds, found.granted_seconds, found.keys)
            }
            Some(found) => (found.remaining_seconds, found.granted_seconds, found.keys),
            None => (-1, 0, Vec::new()),
        };
        Ok(LeaseTimeToLiveResponse {
            header: Some(self.header(self.current_revision())),
            id: request.id,
            ttl,
            granted_ttl,
            keys,
        })
    }

    pub fn lease_leases(&self) -> LeaseLeasesResponse {
        let leases = self.lessor.lock().unwrap().leases();
        LeaseLeasesResponse {
            header: Some(self.header(self.current_revision())),
            leases: leases.into_iter().map(|id| LeaseStatus { id }).collect(),
        }
    }
}
