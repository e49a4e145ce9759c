//! The etcd server (etcd's `etcdserver`): owns the MVCC store and the raft loop, and turns client
//! requests into raft proposals (writes) or ReadIndex-guarded reads.
//!
//! A write: assign a request id, register a waiter for it, propose, then wait for the apply
//! result, the request timeout, or server stop (etcd's `processInternalRaftRequestOnce`).

pub mod alarms;
pub mod apply;
mod auth;
pub mod bootstrap;
mod error;
pub mod lease;
pub mod membership;
pub mod wait;
pub mod watchable;

pub use error::ServerError;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeType};
use rand::SeedableRng as _;
use tokio::sync::{mpsc, oneshot};

use crate::auth::{requests, AuthStore, Requester};
use crate::config::{Config, ETCD_API_VERSION};
use crate::io::Io;
use crate::metrics::{self, Metrics};
use crate::pb::detcdpb::{raft_request, MemberAttributes, RaftRequest};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse,
    DeleteRangeRequest, DeleteRangeResponse, HashKvResponse, HashResponse, Member,
    MemberUpdateRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    StatusResponse, TxnRequest, TxnResponse,
};
use crate::raft_node::peer_service::PeerService;
use crate::raft_node::{
    Progress, RaftInput, RaftNode, RaftNodeConfig, RaftParts, RaftStatus, Transport,
};
use crate::storage::mvcc::KvStore;
use crate::watched::Watched;
use alarms::Alarms;
use apply::{Applied, Applier, ApplyResult, StateMachine, TokenTtl};
use bootstrap::{BootstrapError, Bootstrapped, RemoteCluster};
use membership::Membership;
use wait::Wait;

/// Bound on queued proposals and reads: a full queue pushes back on clients instead of growing.
const RAFT_INPUTS_MAX: usize = 4096;

/// etcd refuses new proposals while the applier lags this many entries behind the commit index
/// (`maxGapBetweenApplyAndCommitIndex`): waiting longer would only grow the backlog.
const APPLY_GAP_MAX: u64 = 5000;

/// etcd promotes a learner only once it has this share of the leader's log (`readyPercent`).
const LEARNER_READY_PERCENT: u64 = 90;

/// etcd allows one learner at a time (`maxLearners`).
const LEARNERS_MAX: usize = 1;

/// Mixed into the node's seed for its auth RNG, so that drawing salts and token prefixes moves
/// none of the node's other random choices.
const AUTH_RNG_SEED_MIX: u64 = 0x0a07_45a1_7000;

pub struct EtcdServer {
    config: Config,
    member_id: u64,
    cluster_id: u64,
    membership: Arc<Mutex<Membership>>,
    kv: Arc<Mutex<KvStore>>,
    lessor: Arc<Mutex<lease::Lessor>>,
    alarms: Arc<Mutex<Alarms>>,
    auth: Arc<Mutex<AuthStore>>,
    /// Password salts and token prefixes, drawn from the node's seed (no OS randomness here).
    rng: Mutex<rand::rngs::StdRng>,
    wait: Arc<Wait<ApplyResult>>,
    raft_inputs: mpsc::Sender<RaftInput>,
    raft_status: Arc<Watched<RaftStatus>>,
    /// The store's revision as the applier leaves it; watch streams wake on it.
    applied_revision: Arc<Watched<i64>>,
    /// Watches open on all streams, against `--experimental-max-watchers`.
    watcher_budget: watchable::WatcherBudget,
    metrics: Arc<Metrics>,
    io: Io,
    next_request_id: AtomicU64,
    stop: Arc<Watched<bool>>,
    /// The raft loop, until `start` takes it to run.
    raft_node: Mutex<Option<RaftNode>>,
}

