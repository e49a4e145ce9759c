//! Apply: turn committed raft entries into MVCC and membership changes, in log order, and wake
//! each entry's waiter with the result.
//!
//! Applying is deterministic (same entries, same state) — that is what lets a restarted member
//! rebuild its state from a snapshot plus the log after it, and lets replicas be compared by hash.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, Entry, Snapshot};

use crate::auth::{requests, Access, AuthError, AuthStore, Requester};
use crate::io::Clock;
use crate::metrics::Metrics;
use crate::pb::detcdpb::{auth_change, raft_request, RaftRequest, SnapshotData};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::{AlarmMember, AlarmType};
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseCheckpointResponse,
    LeaseGrantResponse, LeaseRevokeResponse, Member, PutResponse, ResponseHeader, TxnResponse,
};
use crate::raft_node::{self, RaftError};
use crate::server::alarms::Alarms;
use crate::server::lease::{self, Lessor};
use crate::server::membership::Membership;
use crate::server::wait::Wait;
use crate::server::ServerError;
use crate::storage::mvcc::KvStore;
use crate::watched::Watched;

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
    Alarm(AlarmResponse),
    /// An auth store change; an Authenticate answers the simple token it assigned.
    Auth {
        token: Option<String>,
    },
    /// A membership change: the members after it.
    Members(Vec<Member>),
}

pub type ApplyResult = Result<Applied, ServerError>;

/// The state committed entries change, shared with the API that reads it (a clone shares the
/// same state).
#[derive(Clone)]
pub struct StateMachine {
    pub kv: Arc<Mutex<KvStore>>,
    pub membership: Arc<Mutex<Membership>>,
    pub lessor: Arc<Mutex<Lessor>>,
    pub alarms: Arc<Mutex<Alarms>>,
    pub auth: Arc<Mutex<AuthStore>>,
}

/// How long the simple tokens this member records live, by its own clock.
pub struct TokenTtl {
    pub clock: Arc<dyn Clock>,
    pub ttl: Duration,
}

pub struct Applier {
    /// This member's id: failpoints are armed per member.
    member_id: u64,
    state: StateMachine,
    token_ttl: TokenTtl,
    wait: Arc<Wait<ApplyResult>>,
    metrics: Arc<Metrics>,
    applied_index: u64,
    /// The store's revision after the last applied entry, announced to watch streams: O(1) and
    /// never blocking, so slow watchers cannot hold up applying.
    applied_revision: Arc<Watched<i64>>,
}

impl Applier {
    pub fn new(
        member_id: u64,
        state: StateMachine,
        token_ttl: TokenTtl,
        wait: Arc<Wait<ApplyResult>>,
        metrics: Arc<Metrics>,
        applied_index: u64,
    ) -> Self {
        Applier {
            member_id,
            state,
            token_ttl,
            wait,
            metrics,
            applied_index,
            applied_revision: Arc::new(Watched::new(0)),
        }
    }

    /// Follows the store's revision as entries are applied (see `server::watchable`).
    pub fn applied_revision(&self) -> Arc<Watched<i64>> {
        self.applied_revision.clone()
    }

    /// Announces the store's revision to watch streams, after anything that may have moved it.
    fn announce_revision(&self) {
        let revision = self.state.kv.lock().unwrap().current_revision();
        self.applied_revision.update(|announced| {
            let changed = *announced != revision;
            *announced = revision;
            changed
        });
    }

