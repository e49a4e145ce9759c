//! The raft loop: the only code that calls raft-rs's `tick`, `step`, `propose`, `read_index`,
//! `ready` and `advance`. One task owns the `RawNode`, the WAL, the snapshot files and the
//! transport; the server talks to it through [`RaftInput`]s and watches [`RaftStatus`].
//!
//! Each turn of the loop handles one Ready in the order raft's safety needs (raft-rs's "Processing
//! the Ready State"), with the reason for each step next to it in `on_ready`.

mod error;
#[cfg(all(test, not(madsim)))]
mod group_tests;
mod log_store;
#[cfg(all(test, not(madsim)))]
mod mem_transport;
pub mod peer_service;
mod snapshot_files;
mod state_machine;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, Entry, EntryType, Message, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole, Storage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};

use crate::io::Clock;
use crate::storage::wal::Wal;
use crate::watched::Watched;

pub use error::RaftError;
pub use log_store::LogStore;
pub use snapshot_files::SnapshotFiles;
pub use state_machine::{PeerTransport, StateMachine};
pub use transport::Transport;

/// How many queued inputs one turn of the loop takes before it handles a Ready: one fsync then
/// covers the whole batch of proposals.
const INPUTS_PER_READY_MAX: usize = 1024;

/// Entries kept in the log behind a snapshot (etcd's `SnapshotCatchUpEntries`), so that a
/// slightly lagging follower catches up from the log rather than by a whole snapshot.
const SNAPSHOT_CATCH_UP_ENTRIES_MAX: u64 = 5000;

/// Where this start's ReadIndex contexts begin: a draw of its own from the start's seed (a
/// separate stream, so the node's other draws stay as they were), random across starts.
fn first_read_index_context(seed: u64) -> u64 {
    StdRng::seed_from_u64(seed ^ READ_INDEX_CONTEXT_STREAM).random()
}

/// Mixed into the seed for [`first_read_index_context`]'s stream.
const READ_INDEX_CONTEXT_STREAM: u64 = 0x7265_6164_696e_6478;

/// What the server (and the transport) ask of the raft loop.
#[derive(Debug)]
pub enum RaftInput {
    /// Propose a client write whose waiter is registered under `id`.
    Propose { id: u64, data: Vec<u8> },
    /// Propose a membership change; its waiter is registered under `change.id`.
    ProposeConfChange { change: ConfChange },
    /// Ask for a read index: the commit index a linearizable read must wait to see applied.
    ReadIndex {
        reply: oneshot::Sender<Result<u64, RaftError>>,
    },
    /// A message from a peer.
    Step(Box<Message>),
    /// The transport could not reach `to`.
    Unreachable { to: u64 },
    /// The transport delivered (or failed to deliver) a snapshot to `to`.
    SnapshotStatus { to: u64, delivered: bool },
    /// Hand leadership to `to` (MoveLeader, graceful stop).
    TransferLeader { to: u64 },
    /// Report replication progress (leader only has it).
    Progress { reply: oneshot::Sender<Progress> },
    /// A peer refused this member as removed from the cluster.
    RemovedFromCluster,
    /// A message came from a member this one does not know yet, which listens at these URLs.
    LearnPeer { id: u64, peer_urls: Vec<String> },
}

/// Replication progress as the leader sees it.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub is_leader: bool,
    pub last_index: u64,
    /// Highest log index known to be replicated on each member (voters and learners).
    pub matched: BTreeMap<u64, u64>,
}

/// The raft state the rest of the server may look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub term: u64,
    /// 0 when there is no known leader.
    pub leader_id: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub leader_changes: u64,
    pub is_learner: bool,
}

pub struct RaftNodeConfig {
    pub member_id: u64,
    pub tick_interval: Duration,
    pub election_ticks: usize,
    pub seed: u64,
    pub snapshot_count: u64,
    /// The index the state machine already reflects (a snapshot's), 0 to re-apply the log.
    pub applied_index: u64,
}

/// The parts the raft loop owns besides raft itself.
pub struct RaftParts {
    pub store: LogStore,
    pub wal: Wal,
    pub snapshot_files: SnapshotFiles,
    pub state_machine: Box<dyn StateMachine>,
    pub transport: Box<dyn PeerTransport>,
    pub clock: Arc<dyn Clock>,
    pub inputs: mpsc::Receiver<RaftInput>,
    pub status: Arc<Watched<RaftStatus>>,
}

