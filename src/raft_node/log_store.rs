//! raft-rs's view of the log: raft-rs's `MemStorage` holding the entries (loaded from the WAL at
//! start, appended after each fsync), except that snapshots come from the last one this member
//! took or installed — `MemStorage` would hand out a snapshot without the state machine's data.

use std::cell::Cell;

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

#[derive(Clone, Default)]
pub struct LogStore {
    entries: MemStorage,
    snapshot: Snapshot,
    /// A peer needed a snapshot the latest one cannot serve (see [`LogStore::snapshot`]).
    snapshot_wanted: Cell<bool>,
}

impl LogStore {
    pub fn new(entries: MemStorage) -> LogStore {
        LogStore {
            entries,
            snapshot: Snapshot::default(),
            snapshot_wanted: Cell::new(false),
        }
    }

    /// raft's log as a restart finds it on disk: the snapshot the WAL's last marker names (if
    /// any), then the WAL's entries after it and its hard state. Without a snapshot, raft's
    /// configuration starts as `initial_conf_state` and the log's conf changes move it on.
    pub fn recover(
        initial_conf_state: ConfState,
        snapshot: Option<Snapshot>,
        mut hard_state: HardState,
        entries: &[Entry],
    ) -> Result<LogStore, String> {
        let snapshot_index = snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
        let storage = match &snapshot {
            Some(snapshot) => {
                let storage = MemStorage::new();
                storage
                    .wl()
                    .apply_snapshot(snapshot.clone())
                    .map_err(|e| e.to_string())?;
                storage
            }
            None => MemStorage::new_with_conf_state(initial_conf_state),
        };
        {
            let mut core = storage.wl();
            core.append(entries)
                .expect("WAL replay yields a log contiguous with its snapshot");
            let last_index = entries.last().map_or(snapshot_index, |e| e.index);
            // The persisted commit index can lag (it is saved with the next batch, and a
            // snapshot implies its own index is committed); it never runs ahead of the log.
            assert!(
                hard_state.commit <= last_index.max(snapshot_index),
                "WAL hard state commits {} beyond its last entry {last_index}",
                hard_state.commit
            );
            hard_state.commit = hard_state.commit.max(snapshot_index);
            hard_state.term = hard_state.term.max(core.hard_state().term);
            core.set_hardstate(hard_state);
        }
        let mut store = LogStore::new(storage);
        if let Some(snapshot) = snapshot {
            store.set_snapshot(snapshot);
        }
        Ok(store)
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

    /// Whether a peer has needed a newer snapshot since the last call: the raft loop then takes
    /// one without waiting for `snapshot_count` entries.
    pub fn take_snapshot_request(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }
}

fn includes(conf_state: &ConfState, id: u64) -> bool {
    [
        conf_state.get_voters(),
        conf_state.get_learners(),
        conf_state.get_voters_outgoing(),
        conf_state.get_learners_next(),
    ]
    .iter()
    .any(|ids| ids.contains(&id))
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

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let unavailable = Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ));
        let metadata = self.snapshot.get_metadata();
        if metadata.index < request_index || metadata.index == 0 {
            return unavailable;
        }
        // A member added since the latest snapshot is not in its ConfState, and raft ignores a
        // snapshot that leaves the receiver out: a new member whose log must start from a
        // snapshot would wait for the next one, forever if no more writes come. etcd's leader
        // sends the state as applied now (`createMergedSnapshotMessage`); here the raft loop
        // takes a new snapshot, which raft sends at its next attempt.
        if !includes(metadata.get_conf_state(), to) {
            self.snapshot_wanted.set(true);
            return unavailable;
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use raft::prelude::ConfState;

    use super::*;

    fn store_with_snapshot(index: u64, voters: Vec<u64>) -> LogStore {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = 2;
        snapshot
            .mut_metadata()
            .set_conf_state(ConfState::from((voters, Vec::new())));
        let mut store = LogStore::new(MemStorage::new());
        store.set_snapshot(snapshot);
        store
    }

    #[test]
    fn a_member_in_the_snapshot_gets_it() {
        let store = store_with_snapshot(50, vec![1, 2, 3]);
        assert_eq!(store.snapshot(0, 3).unwrap().get_metadata().index, 50);
        assert!(!store.take_snapshot_request());
    }

    /// A member added after the latest snapshot cannot restore it (raft ignores a snapshot that
    /// leaves the receiver out): it must not be sent, and the raft loop must take a new one.
    #[test]
    fn a_member_added_since_the_snapshot_asks_for_a_new_one() {
        let store = store_with_snapshot(50, vec![1, 2]);
        assert_eq!(
            store.snapshot(0, 3).unwrap_err(),
            raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)
        );
        assert!(store.take_snapshot_request());
        assert!(!store.take_snapshot_request(), "one request, taken once");
    }
}
