//! Leases (etcd's `lease` package and the lease half of `v3_server.go`).
//!
//! Grant, revoke and checkpoint are raft entries: every member applies them in log order
//! ([`apply`]), and a restart rebuilds all leases by re-applying the log. Keep-alives are not:
//! the leader alone keeps expiry times, in memory ([`lessor`]), and its [`duties`] task proposes
//! the revoke of each lease that expires. A follower forwards keep-alives and time-to-live to
//! the leader ([`forward`]).

mod apply;
mod duties;
pub mod forward;
pub mod lessor;
#[cfg(test)]
mod tests;

pub use apply::apply;
pub use forward::Origin;
pub use lessor::Lessor;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::Requester;
use crate::config::Config;
use crate::io::Clock;
use crate::pb::detcdpb::raft_request;
use crate::pb::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use crate::server::header::Headers;
use crate::server::membership::Membership;
use crate::server::propose::Proposer;
use crate::server::ServerError;
use crate::watched::Watched;

/// How often a keep-alive that reached the leader before it promoted its leases asks again.
const PROMOTION_POLL_INTERVAL: Duration = Duration::from_millis(50);

pub struct Leases {
    member_id: u64,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    lessor: Arc<Mutex<Lessor>>,
    /// Where the leader is, for forwarding.
    membership: Arc<Mutex<Membership>>,
    proposer: Arc<Proposer>,
    headers: Headers,
}

impl Leases {
    pub fn new(
        member_id: u64,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        (lessor, membership): (Arc<Mutex<Lessor>>, Arc<Mutex<Membership>>),
        proposer: Arc<Proposer>,
        headers: Headers,
    ) -> Leases {
        Leases {
            member_id,
            config,
            clock,
            lessor,
            membership,
            proposer,
            headers,
        }
    }

    /// Starts the leader's lease duties; they end when `stop` is set.
    pub(super) fn start_duties(self: &Arc<Self>, stop: Arc<Watched<bool>>) {
        tokio::spawn(duties::run(self.clone(), stop));
    }

    pub async fn grant(
        &self,
        requester: &Requester,
        mut request: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, ServerError> {
        // A leader grants after promoting its leases, so the new lease starts to expire at once.
        if self.proposer.raft_status().leader_id == self.member_id {
            self.await_primary().await?;
        }
        // No id given: choose one from the request-id generator (unique per member and run),
        // positive as etcd's are.
        while request.id == 0 {
            request.id = (self.proposer.next_id() & i64::MAX as u64) as i64;
        }
        let mut response: LeaseGrantResponse = self
            .proposer
            .propose(requester, raft_request::Request::LeaseGrant(request))
            .await?;
        self.headers.complete(&mut response.header);
        Ok(response)
    }

    pub async fn revoke(
        &self,
        requester: &Requester,
        request: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, ServerError> {
        let mut response: LeaseRevokeResponse = self
            .proposer
            .propose(requester, raft_request::Request::LeaseRevoke(request))
            .await?;
        self.headers.complete(&mut response.header);
        Ok(response)
    }

    /// Revokes a lease this member, as the leader of `term`, found expired.
    async fn revoke_expired(&self, term: u64, id: i64) -> Result<(), ServerError> {
        let request = raft_request::Request::LeaseRevoke(LeaseRevokeRequest { id });
        self.proposer
            .propose_as_leader_of::<LeaseRevokeResponse>(term, request)
            .await
            .map(|_| ())
    }

    /// Records remaining TTLs: due ones this member found as the leader of `term`, or (`None`)
    /// the clearing of one by a keep-alive, which only ever gives a lease more time.
    async fn checkpoint(
        &self,
        term: Option<u64>,
        checkpoints: Vec<LeaseCheckpoint>,
    ) -> Result<(), ServerError> {
        let request =
            raft_request::Request::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints });
        let _: LeaseCheckpointResponse = match term {
            Some(term) => self.proposer.propose_as_leader_of(term, request).await?,
            None => self.proposer.propose(&Requester::Server, request).await?,
        };
        Ok(())
    }

    /// One keep-alive, renewed here if this member leads, else forwarded to the leader (once:
    /// a forwarded one that finds no leader here is `not leader`). A lease that does not exist
    /// (or has expired) answers TTL 0, as etcd's keep-alive stream does.
    pub async fn keep_alive(
        &self,
        id: i64,
        origin: Origin,
    ) -> Result<LeaseKeepAliveResponse, ServerError> {
        match self.renew(id).await {
            Err(ServerError::NotLeader) if origin == Origin::Client => {
                let request = LeaseKeepAliveRequest { id };
                forward::keep_alive(&self.config.dialers.client, self.leader_url(), request).await
            }
            answer => answer,
        }
    }

    async fn renew(&self, id: i64) -> Result<LeaseKeepAliveResponse, ServerError> {
        let renewed = self.renew_on_leader(id).await;
        let ttl = match renewed {
            Ok(renewed) => {
                if renewed.clear_checkpoint {
                    self.checkpoint(
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
            header: Some(self.headers.current()),
            id,
            ttl,
        })
    }

    /// Renews on this member if it is the leader.
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
        let term = self.proposer.raft_status().term;
        self.proposer.read_index().await?;
        let raft = self.proposer.raft_status();
        if raft.leader_id != self.member_id || raft.term != term {
            return Err(ServerError::NotLeader);
        }
        Ok(())
    }

    /// Whether this member leads, with its leases promoted: a leader that has not promoted them
    /// yet will within a heartbeat (etcd's keep-alive waits the same way, by forwarding to
    /// itself until the lessor is primary).
    async fn await_primary(&self) -> Result<bool, ServerError> {
        let deadline = self.clock.now() + self.config.request_timeout;
        loop {
            let leader = self.proposer.raft_status().leader_id;
            if leader == 0 {
                return Err(ServerError::NoLeader);
            }
            if leader != self.member_id {
                return Ok(false);
            }
            if self.lessor.lock().unwrap().is_primary() {
                return Ok(true);
            }
            if self.clock.now() >= deadline {
                return Err(ServerError::Timeout);
            }
            self.clock.sleep(PROMOTION_POLL_INTERVAL).await;
        }
    }

    /// Remaining and granted TTL (and keys); TTL -1 for a lease that does not exist, as etcd.
    /// Only the leader knows expiry times: a follower asks it, as for a keep-alive.
    pub async fn time_to_live(
        &self,
        request: LeaseTimeToLiveRequest,
        origin: Origin,
    ) -> Result<LeaseTimeToLiveResponse, ServerError> {
        match self.time_to_live_on_leader(&request).await {
            Err(ServerError::NotLeader) if origin == Origin::Client => {
                forward::time_to_live(&self.config.dialers.client, self.leader_url(), request).await
            }
            answer => answer,
        }
    }

    async fn time_to_live_on_leader(
        &self,
        request: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ServerError> {
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
            header: Some(self.headers.current()),
            id: request.id,
            ttl,
            granted_ttl,
            keys,
        })
    }

    pub fn leases(&self) -> LeaseLeasesResponse {
        let leases = self.lessor.lock().unwrap().leases();
        LeaseLeasesResponse {
            header: Some(self.headers.current()),
            leases: leases.into_iter().map(|id| LeaseStatus { id }).collect(),
        }
    }

    /// The leader's first client URL, once it is known and has published it.
    fn leader_url(&self) -> Option<String> {
        let leader_id = self.proposer.raft_status().leader_id;
        if leader_id == 0 {
            return None;
        }
        let membership = self.membership.lock().unwrap();
        membership
            .get(leader_id)
            .and_then(|member| member.client_ur_ls.first().cloned())
    }
}