    fn apply_request(
        &mut self,
        requester: &Requester,
        request: raft_request::Request,
        index: u64,
    ) -> ApplyResult {
        if let raft_request::Request::AuthChange(change) = request {
            return self.apply_auth(requester, change.change, index);
        }
        // Lock order: lessor, kv, membership, alarms, auth.
        let mut lessor = self.state.lessor.lock().unwrap();
        let mut kv = self.state.kv.lock().unwrap();
        // Permissions are checked as the entry applies, against the auth store as the log left
        // it: every member refuses alike, and a permission revoked by an earlier entry holds.
        permitted(
            &self.state.auth.lock().unwrap(),
            requester,
            &request,
            &lessor,
        )?;
        // etcd's capped applier: while NOSPACE is raised, every member refuses what grows the
        // backend, even if it was proposed before the alarm.
        if grows_backend(&request)
            && self
                .state
                .alarms
                .lock()
                .unwrap()
                .is_raised(AlarmType::Nospace)
        {
            return Err(ServerError::NoSpace);
        }
        let revision_before = kv.current_revision();
        let lease_exists = |lease: i64| lessor.exists(lease);
        let result = match request {
            raft_request::Request::Put(put) => {
                self.metrics.mvcc_put.inc();
                kv.put(&put, &lease_exists).map(Applied::Put)
            }
            raft_request::Request::DeleteRange(delete) => {
                self.metrics.mvcc_delete.inc();
                let deleted = kv.delete_range(&delete);
                #[cfg(feature = "sim-bugs")]
                {
                    let revision = kv.current_revision();
                    if crate::planted_bug!(FollowerTombstoneDrift)
                        && !lessor.is_primary()
                        && revision > revision_before
                        && revision % 3 == 0
                    {
                        kv.plant_tombstone_drift(revision);
                    }
                }
                deleted.map(Applied::DeleteRange)
            }
            raft_request::Request::Txn(txn) => {
                self.metrics.mvcc_txn.inc();
                kv.txn(&txn, &lease_exists).map(Applied::Txn)
            }
            raft_request::Request::Compaction(compaction) => {
                crate::failpoint!(self.member_id, "compactBeforeApply");
                let compacted = kv.compact(compaction.revision);
                crate::failpoint!(self.member_id, "compactAfterApply");
                compacted.map(|()| {
                    Applied::Compaction(CompactionResponse {
                        header: Some(ResponseHeader {
                            revision: kv.current_revision(),
                            ..Default::default()
                        }),
                    })
                })
            }
            raft_request::Request::MemberAttributes(attributes) => {
                let mut membership = self.state.membership.lock().unwrap();
                membership.set_attributes(
                    attributes.member_id,
                    attributes.name,
                    attributes.client_urls,
                );
                return Ok(Applied::Members(membership.members()));
            }
            raft_request::Request::MemberUpdate(update) => {
                let mut membership = self.state.membership.lock().unwrap();
                membership.update_peer_urls(update.id, update.peer_ur_ls);
                return Ok(Applied::Members(membership.members()));
            }
            raft_request::Request::Alarm(alarm) => {
                return Ok(Applied::Alarm(self.apply_alarm(&alarm)));
            }
            raft_request::Request::AuthChange(_) => unreachable!("applied above"),
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

    fn apply_auth(
        &self,
        requester: &Requester,
        change: Option<auth_change::Change>,
        index: u64,
    ) -> ApplyResult {
        let change =
            change.unwrap_or_else(|| panic!("entry {index} holds an auth change without a change"));
        let now = self.token_ttl.clock.now();
        let token = self.state.auth.lock().unwrap().apply(
            requester,
            change,
            index,
            now,
            self.token_ttl.ttl,
        )?;
        Ok(Applied::Auth { token })
    }

    /// Raises or clears an alarm; the response lists the alarm if it changed (etcd's answer).
    fn apply_alarm(&self, request: &AlarmRequest) -> AlarmResponse {
        let mut alarms = self.state.alarms.lock().unwrap();
        let alarm = request.alarm();
        let changed = match request.action() {
            AlarmAction::Activate => {
                let raised = alarms.activate(request.member_id, alarm);
                if raised {
                    tracing::warn!(
                        member_id = format_args!("{:x}", request.member_id),
                        ?alarm,
                        "alarm raised"
                    );
                }
                raised
            }
            AlarmAction::Deactivate => alarms.deactivate(request.member_id, alarm),
            AlarmAction::Get => false,
        };
        AlarmResponse {
            header: None,
            alarms: if changed {
                vec![AlarmMember {
                    member_id: request.member_id,
                    alarm: alarm as i32,
                }]
            } else {
                Vec::new()
            },
        }
    }
}

/// The raft loop applies committed entries through this; see the trait's doc for the contract.
impl raft_node::StateMachine for Applier {
    fn applied_index(&self) -> u64 {
        self.applied_index
    }

    fn set_applied_index(&mut self, index: u64) {
        assert!(
            index > self.applied_index,
            "applied index must grow: {index} after {}",
            self.applied_index
        );
        self.applied_index = index;
        self.metrics.proposals_applied.set(index);
    }

    fn members(&self) -> Vec<Member> {
        self.state.membership.lock().unwrap().members()
    }

    fn reject(&self, id: u64, error: RaftError) {
        self.metrics.proposals_failed.inc();
        self.wait.trigger(id, Err(error.into()));
    }

    fn demote(&self) {
        self.state.lessor.lock().unwrap().demote();
    }

    fn promote(&self, election_timeout: Duration, term: u64) {
        self.state
            .lessor
            .lock()
            .unwrap()
            .promote(election_timeout, term);
    }

    fn apply_entry(&mut self, entry: &Entry) -> bool {
        if entry.get_data().is_empty() {
            return false;
        }
        let RaftRequest {
            id,
            request,
            username,
            from_server,
            leader_term,
        } = RaftRequest::decode(entry.get_data())
            .expect("normal entries hold RaftRequests written by this server");
        if leader_term != 0 && leader_term != entry.term && !crate::planted_bug!(StaleLeaseDuties) {
            // A deposed leader's lease duty, appended by a later leader (seed 0x262a1bf: its
            // expiry revoke of a lease the new leader had just promised 2 s more).
            self.wait.trigger(id, Err(ServerError::NotLeader));
            return false;
        }
        let requester = Requester::from_entry(username, from_server);
        let request = request_or_die(request, entry.index);
        let membership_changed = matches!(
            request,
            raft_request::Request::MemberAttributes(_) | raft_request::Request::MemberUpdate(_)
        );
        crate::failpoint!(self.member_id, "applyBeforeEntry");
        if crate::planted_bug!(ApplyTwiceAfterRestart) && self.wait.is_empty() {
            let _ = self.apply_request(&requester, request.clone(), entry.index);
        }
        let result = self.apply_request(&requester, request, entry.index);
        crate::failpoint!(self.member_id, "applyAfterEntry");
        self.announce_revision();
        self.metrics.proposals_committed.set(entry.index);
        self.wait.trigger(id, result);
        membership_changed
    }

    /// Applies a committed membership change and wakes its proposer (waiting under `change.id`).
    /// Returns whether the change took effect; one that no longer fits the membership (see
    /// [`Membership::check_add`]) is refused, and raft's configuration must then stay as it is too.
    fn apply_conf_change(&mut self, change: &ConfChange) -> bool {
        let mut membership = self.state.membership.lock().unwrap();
        let result = match change.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let learner = change.get_change_type() == ConfChangeType::AddLearnerNode;
                let mut member = Member::decode(change.get_context())
                    .expect("conf changes carry the member they add");
                assert_eq!(
                    member.id, change.node_id,
                    "a conf change adds its own member"
                );
                membership
                    .check_add(&member)
                    .map(|()| match membership.get(member.id) {
                        // Promotion of a learner, or the re-application of a bootstrap entry.
                        Some(_) if !learner => membership.promote(member.id),
                        Some(_) => {}
                        None => {
                            member.is_learner = learner;
                            membership.add(member);
                        }
                    })
            }
            ConfChangeType::RemoveNode => {
                membership.remove(change.node_id);
                Ok(())
            }
        };
        let members = membership.members();
        drop(membership);
        let applied = result.is_ok();
        if let Err(error) = &result {
            tracing::warn!(node_id = format_args!("{:x}", change.node_id), %error, "refused a committed membership change");
        }
        self.wait
            .trigger(change.id, result.map(|()| Applied::Members(members)));
        applied
    }

