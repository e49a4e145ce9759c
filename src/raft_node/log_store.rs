//! raft-rs's view of the log: raft-rs's `MemStorage` holding the entries (loaded from the WAL at
//! start, appended after each fsync), except that snapshots come from the last one this member
//! took or installed — `MemStorage` would hand out a snapshot without the state machine's data.

use raft::prelude::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

#[derive(Clone, Default)]
pub struct LogStore {
    entries: MemStorage,
    snapshot: Snapshot,
}

impl LogStore {
    pub fn new(entries: MemStorage) -> LogStore {
        LogStore {
            entries,
            snapshot: Snapshot::default(),
        }
    }

    pub fn entries(&self) -> &MemStorage {
        &self.entries
    }

    /// The latest snapshot, taken here or installed from the leader: what a lagging follower gets.
    pub fn set_snapshot(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.get_metadata().index >= self.snapshot.get_metadata().index,
            "snapshots only move forward"
        );
        self.snapshot = snapshot;
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.entries.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.entries.entries(low, high, max_size, context)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.entries.term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.entries.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.entries.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index
            || self.snapshot.get_metadata().index == 0
        {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
