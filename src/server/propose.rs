//! The proposer: the one way the server's parts reach the raft loop. A write is assigned a
//! request id, registered with the waiter registry, proposed, and answered with its apply result,
//! the request timeout, or server stop (etcd's `processInternalRaftRequestOnce`). Reads reach
//! raft here too, for a ReadIndex.
//!
//! [`Proposer::propose`] is typed: the caller names the response it expects, and [`AppliedAs`]
//! maps the one [`Applied`] variant each request applies as to that type, so no call site matches
//! on `Applied` itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeType};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Requester;
use crate::config::Config;
use crate::io::Clock;
use crate::pb::detcdpb::{raft_request, RaftRequest};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, CompactionResponse, DeleteRangeResponse,
    LeaseCheckpointResponse, LeaseGrantResponse, LeaseRevokeResponse, Member, PutResponse,
    TxnResponse,
};
use crate::raft_node::{Progress, RaftInput, RaftStatus};
use crate::server::apply::{self, Applied, ApplyResult};
use crate::server::quota::{Over, Quota};
use crate::server::wait::Wait;
use crate::server::ServerError;
use crate::watched::Watched;

/// etcd refuses new proposals while the applier lags this many entries behind the commit index
/// (`maxGapBetweenApplyAndCommitIndex`): waiting longer would only grow the backlog.
const APPLY_GAP_MAX: u64 = 5000;

/// The response a request applies as: one [`Applied`] variant. `from_applied` hands back any
/// other variant, which would mean the applier answered a different request.
pub trait AppliedAs: Sized {
    fn from_applied(applied: Applied) -> Result<Self, Applied>;
}

macro_rules! applied_as {
    ($($variant:ident => $response:ty),* $(,)?) => {$(
        impl AppliedAs for $response {
            fn from_applied(applied: Applied) -> Result<Self, Applied> {
                match applied {
                    Applied::$variant(response) => Ok(response),
                    other => Err(other),
                }
            }
        }
    )*};
}

applied_as! {
    Put => PutResponse,
    DeleteRange => DeleteRangeResponse,
    Txn => TxnResponse,
    Compaction => CompactionResponse,
    LeaseGrant => LeaseGrantResponse,
    LeaseRevoke => LeaseRevokeResponse,
    LeaseCheckpoint => LeaseCheckpointResponse,
    Alarm => AlarmResponse,
    Members => Vec<Member>,
}

/// An applied auth change: the simple token an Authenticate assigned (none for other changes).
pub struct AuthApplied {
    pub token: Option<String>,
}

impl AppliedAs for AuthApplied {
    fn from_applied(applied: Applied) -> Result<Self, Applied> {
        match applied {
            Applied::Auth { token } => Ok(AuthApplied { token }),
            other => Err(other),
        }
    }
}

pub struct Proposer {
    member_id: u64,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    inputs: mpsc::Sender<RaftInput>,
    wait: Arc<Wait<ApplyResult>>,
    raft_status: Arc<Watched<RaftStatus>>,
    stop: Arc<Watched<bool>>,
    quota: Quota,
    /// Member bits, then wall-clock bits, then a counter (see [`Proposer::new`]).
    next_request_id: AtomicU64,
}

/// What the proposer shares with the raft loop and the applier.
pub struct ProposerParts {
    pub inputs: mpsc::Sender<RaftInput>,
    pub wait: Arc<Wait<ApplyResult>>,
    pub raft_status: Arc<Watched<RaftStatus>>,
    pub stop: Arc<Watched<bool>>,
    pub quota: Quota,
}

impl Proposer {
    pub fn new(
        member_id: u64,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        parts: ProposerParts,
    ) -> Proposer {
        // Request ids: member bits, then wall-clock bits, then a counter, so that ids from an
        // earlier run of this member (still in the log) never collide with new ones.
        let id_base = ((member_id & 0xffff) << 48) | ((clock.wall_ms() & 0xff_ffff_ffff) << 8);
        Proposer {
            member_id,
            config,
            clock,
            inputs: parts.inputs,
            wait: parts.wait,
            raft_status: parts.raft_status,
            stop: parts.stop,
            quota: parts.quota,
            next_request_id: AtomicU64::new(id_base),
        }
    }

    /// A fresh id, unique per member and run (request ids, and lease ids chosen for a client).
    pub fn next_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Proposals waiting for their apply.
    pub fn pending(&self) -> usize {
        self.wait.len()
    }

    pub fn raft_status(&self) -> RaftStatus {
        self.raft_status.get()
    }

    /// Proposes `request` on behalf of `requester`, whose permissions every member checks as
    /// the entry applies, and answers what it applied as.
    pub async fn propose<R: AppliedAs>(
        &self,
        requester: &Requester,
        request: raft_request::Request,
    ) -> Result<R, ServerError> {
        let grows_backend = apply::grows_backend(&request);
        let (id, data) = self.entry(requester, request, 0);
        if data.len() > self.config.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        if grows_backend {
            self.check_quota(data.len() as u64).await?;
        }
        let applied = self
            .wait_for_apply(id, RaftInput::Propose { id, data })
            .await?;
        Ok(expect_applied_as(applied))
    }