pub struct RaftNode {
    raw: RawNode<LogStore>,
    wal: Wal,
    snapshot_files: SnapshotFiles,
    state_machine: Box<dyn StateMachine>,
    transport: Box<dyn PeerTransport>,
    clock: Arc<dyn Clock>,
    tick_interval: Duration,
    /// The node's own randomness: raft-rs's election timeout draw uses the OS RNG, which the
    /// simulator cannot replay, so every draw it makes is overwritten from this seeded one.
    rng: StdRng,
    election_ticks: usize,
    snapshot_count: u64,
    inputs: mpsc::Receiver<RaftInput>,
    status: Arc<Watched<RaftStatus>>,
    /// The next ReadIndex request context. It starts at a value drawn per start of the member,
    /// so that a read index answered to an earlier run of it (still in flight, or still pending
    /// at the leader, which drops a duplicate context) never answers a read of this run.
    read_index_next: u64,
    read_index_waiters: BTreeMap<u64, oneshot::Sender<Result<u64, RaftError>>>,
}

impl RaftNode {
    pub fn new(config: RaftNodeConfig, parts: RaftParts) -> Result<RaftNode, RaftError> {
        assert!(
            config.election_ticks >= 2,
            "raft needs election ticks > heartbeat ticks"
        );
        let raft_config = raft::Config {
            id: config.member_id,
            election_tick: config.election_ticks,
            heartbeat_tick: 1,
            // A range of width election_ticks: raft-rs draws from it, we overwrite the draw.
            min_election_tick: config.election_ticks,
            max_election_tick: 2 * config.election_ticks,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            // The state machine lives in memory: rebuilt from a snapshot plus the log after it.
            applied: config.applied_index,
            ..Default::default()
        };
        raft_config
            .validate()
            .map_err(|e| RaftError::Storage(format!("invalid raft config: {e}")))?;
        let logger = slog::Logger::root(tracing_slog::TracingSlogDrain, slog::o!());
        let raw = RawNode::new(&raft_config, parts.store, &logger)
            .map_err(|e| RaftError::Storage(format!("cannot start raft: {e}")))?;
        let mut node = RaftNode {
            raw,
            wal: parts.wal,
            snapshot_files: parts.snapshot_files,
            state_machine: parts.state_machine,
            transport: parts.transport,
            clock: parts.clock,
            tick_interval: config.tick_interval,
            rng: StdRng::seed_from_u64(config.seed),
            election_ticks: config.election_ticks,
            snapshot_count: config.snapshot_count,
            inputs: parts.inputs,
            status: parts.status,
            read_index_next: first_read_index_context(config.seed),
            read_index_waiters: BTreeMap::new(),
        };
        node.randomize_election_timeout();
        node.transport.set_peers(&node.state_machine.members());
        Ok(node)
    }

