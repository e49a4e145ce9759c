//! The etcd server (etcd's `etcdserver`): owns the MVCC store and the raft loop, and turns client
//! requests into raft proposals (writes) or ReadIndex-guarded reads.
//!
//! A write: assign a request id, register a waiter for it, propose, then wait for the apply
//! result, the request timeout, or server stop (etcd's `processInternalRaftRequestOnce`).

pub mod apply;
pub mod bootstrap;
mod error;
pub mod metrics;
pub mod wait;
pub mod watchable;

pub use error::ServerError;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prost::Message as _;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Config, ETCD_API_VERSION};
use crate::io::Io;
use crate::pb::detcdpb::{raft_request, RaftRequest};
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, HashKvResponse,
    Member, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, StatusResponse,
    TxnRequest, TxnResponse,
};
use crate::raft_node::{RaftInput, RaftNode, RaftNodeConfig, RaftStatus};
use crate::storage::mvcc::KvStore;
use apply::{Applied, Applier, ApplyResult};
use bootstrap::{BootstrapError, Bootstrapped};
use metrics::Metrics;
use wait::Wait;

/// Bound on queued proposals and reads: a full queue pushes back on clients instead of growing.
const RAFT_INPUTS_MAX: usize = 4096;

pub struct EtcdServer {
    config: Config,
    member_id: u64,
    cluster_id: u64,
    members: Vec<Member>,
    kv: Arc<Mutex<KvStore>>,
    wait: Arc<Wait<ApplyResult>>,
    raft_inputs: mpsc::Sender<RaftInput>,
    raft_status: watch::Receiver<RaftStatus>,
    /// The store's revision as the applier leaves it; watch streams wake on it.
    applied_revision: watch::Receiver<i64>,
    metrics: Arc<Metrics>,
    io: Io,
    next_request_id: AtomicU64,
    stop: watch::Sender<bool>,
    /// The raft loop, until `start` takes it to run.
    raft_node: Mutex<Option<RaftNode>>,
}

impl EtcdServer {
    /// Bootstraps from disk and builds the server; nothing runs until [`EtcdServer::start`].
    pub fn new(config: Config, io: Io) -> Result<Arc<EtcdServer>, BootstrapError> {
        let Bootstrapped {
            metadata,
            storage,
            wal,
            last_index_on_disk,
        } = bootstrap::bootstrap(&config, io.disk.clone())?;
        tracing::info!(
            name = %config.name,
            member_id = format_args!("{:x}", metadata.member_id),
            cluster_id = format_args!("{:x}", metadata.cluster_id),
            last_index_on_disk,
            "bootstrapped member"
        );
        let kv = Arc::new(Mutex::new(KvStore::new()));
        let wait = Arc::new(Wait::default());
        let metrics = Arc::new(Metrics::default());
        let (raft_inputs, inputs) = mpsc::channel(RAFT_INPUTS_MAX);
        let (status_sender, raft_status) = watch::channel(RaftStatus::default());
        let applier = Applier::new(kv.clone(), wait.clone(), metrics.clone());
        let applied_revision = applier.applied_revision();
        let raft_node = RaftNode::new(
            RaftNodeConfig {
                member_id: metadata.member_id,
                tick_interval: config.heartbeat_interval,
                election_ticks: config.election_ticks,
                seed: io.seed,
            },
            storage,
            wal,
            applier,
            io.clock.clone(),
            inputs,
            status_sender,
        )
        .map_err(|e| BootstrapError::Config(e.to_string()))?;
        // Request ids: member bits, then wall-clock bits, then a counter, so that ids from an
        // earlier run of this member (still in the log) never collide with new ones.
        let id_base =
            ((metadata.member_id & 0xffff) << 48) | ((io.clock.wall_ms() & 0xff_ffff_ffff) << 8);
        Ok(Arc::new(EtcdServer {
            config,
            member_id: metadata.member_id,
            cluster_id: metadata.cluster_id,
            members: metadata.members,
            kv,
            wait,
            raft_inputs,
            raft_status,
            applied_revision,
            metrics,
            io,
            next_request_id: AtomicU64::new(id_base),
            stop: watch::channel(false).0,
            raft_node: Mutex::new(Some(raft_node)),
        }))
    }

