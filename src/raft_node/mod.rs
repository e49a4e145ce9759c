//! The raft loop: the only code that calls raft-rs's `tick`, `step`, `propose`, `read_index`,
//! `ready` and `advance`. One task owns the `RawNode` and the WAL; the server talks to it through
//! [`RaftInput`]s and watches [`RaftStatus`].
//!
//! Each turn of the loop handles one Ready in the order raft's safety needs (raft-rs's "Processing
//! the Ready State"), with the reason for each step next to it in `on_ready`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::RawNode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot, watch};

use crate::io::Clock;
use crate::server::apply::Applier;
use crate::server::ServerError;
use crate::storage::wal::Wal;

/// How many queued inputs one turn of the loop takes before it handles a Ready: one fsync then
/// covers the whole batch of proposals.
const INPUTS_PER_READY_MAX: usize = 1024;

/// What the server asks of the raft loop.
#[derive(Debug)]
pub enum RaftInput {
    /// Propose a client write whose waiter is registered under `id`.
    Propose { id: u64, data: Vec<u8> },
    /// Ask for a read index: the commit index a linearizable read must wait to see applied.
    ReadIndex {
        reply: oneshot::Sender<Result<u64, ServerError>>,
    },
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
}

pub struct RaftNodeConfig {
    pub member_id: u64,
    pub tick_interval: Duration,
    pub election_ticks: usize,
    pub seed: u64,
}

pub struct RaftNode {
    raw: RawNode<MemStorage>,
    wal: Wal,
    applier: Applier,
    clock: Arc<dyn Clock>,
    tick_interval: Duration,
    /// The node's own randomness: raft-rs's election timeout draw uses the OS RNG, which the
    /// simulator cannot replay, so every draw it makes is overwritten from this seeded one.
    rng: StdRng,
    election_ticks: usize,
    inputs: mpsc::Receiver<RaftInput>,
    status: watch::Sender<RaftStatus>,
    read_index_next: u64,
    read_index_waiters: BTreeMap<u64, oneshot::Sender<Result<u64, ServerError>>>,
}