    /// Replaces the state machine with a snapshot's.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), RaftError> {
        let data = SnapshotData::decode(&snapshot.data[..])
            .map_err(|e| RaftError::Storage(format!("undecodable snapshot data: {e}")))?;
        let kv = KvStore::from_snapshot(data.kv.unwrap_or_default());
        self.state.lessor.lock().unwrap().restore(&data.leases, &kv);
        self.state.alarms.lock().unwrap().restore(&data.alarms);
        self.state
            .auth
            .lock()
            .unwrap()
            .restore(&data.auth.unwrap_or_default());
        *self.state.kv.lock().unwrap() = kv;
        self.announce_revision();
        self.state
            .membership
            .lock()
            .unwrap()
            .restore(data.members, data.removed_member_ids);
        let index = snapshot.get_metadata().index;
        assert!(
            index >= self.applied_index,
            "a snapshot never moves the state machine back"
        );
        self.applied_index = index;
        self.metrics.proposals_applied.set(index);
        Ok(())
    }

    /// The state machine as snapshot payload, at the applied index.
    fn snapshot_data(&self) -> Vec<u8> {
        state_snapshot(
            &self.state.lessor,
            &self.state.kv,
            &self.state.membership,
            &self.state.alarms,
            &self.state.auth,
        )
        .encode_to_vec()
    }
}

