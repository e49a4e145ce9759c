//! The etcd server (etcd's `etcdserver`): owns the MVCC store and the raft loop, and turns client
//! requests into raft proposals (writes) or ReadIndex-guarded reads.
//!
//! `EtcdServer` builds the parts and runs the lifecycle; each part serves one concern and holds
//! only the state it needs:
//! - [`propose::Proposer`]: the one way to raft (typed proposals, conf changes, ReadIndex),
//! - [`kv::KvServer`]: KV writes and reads, linearizable or serializable,
//! - [`cluster::ClusterAdmin`]: members, learners, leader transfer, publish,
//! - [`maintenance::Maintenance`]: status, hashes, alarms, backup,
//! - [`lease::Leases`]: leases, with keep-alives forwarded to the leader,
//! - [`auth::AuthServer`]: who a request comes from, and the auth store's requests.

pub mod alarms;
pub mod apply;
pub mod auth;
pub mod bootstrap;
pub mod cluster;
mod error;
pub mod header;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod membership;
pub mod propose;
mod quota;
pub mod wait;
pub mod watchable;

pub use error::ServerError;
// The applier tells read-only txns (no backend growth) by the same rule as the read path.
pub(crate) use kv::is_read_only_txn;

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::auth::AuthStore;
use crate::config::Config;
use crate::io::Io;
use crate::metrics::{self, Metrics};
use crate::pb::etcdserverpb::{Member, ResponseHeader};
use crate::raft_node::peer_service::{PeerCluster, PeerService, Standing};
use crate::raft_node::{RaftInput, RaftNode, RaftNodeConfig, RaftParts, RaftStatus, Transport};
use crate::storage::mvcc::KvStore;
use crate::watched::Watched;
use alarms::Alarms;
use apply::{Applier, StateMachine, TokenTtl};
use auth::AuthServer;
use bootstrap::{BootstrapError, Bootstrapped, RemoteCluster};
use cluster::ClusterAdmin;
use header::Headers;
use kv::KvServer;
use lease::Leases;
use maintenance::Maintenance;
use membership::Membership;
use propose::{Proposer, ProposerParts};
use quota::Quota;
use wait::Wait;

/// Bound on queued proposals and reads: a full queue pushes back on clients instead of growing.
const RAFT_INPUTS_MAX: usize = 4096;