    /// Proposes a decision this member made as the leader of `term` (its lease duties: an expiry
    /// revoke, a checkpoint). Every member drops it unless the entry was appended in that term:
    /// raft forwards a deposed leader's late proposal to the new leader, and a revoke decided by
    /// the old leader's clock must not overrule the TTL the new leader promised (seed 0x262a1bf).
    pub async fn propose_as_leader_of<R: AppliedAs>(
        &self,
        term: u64,
        request: raft_request::Request,
    ) -> Result<R, ServerError> {
        assert!(term > 0, "a leader's term is positive");
        assert!(!apply::grows_backend(&request), "lease duties free space");
        let (id, data) = self.entry(&Requester::Server, request, term);
        let applied = self
            .wait_for_apply(id, RaftInput::Propose { id, data })
            .await?;
        Ok(expect_applied_as(applied))
    }

    /// Proposes a membership change of `member`; answers the members after it.
    pub async fn propose_conf_change(
        &self,
        change_type: ConfChangeType,
        member: &Member,
    ) -> Result<Vec<Member>, ServerError> {
        let id = self.next_id();
        let mut change = ConfChange::default();
        change.set_change_type(change_type);
        change.node_id = member.id;
        change.context = member.encode_to_vec().into();
        change.id = id;
        let applied = self
            .wait_for_apply(id, RaftInput::ProposeConfChange { change })
            .await?;
        Ok(expect_applied_as(applied))
    }

    /// Raises or clears an alarm through raft. An alarm entry names no requester, and no member
    /// checks a permission for it as it applies. Neither the size limit nor the quota hold it
    /// back: it is small, and raising NOSPACE is what the quota check itself proposes.
    pub async fn propose_alarm(&self, request: AlarmRequest) -> Result<AlarmResponse, ServerError> {
        let (id, data) = self.entry(
            &Requester::Client(None),
            raft_request::Request::Alarm(request),
            0,
        );
        let applied = self
            .wait_for_apply(id, RaftInput::Propose { id, data })
            .await?;
        Ok(expect_applied_as(applied))
    }

    /// A raft entry for `request` under a fresh request id: the id and the encoded entry.
    /// `leader_term`: 0, or the term only in which it may apply (`propose_as_leader_of`).
    fn entry(
        &self,
        requester: &Requester,
        request: raft_request::Request,
        leader_term: u64,
    ) -> (u64, Vec<u8>) {
        let id = self.next_id();
        let (username, from_server) = requester.to_entry();
        let data = RaftRequest {
            id,
            request: Some(request),
            username,
            from_server,
            leader_term,
        }
        .encode_to_vec();
        (id, data)
    }

    /// etcd's quota check before proposing: refuse a write while NOSPACE is raised, and raise it
    /// (through raft, for every member) when this write would take the backend over quota.
    async fn check_quota(&self, cost_bytes: u64) -> Result<(), ServerError> {
        match self.quota.admit(cost_bytes) {
            Ok(()) => return Ok(()),
            Err(Over::AlarmRaised) => return Err(ServerError::NoSpace),
            Err(Over::WouldExceed { size_bytes }) => tracing::warn!(
                size_bytes,
                quota_bytes = self.config.quota_backend_bytes,
                "backend quota exceeded, raising the NOSPACE alarm"
            ),
        }
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(error) = self.propose_alarm(raise).await {
            tracing::warn!(%error, "could not raise the NOSPACE alarm");
        }
        Err(ServerError::NoSpace)
    }

    /// Waits until this member has applied everything committed when the read arrived (raft's
    /// ReadIndex), so a read never returns older data than a write already acknowledged.
    pub async fn linearizable_read_barrier(&self) -> Result<(), ServerError> {
        if crate::planted_bug!(ReadWithoutReadIndex) {
            return Ok(());
        }
        let index = self.read_index().await?;
        self.within_timeout(self.raft_status.wait_for(|s| s.applied_index >= index))
            .await
            .map(|_| ())
    }