    /// Runs until `stop` fires or the disk fails. A disk failure ends the loop with an error
    /// rather than letting the node acknowledge anything it could not make durable.
    pub async fn run(mut self, stop: Arc<Watched<bool>>) -> Result<(), RaftError> {
        // The first Ready re-applies the log, which tells raft the current voters.
        self.on_ready().await?;
        // A single-voter cluster need not wait out an election timeout to serve.
        let voters = self.raw.raft.prs().conf().voters().ids();
        if voters.len() == 1 && voters.contains(self.raw.raft.id) {
            let _ = self.raw.campaign();
        }
        let mut tick = self.clock.sleep(self.tick_interval);
        loop {
            self.after_raft_call();
            self.on_ready().await?;
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
                () = &mut tick => {
                    self.raw.tick();
                    tick = self.clock.sleep(self.tick_interval);
                }
                input = self.inputs.recv() => {
                    let Some(input) = input else { return Ok(()) };
                    self.handle(input)?;
                    for _ in 1..INPUTS_PER_READY_MAX {
                        match self.inputs.try_recv() {
                            Ok(input) => self.handle(input)?,
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }

    fn handle(&mut self, input: RaftInput) -> Result<(), RaftError> {
        match input {
            RaftInput::Propose { id, data } => {
                if self.raw.propose(Vec::new(), data).is_err() {
                    // Dropped: no leader to take it. The waiter learns now instead of timing out.
                    self.state_machine.reject(id, RaftError::NoLeader);
                }
            }
            RaftInput::ProposeConfChange { change } => {
                let id = change.id;
                if self.raw.propose_conf_change(Vec::new(), change).is_err() {
                    self.state_machine.reject(id, RaftError::NoLeader);
                }
            }
            RaftInput::ReadIndex { reply } => {
                if self.raw.raft.leader_id == raft::INVALID_ID {
                    let _ = reply.send(Err(RaftError::NoLeader));
                    return Ok(());
                }
                let context = self.read_index_next;
                self.read_index_next = self.read_index_next.wrapping_add(1);
                self.read_index_waiters.insert(context, reply);
                // The leader keys pending reads by context across all members, and drops a
                // duplicate: the member id makes each member's contexts distinct.
                let mut request_context = self.raw.raft.id.to_be_bytes().to_vec();
                request_context.extend_from_slice(&context.to_be_bytes());
                self.raw.read_index(request_context);
            }
            RaftInput::Step(message) => {
                if let Err(error) = self.raw.step(*message) {
                    tracing::debug!(%error, "raft refused a peer message");
                }
            }
            RaftInput::Unreachable { to } => self.raw.report_unreachable(to),
            RaftInput::SnapshotStatus { to, delivered } => {
                let status = if delivered {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            RaftInput::TransferLeader { to } => self.raw.transfer_leader(to),
            RaftInput::Progress { reply } => {
                let raft = &self.raw.raft;
                let _ = reply.send(Progress {
                    is_leader: raft.state == StateRole::Leader,
                    last_index: raft.raft_log.last_index(),
                    matched: raft
                        .prs()
                        .iter()
                        .map(|(id, pr)| (*id, pr.matched))
                        .collect(),
                });
            }
            RaftInput::RemovedFromCluster => return Err(RaftError::Removed),
            RaftInput::LearnPeer { id, peer_urls } => self.transport.learn_peer(id, peer_urls),
        }
        self.after_raft_call();
        Ok(())
    }

    /// Overwrites raft-rs's OS-random election timeout with one from the seeded RNG whenever
    /// raft has just reset its election timer (elapsed == 0): after every call that can reset it.
    fn after_raft_call(&mut self) {
        if self.raw.raft.election_elapsed == 0 {
            self.randomize_election_timeout();
        }
    }

    fn randomize_election_timeout(&mut self) {
        let timeout = self
            .rng
            .random_range(self.election_ticks..2 * self.election_ticks);
        self.raw.raft.set_randomized_election_timeout(timeout);
    }

    async fn on_ready(&mut self) -> Result<(), RaftError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        // 0. A member that stops leading demotes its leases before anything else in this Ready:
        //    a snapshot from the new leader may follow at once (etcd's raft loop demotes here).
        if ready
            .ss()
            .is_some_and(|soft| soft.raft_state != StateRole::Leader)
        {
            self.state_machine.demote();
        }
        // 1. A snapshot from the leader replaces the state machine before any entry after it
        //    is applied.
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone()).await?;
        }
        // 2. A leader's appends may leave before its own fsync (Raft thesis §10.2.1: the leader
        //    writes its log in parallel with replicating it): raft-rs only puts such messages in
        //    `messages()`, and counts the leader itself towards a commit only once `advance` says
        //    its entries are durable. Followers' answers (votes, append acknowledgements) are
        //    `persisted_messages()` and wait for the fsync below.
        let messages = ready.take_messages();
        if !messages.is_empty() {
            crate::failpoint!(self.raw.raft.id, "raftBeforeLeaderSend");
        }
        self.transport.send(messages);
        // 3. Entries raft says are committed are already on this node's disk (raft-rs only hands
        //    out entries up to min(committed, persisted)), so they can be applied right away.
        self.apply(ready.take_committed_entries())?;
        // 4. Persist new entries and the hard state (term, vote, commit) with one fsync, before
        //    any message that depends on them leaves: a vote or an append acknowledgement sent
        //    before fsync could be forgotten by a crash after the peer counted it. The fsync is
        //    awaited: the transport and the server's other tasks go on meanwhile.
        let mut persisted_messages = ready.take_persisted_messages();
        if crate::planted_bug!(FollowerAckBeforeFsync) {
            self.transport.send(std::mem::take(&mut persisted_messages));
        }
        let hard_state = ready.hs().cloned();
        if hard_state.is_some() || !ready.entries().is_empty() {
            crate::failpoint!(self.raw.raft.id, "raftBeforeSave");
            self.wal
                .save(hard_state.as_ref(), ready.entries())
                .await
                .map_err(|e| RaftError::Storage(e.to_string()))?;
            crate::failpoint!(self.raw.raft.id, "raftAfterSave");
            let mut core = self.raw.store().entries().wl();
            core.append(ready.entries())
                .expect("raft hands out entries that extend the stored log");
            if let Some(hard_state) = hard_state {
                core.set_hardstate(hard_state);
            }
        }
        // 5. Now the messages that depend on this node's durable state may go out.
        if !persisted_messages.is_empty() {
            crate::failpoint!(self.raw.raft.id, "raftBeforeFollowerSend");
        }
        self.transport.send(persisted_messages);
        self.answer_read_indexes(ready.take_read_states());
        if let Some(soft_state) = ready.ss() {
            self.note_leader(soft_state.leader_id);
        }
        // 6. Tell raft the Ready is persisted; it may commit more (a single voter commits its own
        //    entries here) and hand those out for applying.
        let mut light_ready = self.raw.advance(ready);
        if let Some(commit) = light_ready.commit_index() {
            self.raw.store().entries().wl().mut_hard_state().commit = commit;
        }
        self.transport.send(light_ready.take_messages());
        self.apply(light_ready.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_snapshot().await?;
        self.raw
            .store()
            .release_applied(self.state_machine.applied_index(), self.catch_up_entries())
            .map_err(|e| RaftError::Storage(format!("releasing applied entries: {e}")))?;
        self.publish_status();
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), RaftError> {
        for entry in entries {
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if self.state_machine.apply_entry(&entry) {
                        self.transport.set_peers(&self.state_machine.members());
                    }
                    self.promote_leases_at(&entry);
                }
                EntryType::EntryConfChange => {
                    crate::failpoint!(self.raw.raft.id, "beforeApplyOneConfChange");
                    let change = ConfChange::parse_from_bytes(entry.get_data())
                        .expect("conf change entries are written by raft itself");
                    self.apply_conf_change(&change)?;
                }
                EntryType::EntryConfChangeV2 => {
                    panic!(
                        "detcd never proposes ConfChangeV2, yet entry {} is one",
                        entry.index
                    )
                }
            }
            self.state_machine.set_applied_index(entry.index);
        }
        Ok(())
    }

    /// A leader promotes its leases when it applies its own term's first entry, the empty one
    /// raft appends on election (etcd's): only then has it applied everything its predecessors
    /// committed, revokes included. Its commit index alone may be stale until that entry commits.
    fn promote_leases_at(&self, entry: &Entry) {
        let raft = &self.raw.raft;
        if entry.get_data().is_empty() && entry.term == raft.term && raft.state == StateRole::Leader
        {
            let election_timeout = self.tick_interval * self.election_ticks as u32;
            self.state_machine.promote(election_timeout, raft.term);
            tracing::debug!(term = raft.term, "promoted leases");
        }
    }

    fn apply_conf_change(&mut self, change: &ConfChange) -> Result<(), RaftError> {
        if !self.state_machine.apply_conf_change(change) {
            // Refused on every member alike: raft's configuration stays as it was.
            return Ok(());
        }
        let conf_state = self
            .raw
            .apply_conf_change(change)
            .map_err(|e| RaftError::Storage(format!("conf change: {e}")))?;
        self.raw.store().entries().wl().set_conf_state(conf_state);
        self.transport.set_peers(&self.state_machine.members());
        if change.get_change_type() == ConfChangeType::RemoveNode
            && change.node_id == self.raw.raft.id
        {
            return Err(RaftError::Removed);
        }
        Ok(())
    }

    /// Installs a leader's snapshot: durable first, then it replaces the state machine.
    async fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), RaftError> {
        let metadata = snapshot.get_metadata().clone();
        tracing::info!(
            index = metadata.index,
            term = metadata.term,
            "installing snapshot from leader"
        );
        self.persist_snapshot(&snapshot).await?;
        crate::failpoint!(self.raw.raft.id, "raftBeforeApplySnap");
        self.state_machine.restore(&snapshot)?;
        crate::failpoint!(self.raw.raft.id, "raftAfterApplySnap");
        self.raw
            .store()
            .entries()
            .wl()
            .apply_snapshot(snapshot.clone())
            .map_err(|e| RaftError::Storage(format!("applying snapshot: {e}")))?;
        self.raw.mut_store().set_snapshot(snapshot);
        self.transport.set_peers(&self.state_machine.members());
        Ok(())
    }

    /// Makes a snapshot durable: the file first, then the WAL's marker for it, so a crash between
    /// the two leaves an unused file, never a marker without its snapshot (etcd's order); then
    /// the purge of files older than the marker's.
    async fn persist_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), RaftError> {
        crate::failpoint!(self.raw.raft.id, "raftBeforeSaveSnap");
        self.snapshot_files
            .save(snapshot)
            .map_err(RaftError::Storage)?;
        if crate::planted_bug!(PurgeBeforeMarker) {
            self.snapshot_files.purge(snapshot.get_metadata());
        }
        crate::failpoint!(self.raw.raft.id, "raftBeforeSnapMarker");
        self.wal
            .save_snapshot_marker(snapshot.get_metadata())
            .await
            .map_err(|e| RaftError::Storage(e.to_string()))?;
        // Only now may older files go: until the marker is durable, a crash restarts from the
        // previous one (bug 7).
        self.snapshot_files.purge(snapshot.get_metadata());
        crate::failpoint!(self.raw.raft.id, "raftAfterSaveSnap");
        Ok(())
    }