/// The whole state machine at one point between two applied entries: raft snapshots and the
/// backups `Maintenance.Snapshot` streams are both made of it. Takes the locks in the apply
/// order (lessor, kv, membership, alarms, auth), so it may run beside the applier without
/// deadlocking, and sees leases, keys and users as of the same entry.
pub fn state_snapshot(
    lessor: &Mutex<Lessor>,
    kv: &Mutex<KvStore>,
    membership: &Mutex<Membership>,
    alarms: &Mutex<Alarms>,
    auth: &Mutex<AuthStore>,
) -> SnapshotData {
    let lessor = lessor.lock().unwrap();
    let kv = kv.lock().unwrap();
    let membership = membership.lock().unwrap();
    let alarms = alarms.lock().unwrap();
    let auth = auth.lock().unwrap();
    SnapshotData {
        kv: Some(kv.to_snapshot()),
        members: membership.members(),
        removed_member_ids: membership.removed_ids(),
        leases: lessor.to_snapshot(),
        alarms: alarms.list(),
        // A store never changed (revision 0) is left out, so snapshots of clusters that never
        // used auth stay as they were.
        auth: (auth.revision() > 0).then(|| auth.to_snapshot()),
    }
}

/// Whether the requester may make this write (etcd's `authApplierV3`). A lease revoke deletes
/// the lease's keys, so it needs write permission on each of them, as in etcd 3.4.
fn permitted(
    auth: &AuthStore,
    requester: &Requester,
    request: &raft_request::Request,
    lessor: &Lessor,
) -> Result<(), AuthError> {
    match request {
        raft_request::Request::Put(put) => requests::check_put(auth, requester, put),
        raft_request::Request::DeleteRange(delete) => {
            requests::check_delete(auth, requester, delete)
        }
        raft_request::Request::Txn(txn) => requests::check_txn(auth, requester, txn),
        raft_request::Request::LeaseRevoke(revoke) => {
            lessor
                .time_to_live(revoke.id, true)
                .map_or(Ok(()), |lease| {
                    lease
                        .keys
                        .iter()
                        .try_for_each(|key| auth.check(requester, Access::Write, key, &[]))
                })
        }
        _ => Ok(()),
    }
}

/// What etcd's capped applier refuses under NOSPACE: puts, txns that write, lease grants.
pub fn grows_backend(request: &raft_request::Request) -> bool {
    match request {
        raft_request::Request::Put(_) | raft_request::Request::LeaseGrant(_) => true,
        raft_request::Request::Txn(txn) => !super::is_read_only_txn(txn),
        _ => false,
    }
}

fn request_or_die(request: Option<raft_request::Request>, index: u64) -> raft_request::Request {
    request.unwrap_or_else(|| panic!("entry {index} holds a RaftRequest without a request"))
}