    /// The commit index once a quorum confirmed this member's leadership (raft's ReadIndex).
    pub async fn read_index(&self) -> Result<u64, ServerError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(RaftInput::ReadIndex { reply }).await?;
        self.await_reply(receiver).await?.map_err(ServerError::from)
    }

    /// The leader's view of its followers' logs.
    pub async fn progress(&self) -> Result<Progress, ServerError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(RaftInput::Progress { reply }).await?;
        self.await_reply(receiver).await
    }

    /// Asks raft to hand leadership to `target`, and waits until it has it.
    pub async fn transfer_leader(&self, target: u64) -> Result<(), ServerError> {
        self.submit(RaftInput::TransferLeader { to: target })
            .await?;
        self.within_timeout(self.raft_status.wait_for(|s| s.leader_id == target))
            .await
            .map(|_| ())
    }

    /// Registers a waiter under `id`, hands `input` to raft, and waits for the apply result.
    /// Refused with `TooManyRequests`, as etcd refuses, while the applier lags far behind the
    /// commit index or the waiter registry is full.
    async fn wait_for_apply(&self, id: u64, input: RaftInput) -> Result<Applied, ServerError> {
        let raft = self.raft_status();
        if raft.commit_index > raft.applied_index + APPLY_GAP_MAX {
            return Err(ServerError::TooManyRequests);
        }
        let receiver = self.wait.register(id)?;
        if let Err(error) = self.submit(input).await {
            self.wait.cancel(id);
            return Err(error);
        }
        let result = self.await_reply(receiver).await;
        if result.is_err() {
            self.wait.cancel(id);
        }
        result?
    }

    async fn submit(&self, input: RaftInput) -> Result<(), ServerError> {
        if self.stop.get() {
            return Err(ServerError::Stopped);
        }
        self.inputs
            .send(input)
            .await
            .map_err(|_| ServerError::Stopped)
    }

    async fn await_reply<T>(&self, receiver: oneshot::Receiver<T>) -> Result<T, ServerError> {
        self.within_timeout(receiver)
            .await?
            .map_err(|_| ServerError::Stopped)
    }

    /// `wait`, unless the server stops (`Stopped`) or the request timeout passes first.
    async fn within_timeout<T>(
        &self,
        wait: impl std::future::Future<Output = T>,
    ) -> Result<T, ServerError> {
        tokio::select! {
            biased;
            done = wait => Ok(done),
            _ = self.stop.wait_for(|stopped| *stopped) => Err(ServerError::Stopped),
            () = self.clock.sleep(self.config.request_timeout) => Err(ServerError::Timeout),
        }
    }
}

/// The one place an apply result of the wrong kind is caught: the applier answers each request
/// with the variant its kind applies as, so any other is a bug in the applier.
fn expect_applied_as<R: AppliedAs>(applied: Applied) -> R {
    R::from_applied(applied).unwrap_or_else(|other| {
        unreachable!(
            "a request answered by {} applied as {other:?}",
            std::any::type_name::<R>()
        )
    })
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::io::clock::SystemClock;
    use crate::pb::etcdserverpb::PutRequest;
    use crate::storage::mvcc::KvStore;

    /// A proposer with room for `pending_max` waiters, and raft's end of its input queue, which
    /// the test never answers.
    fn proposer(pending_max: usize) -> (Arc<Proposer>, mpsc::Receiver<RaftInput>) {
        let client: SocketAddr = "127.0.0.1:2379".parse().unwrap();
        let config = Arc::new(Config::single_node("p", "/nonexistent".into(), client));
        let (inputs, raft) = mpsc::channel(16);
        let kv = Arc::new(std::sync::Mutex::new(KvStore::new()));
        let alarms = Arc::new(std::sync::Mutex::new(Default::default()));
        let parts = ProposerParts {
            inputs,
            wait: Arc::new(Wait::with_capacity(pending_max)),
            raft_status: Arc::new(Watched::new(RaftStatus::default())),
            stop: Arc::new(Watched::new(false)),
            quota: Quota::new(kv, alarms, config.quota_backend_bytes),
        };
        let proposer = Proposer::new(1, config, Arc::new(SystemClock), parts);
        (Arc::new(proposer), raft)
    }

    fn put(key: &str) -> raft_request::Request {
        raft_request::Request::Put(PutRequest {
            key: key.into(),
            ..Default::default()
        })
    }

    /// etcd's `ErrGRPCRequestTooManyRequests`: a proposal beyond the waiter bound is refused at
    /// once, with ResourceExhausted and etcd's text, and a waiter that leaves frees its place.
    #[tokio::test]
    async fn a_full_waiter_registry_answers_too_many_requests() {
        let (proposer, mut raft) = proposer(1);
        let waiting = {
            let proposer = proposer.clone();
            tokio::spawn(async move {
                proposer
                    .propose::<PutResponse>(&Requester::Server, put("a"))
                    .await
            })
        };
        assert!(matches!(raft.recv().await, Some(RaftInput::Propose { .. })));
        assert_eq!(proposer.pending(), 1);

        let refused = proposer
            .propose::<PutResponse>(&Requester::Server, put("b"))
            .await
            .unwrap_err();
        assert_eq!(refused, ServerError::TooManyRequests);
        let status = crate::api::status::to_status(refused);
        assert_eq!(
            (status.code(), status.message()),
            (
                tonic::Code::ResourceExhausted,
                "etcdserver: too many requests"
            )
        );
        assert!(
            raft.try_recv().is_err(),
            "a refused proposal reaches no raft"
        );

        proposer.stop.set(true);
        assert_eq!(waiting.await.unwrap().unwrap_err(), ServerError::Stopped);
        assert_eq!(proposer.pending(), 0, "the stopped proposal left its place");
    }
}