    /// Every `snapshot_count` applied entries, or when a peer needs a newer snapshot than the
    /// latest (a member added since): snapshot the state machine, then release the log (in
    /// memory and on disk) behind it, keeping some entries for slow followers.
    async fn maybe_snapshot(&mut self) -> Result<(), RaftError> {
        let applied = self.state_machine.applied_index();
        let snapshot_index = self.raw.store().snapshot_index();
        let wanted = self.raw.store().take_snapshot_request() && applied > snapshot_index;
        if applied < snapshot_index + self.snapshot_count && !wanted {
            return Ok(());
        }
        let mut snapshot = Snapshot {
            data: self.state_machine.snapshot_data().into(),
            ..Default::default()
        };
        let metadata = snapshot.mut_metadata();
        metadata.index = applied;
        metadata.term = self
            .raw
            .store()
            .term(applied)
            .map_err(|e| RaftError::Storage(format!("term of applied index: {e}")))?;
        metadata.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        let term = metadata.term;
        self.persist_snapshot(&snapshot).await?;
        self.raw.mut_store().set_snapshot(snapshot);
        let catch_up = self.catch_up_entries();
        let first_index = self.raw.store().first_index().unwrap_or(1);
        let compact_to = applied.saturating_sub(catch_up);
        if compact_to > first_index {
            self.raw
                .store()
                .entries()
                .wl()
                .compact(compact_to)
                .map_err(|e| RaftError::Storage(format!("compacting the raft log: {e}")))?;
        }
        // The WAL keeps what is after the snapshot; segments wholly before it can go.
        self.wal
            .release_to(applied)
            .map_err(|e| RaftError::Storage(e.to_string()))?;
        crate::failpoint!(self.raw.raft.id, "raftAfterWALRelease");
        tracing::info!(index = applied, term, "took snapshot");
        Ok(())
    }