impl EtcdServer {
    /// Bootstraps from disk and builds the server; nothing runs until [`EtcdServer::start`].
    /// `remote` is the cluster a member joining with `--initial-cluster-state existing` was
    /// added to (see [`bootstrap::fetch_remote_cluster`]).
    pub async fn new(
        config: Config,
        io: Io,
        remote: Option<RemoteCluster>,
    ) -> Result<Arc<EtcdServer>, BootstrapError> {
        let Bootstrapped {
            metadata,
            store,
            mut wal,
            mut snapshot_files,
            kv,
            membership,
            leases,
            alarms,
            auth,
            applied_index,
        } = bootstrap::bootstrap(&config, io.disk.clone(), remote).await?;
        tracing::info!(
            name = %config.name,
            member_id = format_args!("{:x}", metadata.member_id),
            cluster_id = format_args!("{:x}", metadata.cluster_id),
            applied_index,
            "bootstrapped member"
        );
        let mut lessor = lease::Lessor::new(
            io.clock.clone(),
            lease::lessor::min_ttl_seconds(config.heartbeat_interval, config.election_ticks),
            config.lease_checkpoint_interval,
        );
        lessor.restore(&leases, &kv);
        let kv = Arc::new(Mutex::new(kv));
        let membership = Arc::new(Mutex::new(membership));
        let lessor = Arc::new(Mutex::new(lessor));
        let alarms = {
            let mut raised = Alarms::default();
            raised.restore(&alarms);
            Arc::new(Mutex::new(raised))
        };
        if config.max_request_bytes > crate::config::MAX_REQUEST_BYTES_RECOMMENDED {
            tracing::warn!(
                max_request_bytes = config.max_request_bytes,
                recommended = crate::config::MAX_REQUEST_BYTES_RECOMMENDED,
                "--max-request-bytes exceeds the maximum recommended size"
            );
        }
        let auth = {
            let mut store = AuthStore::default();
            store.restore(&auth);
            Arc::new(Mutex::new(store))
        };
        let wait = Arc::new(Wait::with_capacity(config.max_pending_proposals));
        let metrics = Arc::new(Metrics::new(io.clock.clone(), metadata.member_id));
        wal.report_to(metrics.wal.clone());
        snapshot_files.time_saves(metrics.backend_commit.clone());
        let (raft_inputs, inputs) = mpsc::channel(RAFT_INPUTS_MAX);
        let raft_status = Arc::new(Watched::new(RaftStatus::default()));
        let applier = Applier::new(
            metadata.member_id,
            StateMachine {
                kv: kv.clone(),
                membership: membership.clone(),
                lessor: lessor.clone(),
                alarms: alarms.clone(),
                auth: auth.clone(),
            },
            TokenTtl {
                clock: io.clock.clone(),
                ttl: config.auth_token_ttl,
            },
            wait.clone(),
            metrics.clone(),
            applied_index,
        );
        let applied_revision = applier.applied_revision();
        let raft_node = RaftNode::new(
            RaftNodeConfig {
                member_id: metadata.member_id,
                tick_interval: config.heartbeat_interval,
                election_ticks: config.election_ticks,
                seed: io.seed,
                snapshot_count: config.snapshot_count,
                applied_index,
            },
            RaftParts {
                store,
                wal,
                snapshot_files,
                applier,
                transport: Transport::new(
                    metadata.cluster_id,
                    metadata.member_id,
                    config.initial_advertise_peer_urls.clone(),
                    io.clock.clone(),
                    config.dialers.peer.clone(),
                    raft_inputs.clone(),
                    metrics.clone(),
                ),
                clock: io.clock.clone(),
                inputs,
                status: raft_status.clone(),
            },
        )
        .map_err(|e| BootstrapError::Config(e.to_string()))?;
        // Request ids: member bits, then wall-clock bits, then a counter, so that ids from an
        // earlier run of this member (still in the log) never collide with new ones.
        let id_base =
            ((metadata.member_id & 0xffff) << 48) | ((io.clock.wall_ms() & 0xff_ffff_ffff) << 8);
        let watcher_budget = watchable::WatcherBudget::new(config.max_watchers);
        Ok(Arc::new(EtcdServer {
            config,
            member_id: metadata.member_id,
            cluster_id: metadata.cluster_id,
            membership,
            kv,
            lessor,
            alarms,
            auth,
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(
                io.seed ^ AUTH_RNG_SEED_MIX,
            )),
            wait,
            raft_inputs,
            raft_status,
            applied_revision,
            watcher_budget,
            metrics,
            io,
            next_request_id: AtomicU64::new(id_base),
            stop: Arc::new(Watched::new(false)),
            raft_node: Mutex::new(Some(raft_node)),
        }))
    }

    /// Starts the raft loop in the background; its end (stop, or a disk failure) resolves the
    /// returned handle. The leader's lease duties run beside it until stop.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<Result<(), ServerError>> {
        let raft_node = self
            .raft_node
            .lock()
            .unwrap()
            .take()
            .expect("EtcdServer::start is called once");
        self.start_lease_duties();
        tokio::spawn(raft_node.run(self.stop.clone()))
    }

    /// Stops the raft loop; in-flight requests end with `etcdserver: server stopped`.
    pub fn stop(&self) {
        self.stop.set(true);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub fn members(&self) -> Vec<Member> {
        self.membership.lock().unwrap().members()
    }

    /// The receiving side of the peer transport.
    pub fn peer_service(self: &Arc<Self>) -> PeerService {
        PeerService::new(self.clone(), self.raft_inputs.clone())
    }

    pub(crate) fn membership(&self) -> &Mutex<Membership> {
        &self.membership
    }

    pub fn raft_status(&self) -> RaftStatus {
        self.raft_status.get()
    }

    pub fn clock(&self) -> Arc<dyn crate::io::Clock> {
        self.io.clock.clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Resolves once this member knows a leader and has applied everything committed before it
    /// started: from then on it serves what it had acknowledged before.
    pub async fn wait_ready(&self) {
        self.raft_status
            .wait_for(|s| s.leader_id != 0 && s.applied_index >= s.commit_index)
            .await;
    }

    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_status().term,
        }
    }

    fn with_header(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    pub async fn range(
        &self,
        requester: &Requester,
        request: RangeRequest,
    ) -> Result<RangeResponse, ServerError> {
        if !request.serializable {
            self.linearizable_read_barrier().await?;
        }
        requests::check_range(&self.auth.lock().unwrap(), requester, &request)?;
        self.metrics.mvcc_range.inc();
        let mut response = self.kv.lock().unwrap().range(&request)?;
        self.with_header(&mut response.header);
        Ok(response)
    }

    pub async fn put(
        &self,
        requester: &Requester,
        request: PutRequest,
    ) -> Result<PutResponse, ServerError> {
        match self
            .propose_as(requester, raft_request::Request::Put(request))
            .await?
        {
            Applied::Put(mut response) => {
                self.with_header(&mut response.header);
                Ok(response)
            }
            other => unreachable!("a put applied as {other:?}"),
        }
    }

    pub async fn delete_range(
        &self,
        requester: &Requester,
        request: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, ServerError> {
        match self
            .propose_as(requester, raft_request::Request::DeleteRange(request))
            .await?
        {
            Applied::DeleteRange(mut response) => {
                self.with_header(&mut response.header);
                Ok(response)
            }
            other => unreachable!("a delete applied as {other:?}"),
        }
    }

    pub async fn txn(
        &self,
        requester: &Requester,
        request: TxnRequest,
    ) -> Result<TxnResponse, ServerError> {
        if is_read_only_txn(&request) {
            // A read-only txn needs no log entry: read at a linearizable point, as etcd does.
            let serializable = request_ops(&request).all(|op| {
                matches!(&op.request, Some(crate::pb::etcdserverpb::request_op::Request::RequestRange(r)) if r.serializable)
            });
            if !serializable {
                self.linearizable_read_barrier().await?;
            }
            requests::check_txn(&self.auth.lock().unwrap(), requester, &request)?;
            // Read-only: no put, so no lease is ever looked up.
            let no_leases = |_lease: i64| false;
            let mut response = self.kv.lock().unwrap().txn(&request, &no_leases)?;
            self.with_header(&mut response.header);
            return Ok(response);
        }
        match self
            .propose_as(requester, raft_request::Request::Txn(request))
            .await?
        {
            Applied::Txn(mut response) => {
                self.with_header(&mut response.header);
                Ok(response)
            }
            other => unreachable!("a txn applied as {other:?}"),
        }
    }

    pub async fn compact(
        &self,
        request: CompactionRequest,
    ) -> Result<CompactionResponse, ServerError> {
        match self
            .propose(raft_request::Request::Compaction(request))
            .await?
        {
            Applied::Compaction(mut response) => {
                self.with_header(&mut response.header);
                Ok(response)
            }
            other => unreachable!("a compaction applied as {other:?}"),
        }
    }

    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, ServerError> {
        let kv = self.kv.lock().unwrap();
        let (hash, compact_revision) = kv.hash_kv(revision)?;
        Ok(HashKvResponse {
            header: Some(self.header(kv.current_revision())),
            hash,
            compact_revision,
        })
    }

    /// The whole state machine now, as a backup file (etcd 3.4's format) for `Maintenance.Snapshot`.
    /// Like etcd's, it is this member's applied state, not a linearizable read.
    pub fn backup(&self) -> Vec<u8> {
        // Read before the state, so never past it; `etcdctl snapshot restore` rewrites it anyway.
        let consistent_index = self.raft_status().applied_index;
        let state = apply::state_snapshot(
            &self.lessor,
            &self.kv,
            &self.membership,
            &self.alarms,
            &self.auth,
        );
        crate::backup::encode(&state, consistent_index)
    }

    pub fn status(&self) -> StatusResponse {
        let raft = self.raft_status();
        let kv = self.kv.lock().unwrap();
        let db_size = kv.size_bytes() as i64;
        StatusResponse {
            header: Some(self.header(kv.current_revision())),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            leader: raft.leader_id,
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors: self
                .alarms
                .lock()
                .unwrap()
                .list()
                .iter()
                .map(|alarm| {
                    format!(
                        "memberID:{} alarm:{} ",
                        alarm.member_id,
                        alarm_name(alarm.alarm)
                    )
                })
                .collect(),
            db_size_in_use: db_size,
            is_learner: raft.is_learner,
        }
    }

    pub fn metrics_text(&self) -> String {
        let raft = self.raft_status();
        let kv = self.kv.lock().unwrap();
        self.metrics.render(&metrics::Snapshot {
            has_leader: raft.leader_id != 0,
            is_leader: raft.leader_id == self.member_id,
            leader_changes: raft.leader_changes,
            proposals_pending: self.wait.len() as u64,
            db_size_bytes: kv.size_bytes(),
            keys: metrics::live_keys(&kv),
            current_revision: kv.current_revision(),
            compact_revision: kv.compacted_revision(),
            watchers: self.watcher_budget.open() as u64,
        })
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
            match self
                .propose(raft_request::Request::MemberAttributes(attributes.clone()))
                .await
            {
                Ok(_) => return Ok(()),
                Err(ServerError::Stopped) => return Err(ServerError::Stopped),
                Err(error) => {
                    tracing::debug!(%error, "publishing member attributes, will retry");
                    self.io.clock.sleep(self.config.heartbeat_interval).await;
                }
            }
        }
    }

    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(Member, Vec<Member>), ServerError> {
        if peer_urls.is_empty() || peer_urls.iter().any(|url| !is_valid_peer_url(url)) {
            return Err(ServerError::MemberBadUrls);
        }
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
            bootstrap::added_member_id(&peer_urls, self.cluster_id, self.io.clock.wall_ms())
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
        let members = self.propose_conf_change(change_type, &member).await?;
        Ok((member, members))
    }

    pub async fn member_remove(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        let member = self.existing_member(id)?;
        self.propose_conf_change(ConfChangeType::RemoveNode, &member)
            .await
    }

    /// Promotes a learner to voter once it has caught up with the leader (checked on the leader).
    pub async fn member_promote(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        let member = self.existing_member(id)?;
        if !member.is_learner {
            return Err(ServerError::MemberNotLearner);
        }
        let progress = self.progress().await?;
        if !progress.is_leader {
            return Err(ServerError::NotLeader);
        }
        let matched = progress.matched.get(&id).copied().unwrap_or(0);
        if matched * 100 < progress.last_index * LEARNER_READY_PERCENT {
            return Err(ServerError::LearnerNotReady);
        }
        self.propose_conf_change(ConfChangeType::AddNode, &member)
            .await
    }

    pub async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<Vec<Member>, ServerError> {
        self.existing_member(id)?;
        if peer_urls.is_empty() || peer_urls.iter().any(|url| !is_valid_peer_url(url)) {
            return Err(ServerError::MemberBadUrls);
        }
        let update = MemberUpdateRequest {
            id,
            peer_ur_ls: peer_urls,
        };
        match self
            .propose(raft_request::Request::MemberUpdate(update))
            .await?
        {
            Applied::Members(members) => Ok(members),
            other => unreachable!("a member update applied as {other:?}"),
        }
    }

    /// Hands leadership to `target` and waits until it has it (etcd's `MoveLeader`).
    pub async fn move_leader(&self, target: u64) -> Result<(), ServerError> {
        let progress = self.progress().await?;
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
        self.submit(RaftInput::TransferLeader { to: target })
            .await?;
        tokio::select! {
            biased;
            _ = self.raft_status.wait_for(|s| s.leader_id == target) => Ok(()),
            _ = self.stop.wait_for(|stopped| *stopped) => Err(ServerError::Stopped),
            () = self.io.clock.sleep(self.config.request_timeout) => Err(ServerError::Timeout),
        }
    }

    /// Before a leader stops it hands leadership to the most caught-up voter, as etcd does, so
    /// the cluster need not wait out an election timeout.
    pub async fn transfer_leadership_before_stop(&self) {
        let Ok(progress) = self.progress().await else {
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

    async fn progress(&self) -> Result<Progress, ServerError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(RaftInput::Progress { reply }).await?;
        self.await_with_timeout(receiver).await
    }

    async fn propose_conf_change(
        &self,
        change_type: ConfChangeType,
        member: &Member,
    ) -> Result<Vec<Member>, ServerError> {
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let mut change = ConfChange::default();
        change.set_change_type(change_type);
        change.node_id = member.id;
        change.context = member.encode_to_vec().into();
        change.id = id;
        match self
            .wait_for_apply(id, RaftInput::ProposeConfChange { change })
            .await?
        {
            Applied::Members(members) => Ok(members),
            other => unreachable!("a conf change applied as {other:?}"),
        }
    }

    /// Waits until this member has applied everything committed when the read arrived (raft's
    /// ReadIndex), so a read never returns older data than a write already acknowledged.
    pub(crate) async fn linearizable_read_barrier(&self) -> Result<(), ServerError> {
        if crate::planted_bug!(ReadWithoutReadIndex) {
            return Ok(());
        }
        let (reply, receiver) = oneshot::channel();
        self.submit(RaftInput::ReadIndex { reply }).await?;
        let index = self.await_with_timeout(receiver).await??;
        tokio::select! {
            biased;
            _ = self.raft_status.wait_for(|s| s.applied_index >= index) => Ok(()),
            _ = self.stop.wait_for(|stopped| *stopped) => Err(ServerError::Stopped),
            () = self.io.clock.sleep(self.config.request_timeout) => Err(ServerError::Timeout),
        }
    }

    /// Proposes a request of the server's own (never permission-checked).
    async fn propose(&self, request: raft_request::Request) -> Result<Applied, ServerError> {
        self.propose_as(&Requester::Server, request).await
    }

    /// Proposes a request on behalf of `requester`, whose permissions every member checks as
    /// the entry applies.
    async fn propose_as(
        &self,
        requester: &Requester,
        request: raft_request::Request,
    ) -> Result<Applied, ServerError> {
        let grows_backend = apply::grows_backend(&request);
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (username, from_server) = requester.to_entry();
        let data = RaftRequest {
            id,
            request: Some(request),
            username,
            from_server,
        }
        .encode_to_vec();
        if data.len() > self.config.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        if grows_backend {
            self.check_quota(data.len() as u64).await?;
        }
        self.wait_for_apply(id, RaftInput::Propose { id, data })
            .await
    }

    /// etcd's quota check before proposing: refuse a write while NOSPACE is raised, and raise it
    /// (through raft, for every member) when this write would take the backend over quota.
    async fn check_quota(&self, cost_bytes: u64) -> Result<(), ServerError> {
        if self.alarms.lock().unwrap().is_raised(AlarmType::Nospace) {
            return Err(ServerError::NoSpace);
        }
        let size_bytes = self.kv.lock().unwrap().size_bytes();
        if size_bytes + cost_bytes <= self.config.quota_backend_bytes {
            return Ok(());
        }
        tracing::warn!(
            size_bytes,
            quota_bytes = self.config.quota_backend_bytes,
            "backend quota exceeded, raising the NOSPACE alarm"
        );
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(error) = self.alarm_change(raise).await {
            tracing::warn!(%error, "could not raise the NOSPACE alarm");
        }
        Err(ServerError::NoSpace)
    }

    /// Lists the raised alarms, or raises / clears one through raft (etcd's `Alarm`).
    pub async fn alarm(&self, request: AlarmRequest) -> Result<AlarmResponse, ServerError> {
        let mut response = match request.action() {
            AlarmAction::Get => AlarmResponse {
                header: None,
                alarms: self.alarms.lock().unwrap().list(),
            },
            AlarmAction::Activate | AlarmAction::Deactivate => self.alarm_change(request).await?,
        };
        let revision = self.kv.lock().unwrap().current_revision();
        response.header = Some(self.header(revision));
        Ok(response)
    }

    async fn alarm_change(&self, request: AlarmRequest) -> Result<AlarmResponse, ServerError> {
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let data = RaftRequest {
            id,
            request: Some(raft_request::Request::Alarm(request)),
            ..Default::default()
        }
        .encode_to_vec();
        match self
            .wait_for_apply(id, RaftInput::Propose { id, data })
            .await?
        {
            Applied::Alarm(response) => Ok(response),
            other => unreachable!("an alarm applied as {other:?}"),
        }
    }

    /// A hash of everything this member retains (Maintenance `Hash`): every retained revision,
    /// the revision counters and the leases. etcd hashes its bolt file; replicas that applied the
    /// same log hash alike here, which is what the hash is for.
    pub fn hash(&self) -> HashResponse {
        let lessor = self.lessor.lock().unwrap();
        let kv = self.kv.lock().unwrap();
        let mut state = kv.to_snapshot().encode_to_vec();
        for lease in lessor.to_snapshot() {
            state.extend_from_slice(&lease.encode_to_vec());
        }
        // etcd's hash covers its auth buckets too. (Empty while auth was never used.)
        state.extend_from_slice(&self.auth.lock().unwrap().to_snapshot().encode_to_vec());
        HashResponse {
            header: Some(self.header(kv.current_revision())),
            hash: crc32fast::hash(&state),
        }
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
        let result = self.await_with_timeout(receiver).await;
        if result.is_err() {
            self.wait.cancel(id);
        }
        result?
    }

    async fn submit(&self, input: RaftInput) -> Result<(), ServerError> {
        if self.stop.get() {
            return Err(ServerError::Stopped);
        }
        self.raft_inputs
            .send(input)
            .await
            .map_err(|_| ServerError::Stopped)
    }

    async fn await_with_timeout<T>(
        &self,
        receiver: oneshot::Receiver<T>,
    ) -> Result<T, ServerError> {
        tokio::select! {
            biased;
            result = receiver => result.map_err(|_| ServerError::Stopped),
            _ = self.stop.wait_for(|stopped| *stopped) => Err(ServerError::Stopped),
            () = self.io.clock.sleep(self.config.request_timeout) => Err(ServerError::Timeout),
        }
    }
}

/// etcd's name for an alarm type, as `alarm list` and Status errors print it.
pub fn alarm_name(alarm: i32) -> &'static str {
    AlarmType::try_from(alarm).map_or("UNKNOWN", |alarm| alarm.as_str_name())
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

fn request_ops(request: &TxnRequest) -> impl Iterator<Item = &crate::pb::etcdserverpb::RequestOp> {
    request.success.iter().chain(request.failure.iter())
}

/// A txn whose every branch only reads (etcd's `isTxnReadonly`), recursively.
fn is_read_only_txn(request: &TxnRequest) -> bool {
    use crate::pb::etcdserverpb::request_op::Request;
    request_ops(request).all(|op| match &op.request {
        Some(Request::RequestRange(_)) | None => true,
        Some(Request::RequestTxn(txn)) => is_read_only_txn(txn),
        Some(Request::RequestPut(_) | Request::RequestDeleteRange(_)) => false,
    })
}