    /// Starts the raft loop in the background; its end (stop, or a disk failure) resolves the
    /// returned handle.
    pub fn start(&self) -> tokio::task::JoinHandle<Result<(), ServerError>> {
        let raft_node = self
            .raft_node
            .lock()
            .unwrap()
            .take()
            .expect("EtcdServer::start is called once");
        tokio::spawn(raft_node.run(self.stop.subscribe()))
    }

    /// Stops the raft loop; in-flight requests end with `etcdserver: server stopped`.
    pub fn stop(&self) {
        self.stop.send_replace(true);
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

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn raft_status(&self) -> RaftStatus {
        *self.raft_status.borrow()
    }

    pub fn clock(&self) -> Arc<dyn crate::io::Clock> {
        self.io.clock.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Resolves once this member knows a leader and has applied everything committed before it
    /// started: from then on it serves what it had acknowledged before.
    pub async fn wait_ready(&self) {
        let mut status = self.raft_status.clone();
        let _ = status
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

    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, ServerError> {
        if !request.serializable {
            self.linearizable_read_barrier().await?;
        }
        self.metrics.mvcc_range.inc();
        let mut response = self.kv.lock().unwrap().range(&request)?;
        self.with_header(&mut response.header);
        Ok(response)
    }

    pub async fn put(&self, request: PutRequest) -> Result<PutResponse, ServerError> {
        match self.propose(raft_request::Request::Put(request)).await? {
            Applied::Put(mut response) => {
                self.with_header(&mut response.header);
                Ok(response)
            }
            other => unreachable!("a put applied as {other:?}"),
        }
    }

    pub async fn delete_range(
        &self,
        request: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, ServerError> {
        match self
            .propose(raft_request::Request::DeleteRange(request))
            .await?
        {
            Applied::DeleteRange(mut response) => {
                self.with_header(&mut response.header);
                Ok(response)
            }
            other => unreachable!("a delete applied as {other:?}"),
        }
    }

    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, ServerError> {
        if is_read_only_txn(&request) {
            // A read-only txn needs no log entry: read at a linearizable point, as etcd does.
            let serializable = request_ops(&request).all(|op| {
                matches!(&op.request, Some(crate::pb::etcdserverpb::request_op::Request::RequestRange(r)) if r.serializable)
            });
            if !serializable {
                self.linearizable_read_barrier().await?;
            }
            let no_leases = |_lease: i64| false;
            let mut response = self.kv.lock().unwrap().txn(&request, &no_leases)?;
            self.with_header(&mut response.header);
            return Ok(response);
        }
        match self.propose(raft_request::Request::Txn(request)).await? {
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
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: false,
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
            current_revision: kv.current_revision(),
            compact_revision: kv.compacted_revision(),
        })
    }

    /// Waits until this member has applied everything committed when the read arrived (raft's
    /// ReadIndex), so a read never returns older data than a write already acknowledged.
    async fn linearizable_read_barrier(&self) -> Result<(), ServerError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(RaftInput::ReadIndex { reply }).await?;
        let index = self.await_with_timeout(receiver).await??;
        let mut status = self.raft_status.clone();
        let mut stop = self.stop.subscribe();
        tokio::select! {
            result = status.wait_for(|s| s.applied_index >= index) => result.map(|_| ()).map_err(|_| ServerError::Stopped),
            _ = stop.wait_for(|stopped| *stopped) => Err(ServerError::Stopped),
            () = self.io.clock.sleep(self.config.request_timeout) => Err(ServerError::Timeout),
        }
    }

    async fn propose(&self, request: raft_request::Request) -> Result<Applied, ServerError> {
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let data = RaftRequest {
            id,
            request: Some(request),
        }
        .encode_to_vec();
        if data.len() > self.config.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        let receiver = self.wait.register(id);
        if let Err(error) = self.submit(RaftInput::Propose { id, data }).await {
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
        if *self.stop.borrow() {
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
        let mut stop = self.stop.subscribe();
        tokio::select! {
            result = receiver => result.map_err(|_| ServerError::Stopped),
            _ = stop.wait_for(|stopped| *stopped) => Err(ServerError::Stopped),
            () = self.io.clock.sleep(self.config.request_timeout) => Err(ServerError::Timeout),
        }
    }
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