    /// Applied entries kept in memory for followers a little behind.
    fn catch_up_entries(&self) -> u64 {
        self.snapshot_count.min(SNAPSHOT_CATCH_UP_ENTRIES_MAX)
    }

    fn answer_read_indexes(&mut self, read_states: Vec<raft::ReadState>) {
        for read_state in read_states {
            let Some(context) = read_state
                .request_ctx
                .strip_prefix(&self.raw.raft.id.to_be_bytes()[..])
                .and_then(|counter| <[u8; 8]>::try_from(counter).ok())
            else {
                continue;
            };
            if let Some(reply) = self.read_index_waiters.remove(&u64::from_be_bytes(context)) {
                let _ = reply.send(Ok(read_state.index));
            }
        }
    }

    fn note_leader(&mut self, leader_id: u64) {
        let previous = self.status.get().leader_id;
        if leader_id == previous {
            return;
        }
        tracing::info!(
            member = format_args!("{:x}", self.raw.raft.id),
            leader = format_args!("{leader_id:x}"),
            term = self.raw.raft.term,
            "leader changed"
        );
        // Read indexes asked of the previous leader may never be answered by the new one.
        for (_, reply) in std::mem::take(&mut self.read_index_waiters) {
            let _ = reply.send(Err(RaftError::LeaderChanged));
        }
    }

    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let (term, leader_id, commit_index) = (raft.term, raft.leader_id, raft.raft_log.committed);
        let is_learner = raft.prs().conf().learners().contains(&raft.id);
        let applied_index = self.state_machine.applied_index();
        self.status.update(|status| {
            let next = RaftStatus {
                term,
                leader_id,
                commit_index,
                applied_index,
                leader_changes: status.leader_changes
                    + u64::from(leader_id != status.leader_id && leader_id != raft::INVALID_ID),
                is_learner,
            };
            let changed = *status != next;
            *status = next;
            changed
        });
    }
}