pub struct EtcdServer {
    config: Arc<Config>,
    io: Io,
    headers: Headers,
    proposer: Arc<Proposer>,
    kv: KvServer,
    cluster: ClusterAdmin,
    maintenance: Maintenance,
    leases: Arc<Leases>,
    auth: AuthServer,
    raft_inputs: mpsc::Sender<RaftInput>,
    raft_status: Arc<Watched<RaftStatus>>,
    /// The store's revision as the applier leaves it; watch streams wake on it.
    applied_revision: Arc<Watched<i64>>,
    /// Watches open on all streams, against `--experimental-max-watchers`.
    watcher_budget: watchable::WatcherBudget,
    metrics: Arc<Metrics>,
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
        let state_machine = StateMachine {
            kv: kv.clone(),
            membership: membership.clone(),
            lessor: lessor.clone(),
            alarms: alarms.clone(),
            auth: auth.clone(),
        };
        let applier = Applier::new(
            metadata.member_id,
            state_machine.clone(),
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
                state_machine: Box::new(applier),
                transport: Box::new(Transport::new(
                    metadata.cluster_id,
                    metadata.member_id,
                    config.initial_advertise_peer_urls.clone(),
                    io.clock.clone(),
                    config.dialers.peer.clone(),
                    raft_inputs.clone(),
                    metrics.clone(),
                )),
                clock: io.clock.clone(),
                inputs,
                status: raft_status.clone(),
            },
        )
        .map_err(|e| BootstrapError::Config(e.to_string()))?;
        let config = Arc::new(config);
        let stop = Arc::new(Watched::new(false));
        let member_id = metadata.member_id;
        let headers = Headers::new(
            metadata.cluster_id,
            member_id,
            raft_status.clone(),
            kv.clone(),
        );
        let proposer = Arc::new(Proposer::new(
            member_id,
            config.clone(),
            io.clock.clone(),
            ProposerParts {
                inputs: raft_inputs.clone(),
                wait,
                raft_status: raft_status.clone(),
                stop: stop.clone(),
                quota: Quota::new(kv.clone(), alarms.clone(), config.quota_backend_bytes),
            },
        ));
        let clock = io.clock.clone();
        Ok(Arc::new(EtcdServer {
            kv: KvServer::new(
                kv.clone(),
                auth.clone(),
                proposer.clone(),
                headers.clone(),
                metrics.clone(),
            ),
            cluster: ClusterAdmin::new(
                config.clone(),
                clock.clone(),
                membership.clone(),
                proposer.clone(),
                (member_id, metadata.cluster_id),
            ),
            maintenance: Maintenance::new(state_machine, proposer.clone(), headers.clone()),
            leases: Arc::new(Leases::new(
                member_id,
                config.clone(),
                clock.clone(),
                (lessor, membership.clone()),
                proposer.clone(),
                headers.clone(),
            )),
            auth: AuthServer::new(
                (config.clone(), clock, io.seed),
                auth,
                proposer.clone(),
                headers.clone(),
            ),
            watcher_budget: watchable::WatcherBudget::new(config.max_watchers),
            config,
            io,
            headers,
            proposer,
            raft_inputs,
            raft_status,
            applied_revision,
            metrics,
            stop,
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
        self.leases.start_duties(self.stop.clone());
        let stop = self.stop.clone();
        tokio::spawn(async move { raft_node.run(stop).await.map_err(ServerError::from) })
    }

    /// Stops the raft loop; in-flight requests end with `etcdserver: server stopped`.
    pub fn stop(&self) {
        self.stop.set(true);
    }

    pub fn kv(&self) -> &KvServer {
        &self.kv
    }

    pub fn cluster(&self) -> &ClusterAdmin {
        &self.cluster
    }

    pub fn maintenance(&self) -> &Maintenance {
        &self.maintenance
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    pub fn auth(&self) -> &AuthServer {
        &self.auth
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn member_id(&self) -> u64 {
        self.headers.member_id()
    }

    pub fn cluster_id(&self) -> u64 {
        self.headers.cluster_id()
    }

    /// The receiving side of the peer transport.
    pub fn peer_service(self: &Arc<Self>) -> PeerService {
        PeerService::new(
            self.member_id(),
            self.clone(),
            self.raft_inputs.clone(),
            self.metrics.clone(),
        )
    }

    pub(crate) fn membership(&self) -> &Mutex<Membership> {
        self.cluster.membership()
    }

    pub fn members(&self) -> Vec<Member> {
        self.cluster.members()
    }

    /// See [`Proposer::linearizable_read_barrier`] (the peer service's member list waits on it).
    pub(crate) async fn linearizable_read_barrier(&self) -> Result<(), ServerError> {
        self.proposer.linearizable_read_barrier().await
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
        self.headers.at(revision)
    }

    /// The MVCC store, which watch streams read history from.
    pub(crate) fn store(&self) -> &Mutex<KvStore> {
        self.kv.store()
    }

    /// The revision the applier has reached; watch streams wake on it.
    pub(crate) fn applied_revision(&self) -> &Arc<Watched<i64>> {
        &self.applied_revision
    }

    /// Set once the server stops.
    pub(crate) fn stopped(&self) -> &Watched<bool> {
        &self.stop
    }

    pub(crate) fn watcher_budget(&self) -> &watchable::WatcherBudget {
        &self.watcher_budget
    }

    pub fn metrics_text(&self) -> String {
        let raft = self.raft_status();
        let kv = self.store().lock().unwrap();
        self.metrics.render(&metrics::Snapshot {
            has_leader: raft.leader_id != 0,
            is_leader: raft.leader_id == self.member_id(),
            leader_changes: raft.leader_changes,
            proposals_pending: self.proposer.pending() as u64,
            db_size_bytes: kv.size_bytes(),
            keys: metrics::live_keys(&kv),
            current_revision: kv.current_revision(),
            compact_revision: kv.compacted_revision(),
            watchers: self.watcher_budget.open() as u64,
        })
    }
}

/// What the peer service checks senders against, and answers a joining member with.
#[tonic::async_trait]
impl PeerCluster for EtcdServer {
    fn cluster_id(&self) -> u64 {
        self.cluster_id()
    }

    fn standing(&self, member_id: u64) -> Standing {
        let membership = self.membership().lock().unwrap();
        if membership.is_removed(member_id) {
            Standing::Removed
        } else if membership.get(member_id).is_none() {
            Standing::Unknown
        } else {
            Standing::Member
        }
    }

    async fn linearizable_members(&self) -> Result<Vec<Member>, String> {
        self.linearizable_read_barrier()
            .await
            .map_err(|error| error.to_string())?;
        Ok(self.members())
    }
}
