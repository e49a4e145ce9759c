//! What the raft loop needs of the rest of the server, as traits it defines and the server
//! implements: the state machine committed entries change, and the transport to the peers. The
//! dependency points one way (server → raft_node), and the loop runs in tests against in-memory
//! stand-ins.

use std::time::Duration;

use raft::prelude::{ConfChange, Entry, Message, Snapshot};

use crate::pb::etcdserverpb::Member;

use super::RaftError;

/// The replicated state machine. Applying is deterministic: the same entries in the same order
/// leave every member in the same state, which lets a restarted member rebuild its state from a
/// snapshot plus the log after it.
pub trait StateMachine: Send + 'static {
    /// The index of the last entry applied (or of the snapshot restored).
    fn applied_index(&self) -> u64;

    /// Records that everything up to `index` is applied; `index` only grows.
    fn set_applied_index(&mut self, index: u64);

    /// Applies one committed normal entry (an empty one is a new leader's no-op) and wakes its
    /// proposer. Returns whether the member list changed (peer URLs to update).
    fn apply_entry(&mut self, entry: &Entry) -> bool;

    /// Applies a committed membership change and wakes its proposer. Returns whether it took
    /// effect: one refused (on every member alike) leaves raft's configuration as it was too.
    fn apply_conf_change(&mut self, change: &ConfChange) -> bool;

    /// Replaces the whole state with a snapshot's; the applied index becomes the snapshot's.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), RaftError>;

    /// The whole state as snapshot payload, as of the applied index.
    fn snapshot_data(&self) -> Vec<u8>;

    /// The members as applied, whose peer URLs the transport sends to.
    fn members(&self) -> Vec<Member>;

    /// The proposal under `id` will never be applied: wake its waiter with `error` now.
    fn reject(&self, id: u64, error: RaftError);

    /// This member stopped leading: duties only a leader has (lease expiry) stop.
    fn demote(&self);

    /// This member leads and has applied everything its predecessors committed: leader duties
    /// start, with leases extended by `election_timeout` (none expires for the election's gap),
    /// for as long as it leads in `term`.
    fn promote(&self, election_timeout: Duration, term: u64);
}

/// The sending side of the peer transport. It must never block the raft loop: messages it cannot
/// deliver are dropped (raft resends) and reported as [`super::RaftInput::Unreachable`] or a failed
/// [`super::RaftInput::SnapshotStatus`] on the loop's input queue.
pub trait PeerTransport: Send + 'static {
    /// Makes the set of peers the given members (minus this one).
    fn set_peers(&mut self, members: &[Member]);

    /// A message came from `id`, not (yet) in the applied member list, which listens at these URLs.
    fn learn_peer(&mut self, id: u64, peer_urls: Vec<String>);

    /// Queues messages for their peers without waiting.
    fn send(&mut self, messages: Vec<Message>);
}
