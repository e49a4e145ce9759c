//! Cluster administration (etcd's `cluster_util.go` and the member half of `server.go`): member
//! add, remove, update and learner promotion as raft conf changes, leader transfer, and the
//! publish of this member's own attributes.

use std::sync::{Arc, Mutex};

use raft::prelude::ConfChangeType;

use crate::auth::Requester;
use crate::config::Config;
use crate::io::Clock;
use crate::pb::detcdpb::{raft_request, MemberAttributes};
use crate::pb::etcdserverpb::{Member, MemberUpdateRequest};
use crate::server::bootstrap;
use crate::server::membership::Membership;
use crate::server::propose::Proposer;
use crate::server::ServerError;

/// etcd promotes a learner only once it has this share of the leader's log (`readyPercent`).
const LEARNER_READY_PERCENT: u64 = 90;

/// etcd allows one learner at a time (`maxLearners`).
const LEARNERS_MAX: usize = 1;

pub struct ClusterAdmin {
    member_id: u64,
    cluster_id: u64,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    membership: Arc<Mutex<Membership>>,
    proposer: Arc<Proposer>,
}

impl ClusterAdmin {
    pub fn new(
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        membership: Arc<Mutex<Membership>>,
        proposer: Arc<Proposer>,
        (member_id, cluster_id): (u64, u64),
    ) -> ClusterAdmin {
        ClusterAdmin {
            member_id,
            cluster_id,
            config,
            clock,
            membership,
            proposer,
        }
    }

    /// Who the members are, as the log applied so far has it.
    pub(crate) fn membership(&self) -> &Mutex<Membership> {
        &self.membership
    }

    pub fn members(&self) -> Vec<Member> {
        self.membership.lock().unwrap().members()
    }

    /// Publishes this member's name and client URLs through raft (etcd's `publish`), retrying
    /// until it is applied or the server stops; members list each other's URLs from this.
    pub async fn publish(&self) -> Result<(), ServerError> {
        let attributes = MemberAttributes {
            member_id: self.member_id,
            name: self.config.name.clone(),
            client_urls: self.config.advertise_client_urls.clone(),
        };
        loop {
            let request = raft_request::Request::MemberAttributes(attributes.clone());
            match self
                .proposer
                .propose::<Vec<Member>>(&Requester::Server, request)
                .await
            {
                Ok(_) => return Ok(()),
                Err(ServerError::Stopped) => return Err(ServerError::Stopped),
                Err(error) => {
                    tracing::debug!(%error, "publishing member attributes, will retry");
                    self.clock.sleep(self.config.heartbeat_interval).await;
                }
            }
        }
    }

    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(Member, Vec<Member>), ServerError> {
        check_peer_urls(&peer_urls)?;
        let id = {
            let membership = self.membership.lock().unwrap();
            if peer_urls
                .iter()
                .any(|url| membership.find_by_peer_url(url).is_some())
            {
                return Err(ServerError::PeerUrlExists);
            }
            let learners = membership.members().iter().filter(|m| m.is_learner).count();
            if is_learner && learners >= LEARNERS_MAX {
                return Err(ServerError::TooManyLearners);
            }
            bootstrap::added_member_id(&peer_urls, self.cluster_id, self.clock.wall_ms())
        };
        let member = Member {
            id,
            name: String::new(),
            peer_ur_ls: peer_urls,
            client_ur_ls: Vec::new(),
            is_learner,
        };
        let change_type = if is_learner {
            ConfChangeType::AddLearnerNode
        } else {
            ConfChangeType::AddNode
        };
        let members = self
            .proposer
            .propose_conf_change(change_type, &member)
            .await?;
        Ok((member, members))
    }

    pub async fn member_remove(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        let member = self.existing_member(id)?;
        self.proposer
            .propose_conf_change(ConfChangeType::RemoveNode, &member)
            .await
    }

    /// Promotes a learner to voter once it has caught up with the leader (checked on the leader).
    pub async fn member_promote(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        let member = self.existing_member(id)?;
        if !member.is_learner {
            return Err(ServerError::MemberNotLearner);
        }
        let progress = self.proposer.progress().await?;
        if !progress.is_leader {
            return Err(ServerError::NotLeader);
        }
        let matched = progress.matched.get(&id).copied().unwrap_or(0);
        if matched * 100 < progress.last_index * LEARNER_READY_PERCENT {
            return Err(ServerError::LearnerNotReady);
        }
        self.proposer
            .propose_conf_change(ConfChangeType::AddNode, &member)
            .await
    }

    pub async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<Vec<Member>, ServerError> {
        self.existing_member(id)?;
        check_peer_urls(&peer_urls)?;
        let update = MemberUpdateRequest {
            id,
            peer_ur_ls: peer_urls,
        };
        self.proposer
            .propose(
                &Requester::Server,
                raft_request::Request::MemberUpdate(update),
            )
            .await
    }

    /// Hands leadership to `target` and waits until it has it (etcd's `MoveLeader`).
    pub async fn move_leader(&self, target: u64) -> Result<(), ServerError> {
        let progress = self.proposer.progress().await?;
        if !progress.is_leader {
            return Err(ServerError::NotLeader);
        }
        let target_is_voter = self
            .membership
            .lock()
            .unwrap()
            .get(target)
            .is_some_and(|m| !m.is_learner);
        if !target_is_voter || target == self.member_id {
            return Err(ServerError::BadLeaderTransferee);
        }
        self.proposer.transfer_leader(target).await
    }

    /// Before a leader stops it hands leadership to the most caught-up voter, as etcd does, so
    /// the cluster need not wait out an election timeout.
    pub async fn transfer_leadership_before_stop(&self) {
        let Ok(progress) = self.proposer.progress().await else {
            return;
        };
        if !progress.is_leader {
            return;
        }
        let voters: Vec<u64> = self
            .membership
            .lock()
            .unwrap()
            .members()
            .iter()
            .filter(|m| !m.is_learner && m.id != self.member_id)
            .map(|m| m.id)
            .collect();
        let target = voters
            .iter()
            .max_by_key(|id| (progress.matched.get(id).copied().unwrap_or(0), **id));
        if let Some(&target) = target {
            match self.move_leader(target).await {
                Ok(()) => tracing::info!(
                    to = format_args!("{target:x}"),
                    "leadership transferred before stop"
                ),
                Err(error) => tracing::warn!(%error, "could not transfer leadership before stop"),
            }
        }
    }

    fn existing_member(&self, id: u64) -> Result<Member, ServerError> {
        self.membership
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or(ServerError::MemberNotFound)
    }
}

fn check_peer_urls(peer_urls: &[String]) -> Result<(), ServerError> {
    if peer_urls.is_empty() || peer_urls.iter().any(|url| !is_valid_peer_url(url)) {
        return Err(ServerError::MemberBadUrls);
    }
    Ok(())
}

fn is_valid_peer_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    rest.trim_end_matches('/')
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_need_a_scheme_a_host_and_a_port() {
        assert!(is_valid_peer_url("http://10.0.0.1:2380"));
        assert!(is_valid_peer_url("https://a:2380/"));
        assert!(!is_valid_peer_url("10.0.0.1:2380"));
        assert!(!is_valid_peer_url("http://:2380"));
        assert!(!is_valid_peer_url("http://a:port"));
        assert_eq!(check_peer_urls(&[]), Err(ServerError::MemberBadUrls));
    }
}
