//! Cluster membership (etcd's `membership.RaftCluster`): who the members are, with their names
//! and URLs. It changes only by applying committed conf changes (or restoring a snapshot), so
//! every member agrees on it at each log index.

use std::collections::{BTreeMap, BTreeSet};

use crate::pb::etcdserverpb::Member;
use crate::server::ServerError;

#[derive(Debug, Clone)]
pub struct Membership {
    cluster_id: u64,
    members: BTreeMap<u64, Member>,
    /// Removed ids may never come back (raft would accept their stale messages otherwise).
    removed: BTreeSet<u64>,
}

impl Membership {
    pub fn new(cluster_id: u64, members: impl IntoIterator<Item = Member>) -> Membership {
        Membership {
            cluster_id,
            members: members.into_iter().map(|m| (m.id, m)).collect(),
            removed: BTreeSet::new(),
        }
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// The member whose peer URLs include `peer_url`.
    pub fn find_by_peer_url(&self, peer_url: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.peer_ur_ls.iter().any(|u| u == peer_url))
    }

    /// Whether adding `member` (as a voter, a learner, or promoting it) may still apply (etcd's `ValidateConfigurationChange`, in part). The API
    /// checks changes when they are proposed, but two proposals can race: a promote (or a second
    /// add) of a member committed after its removal would bring a removed id back as a voter that
    /// will never answer. That one is refused, the same way on every member, since the removed
    /// set at each index follows from the log before it.
    ///
    /// Nothing else is checked here: a member joining an existing cluster starts from the current
    /// member list and may replay the log from its start, so adds of members it already knows and
    /// removes of members it never knew are the normal replay of history, not errors.
    pub fn check_add(&self, member: &Member) -> Result<(), ServerError> {
        if self.removed.contains(&member.id) {
            return Err(ServerError::MemberNotFound);
        }
        Ok(())
    }

    pub fn add(&mut self, member: Member) {
        assert!(
            !self.removed.contains(&member.id),
            "re-adding removed member {:x}",
            member.id
        );
        self.members.insert(member.id, member);
    }

    pub fn remove(&mut self, id: u64) {
        self.members.remove(&id);
        self.removed.insert(id);
    }

    pub fn promote(&mut self, id: u64) {
        if let Some(member) = self.members.get_mut(&id) {
            member.is_learner = false;
        }
    }

    pub fn update_peer_urls(&mut self, id: u64, peer_urls: Vec<String>) {
        if let Some(member) = self.members.get_mut(&id) {
            member.peer_ur_ls = peer_urls;
        }
    }

    /// A member's name and client URLs are learned when it publishes them (etcd's `publish`);
    /// until then other members list it without them.
    pub fn set_attributes(&mut self, id: u64, name: String, client_urls: Vec<String>) {
        if let Some(member) = self.members.get_mut(&id) {
            member.name = name;
            member.client_ur_ls = client_urls;
        }
    }

    pub fn removed_ids(&self) -> Vec<u64> {
        self.removed.iter().copied().collect()
    }

    /// Takes the membership from a snapshot.
    pub fn restore(&mut self, members: Vec<Member>, removed: Vec<u64>) {
        self.members = members.into_iter().map(|m| (m.id, m)).collect();
        self.removed = removed.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, url: &str) -> Member {
        Member {
            id,
            peer_ur_ls: vec![url.to_string()],
            ..Default::default()
        }
    }

    fn three() -> Membership {
        Membership::new(
            1,
            [
                member(1, "http://a:2380"),
                member(2, "http://b:2380"),
                member(3, "http://c:2380"),
            ],
        )
    }

    /// A promote proposed before a remove of the same member, committed after it.
    #[test]
    fn a_removed_member_cannot_come_back() {
        let mut membership = three();
        let learner = member(3, "http://c:2380");
        membership.remove(3);
        assert_eq!(
            membership.check_add(&learner),
            Err(ServerError::MemberNotFound)
        );
    }

    #[test]
    fn replayed_history_applies() {
        let membership = three();
        let existing = member(2, "http://b:2380");
        assert_eq!(membership.check_add(&existing), Ok(()));
    }
}