impl RaftNode {
    pub fn new(
        config: RaftNodeConfig,
        storage: MemStorage,
        wal: Wal,
        applier: Applier,
        clock: Arc<dyn Clock>,
        inputs: mpsc::Receiver<RaftInput>,
        status: watch::Sender<RaftStatus>,
    ) -> Result<RaftNode, ServerError> {
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
            // MVCC state lives in memory and is rebuilt by re-applying the log from the start.
            applied: 0,
            ..Default::default()
        };
        raft_config
            .validate()
            .map_err(|e| ServerError::Storage(format!("invalid raft config: {e}")))?;
        let logger = slog::Logger::root(tracing_slog::TracingSlogDrain, slog::o!());
        let raw = RawNode::new(&raft_config, storage, &logger)
            .map_err(|e| ServerError::Storage(format!("cannot start raft: {e}")))?;
        let mut node = RaftNode {
            raw,
            wal,
            applier,
            clock,
            tick_interval: config.tick_interval,
            rng: StdRng::seed_from_u64(config.seed),
            election_ticks: config.election_ticks,
            inputs,
            status,
            read_index_next: 1,
            read_index_waiters: BTreeMap::new(),
        };
        node.randomize_election_timeout();
        Ok(node)
    }

    /// Runs until `stop` fires or the disk fails. A disk failure ends the loop with an error
    /// rather than letting the node acknowledge anything it could not make durable.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), ServerError> {
        // A single-member cluster need not wait out an election timeout to serve.
        if self.raw.raft.prs().conf().voters().ids().len() == 1 && self.raw.raft.promotable() {
            self.raw
                .campaign()
                .map_err(|e| ServerError::Storage(format!("campaign: {e}")))?;
        }
        let mut tick = self.clock.sleep(self.tick_interval);
        loop {
            self.after_raft_call();
            self.on_ready()?;
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(()),
                () = &mut tick => {
                    self.raw.tick();
                    tick = self.clock.sleep(self.tick_interval);
                }
                input = self.inputs.recv() => {
                    let Some(input) = input else { return Ok(()) };
                    self.handle(input);
                    for _ in 1..INPUTS_PER_READY_MAX {
                        match self.inputs.try_recv() {
                            Ok(input) => self.handle(input),
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }

    fn handle(&mut self, input: RaftInput) {
        match input {
            RaftInput::Propose { id, data } => {
                if self.raw.propose(Vec::new(), data).is_err() {
                    // Dropped: no leader to take it. The waiter learns now instead of timing out.
                    self.applier.reject(id, ServerError::NoLeader);
                }
            }
            RaftInput::ReadIndex { reply } => {
                if self.raw.raft.leader_id == raft::INVALID_ID {
                    let _ = reply.send(Err(ServerError::NoLeader));
                    return;
                }
                let context = self.read_index_next;
                self.read_index_next += 1;
                self.read_index_waiters.insert(context, reply);
                self.raw.read_index(context.to_be_bytes().to_vec());
            }
        }
        self.after_raft_call();
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

    fn on_ready(&mut self) -> Result<(), ServerError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        assert!(
            ready.snapshot().is_empty(),
            "raft snapshots are not produced yet"
        );
        // 1. Entries raft says are committed are already on this node's disk (raft-rs only hands
        //    out entries up to min(committed, persisted)), so they can be applied right away.
        self.apply(ready.take_committed_entries())?;
        // 2. Persist new entries and the hard state (term, vote, commit) with one fsync, before
        //    any message that depends on them leaves: a vote or an append acknowledgement sent
        //    before fsync could be forgotten by a crash after the peer counted it.
        let hard_state = ready.hs().cloned();
        if hard_state.is_some() || !ready.entries().is_empty() {
            crate::failpoint!(self.raw.raft.id, "raftBeforeSave");
            self.wal
                .save(hard_state.as_ref(), ready.entries())
                .map_err(|e| ServerError::Storage(e.to_string()))?;
            crate::failpoint!(self.raw.raft.id, "raftAfterSave");
            let mut core = self.raw.mut_store().wl();
            core.append(ready.entries())
                .expect("raft hands out entries that extend the stored log");
            if let Some(hard_state) = hard_state {
                core.set_hardstate(hard_state);
            }
        }
        // 3. Now messages may go out.
        self.send(ready.take_messages());
        self.send(ready.take_persisted_messages());
        self.answer_read_indexes(ready.take_read_states());
        if let Some(soft_state) = ready.ss() {
            self.note_leader(soft_state.leader_id);
        }
        // 4. Tell raft the Ready is persisted; it may commit more (a single voter commits its own
        //    entries here) and hand those out for applying.
        let mut light_ready = self.raw.advance(ready);
        if let Some(commit) = light_ready.commit_index() {
            self.raw.mut_store().wl().mut_hard_state().commit = commit;
        }
        self.send(light_ready.take_messages());
        self.apply(light_ready.take_committed_entries())?;
        self.raw.advance_apply();
        self.publish_status();
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), ServerError> {
        for entry in entries {
            match entry.get_entry_type() {
                EntryType::EntryNormal => self.applier.apply_normal(&entry),
                EntryType::EntryConfChange => {
                    let change = ConfChange::parse_from_bytes(entry.get_data())
                        .expect("conf change entries are written by raft itself");
                    self.apply_conf_change(&change)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let change = ConfChangeV2::parse_from_bytes(entry.get_data())
                        .expect("conf change entries are written by raft itself");
                    self.apply_conf_change(&change)?;
                }
            }
            self.applier.set_applied_index(entry.index);
        }
        Ok(())
    }

    fn apply_conf_change(
        &mut self,
        change: &impl raft_proto::ConfChangeI,
    ) -> Result<(), ServerError> {
        let conf_state = self
            .raw
            .apply_conf_change(change)
            .map_err(|e| ServerError::Storage(format!("conf change: {e}")))?;
        self.raw.mut_store().wl().set_conf_state(conf_state);
        Ok(())
    }

    fn send(&mut self, messages: Vec<Message>) {
        // Peers arrive with the cluster: until then the only voter is this node and raft has
        // no one to address.
        assert!(
            messages.is_empty(),
            "single-member raft produced messages for peers: {messages:?}"
        );
    }

    fn answer_read_indexes(&mut self, read_states: Vec<raft::ReadState>) {
        for read_state in read_states {
            let Ok(context) = <[u8; 8]>::try_from(read_state.request_ctx.as_slice()) else {
                continue;
            };
            if let Some(reply) = self.read_index_waiters.remove(&u64::from_be_bytes(context)) {
                let _ = reply.send(Ok(read_state.index));
            }
        }
    }

    fn note_leader(&mut self, leader_id: u64) {
        let previous = self.status.borrow().leader_id;
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
            let _ = reply.send(Err(ServerError::LeaderChanged));
        }
    }

    fn publish_status(&mut self) {
        let raft = &self.raw.raft;
        let (term, leader_id, commit_index) = (raft.term, raft.leader_id, raft.raft_log.committed);
        let applied_index = self.applier.applied_index();
        self.status.send_if_modified(|status| {
            let next = RaftStatus {
                term,
                leader_id,
                commit_index,
                applied_index,
                leader_changes: status.leader_changes
                    + u64::from(leader_id != status.leader_id && leader_id != raft::INVALID_ID),
            };
            let changed = *status != next;
            *status = next;
            changed
        });
    }
}
