//! raft-rs's view of the log: raft-rs's `MemStorage` holding the entries (loaded from the WAL at
//! start, appended after each fsync), except that snapshots come from the last one this member
//! took or installed — `MemStorage` would hand out a snapshot without the state machine's data.
//! That snapshot's data is read from its file when a follower needs it, not kept in memory: it
//! is a copy of the whole store, and most snapshots are never sent.
//!
//! Only the entries a slightly lagging follower may still need stay in memory: applied entries
//! are released a few thousand behind the applied index (etcd's `SnapshotCatchUpEntries`),
//! not only when a snapshot is taken, so the log does not hold a copy of every value written
//! since the last snapshot. A follower further behind needs a snapshot; if the latest one is
//! older than the log's start, it asks the raft loop for a new one.

use std::cell::Cell;

use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::SnapshotFiles;

#[derive(Clone)]
pub struct LogStore {
    entries: MemStorage,
    /// The latest snapshot's metadata; its data is in its file in `files`.
    snapshot: SnapshotMetadata,
    files: SnapshotFiles,
    /// A peer needed a snapshot the latest one cannot serve (see [`LogStore::snapshot`]).
    snapshot_wanted: Cell<bool>,
}

impl LogStore {
    pub fn new(entries: MemStorage, files: SnapshotFiles) -> LogStore {
        LogStore {
            entries,
            snapshot: SnapshotMetadata::default(),
            files,
            snapshot_wanted: Cell::new(false),
        }
    }

    /// raft's log as a restart finds it on disk: the snapshot the WAL's last marker names (if
    /// any), then the WAL's entries after it and its hard state. Without a snapshot, raft's
    /// configuration starts as `initial_conf_state` and the log's conf changes move it on.
    pub fn recover(
        files: SnapshotFiles,
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
        let mut store = LogStore::new(storage, files);
        if let Some(snapshot) = snapshot {
            store.set_snapshot(snapshot);
        }
        Ok(store)
    }

    pub fn entries(&self) -> &MemStorage {
        &self.entries
    }

    /// The latest snapshot, taken here or installed from the leader, once its file is durable:
    /// what a lagging follower gets. Only its metadata is kept; the data is dropped here.
    pub fn set_snapshot(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.get_metadata().index >= self.snapshot.index,
            "snapshots only move forward"
        );
        self.snapshot = snapshot.get_metadata().clone();
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.index
    }

    /// Whether a peer has needed a newer snapshot since the last call: the raft loop then takes
    /// one without waiting for `snapshot_count` entries.
    pub fn take_snapshot_request(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    /// Releases applied entries more than `keep` behind `applied`, in steps of `keep`: each
    /// release moves the entries left in memory, so releasing on every apply would move them
    /// once per entry.
    pub fn release_applied(&self, applied: u64, keep: u64) -> raft::Result<()> {
        assert!(
            keep > 0,
            "a follower one entry behind catches up from the log"
        );
        let release_to = applied.saturating_sub(keep);
        if release_to < self.entries.first_index()? + keep {
            return Ok(());
        }
        self.entries.wl().compact(release_to)
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
        let metadata = &self.snapshot;
        if metadata.index < request_index || metadata.index == 0 {
            return unavailable;
        }
        // Entries after the snapshot were released: a follower restored from it could not go
        // on from the log. A new snapshot (at the applied index, at or past the log's start)
        // can serve it.
        if metadata.index + 1 < self.entries.first_index()? {
            self.snapshot_wanted.set(true);
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
        self.files.load(metadata).or_else(|error| {
            // Raft treats any other storage error as fatal; a new snapshot writes a new file.
            tracing::error!(%error, "cannot read the latest snapshot for a follower");
            self.snapshot_wanted.set(true);
            unavailable
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use raft::prelude::ConfState;

    use super::*;
    use crate::io::SimDisk;

    fn empty_store() -> LogStore {
        let files = SnapshotFiles::new(Arc::new(SimDisk::new(1)), "/snap".into());
        LogStore::new(MemStorage::new(), files)
    }

    /// A store whose latest snapshot, at `index`, is saved in its file.
    fn store_with_snapshot(index: u64, voters: Vec<u64>) -> LogStore {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = 2;
        snapshot
            .mut_metadata()
            .set_conf_state(ConfState::from((voters, Vec::new())));
        snapshot.data = b"the state machine".to_vec().into();
        let mut store = empty_store();
        store.files.save(&snapshot).unwrap();
        store.set_snapshot(snapshot);
        store
    }

    /// `store` with entries `1..=last` of term 1.
    fn with_entries(store: LogStore, last: u64) -> LogStore {
        let entries: Vec<Entry> = (1..=last)
            .map(|index| Entry {
                index,
                term: 1,
                ..Default::default()
            })
            .collect();
        store.entries().wl().append(&entries).unwrap();
        store
    }

    #[test]
    fn applied_entries_are_released_in_steps_keeping_the_catch_up_entries() {
        let store = with_entries(empty_store(), 100);
        store.release_applied(10, 5).unwrap();
        assert_eq!(
            store.first_index().unwrap(),
            1,
            "less than a step to release"
        );
        store.release_applied(11, 5).unwrap();
        assert_eq!(store.first_index().unwrap(), 6);
        assert_eq!(store.term(6).unwrap(), 1, "the entries behind applied stay");
        store.release_applied(15, 5).unwrap();
        assert_eq!(store.first_index().unwrap(), 6);
        store.release_applied(100, 5).unwrap();
        assert_eq!(store.first_index().unwrap(), 95);
        assert_eq!(
            store.last_index().unwrap(),
            100,
            "unapplied entries are never released"
        );
    }

    /// A follower restored from a snapshot older than the log's start could not go on from the
    /// log: raft must not send it, and the raft loop must take a new one.
    #[test]
    fn a_snapshot_the_log_has_moved_past_is_not_sent() {
        let store = with_entries(store_with_snapshot(20, vec![1, 2, 3]), 100);
        store.release_applied(30, 10).unwrap();
        assert_eq!(store.first_index().unwrap(), 20);
        assert_eq!(store.snapshot(0, 3).unwrap().get_metadata().index, 20);
        assert!(!store.take_snapshot_request());

        store.release_applied(41, 10).unwrap();
        assert_eq!(store.first_index().unwrap(), 31);
        assert_eq!(
            store.snapshot(0, 3).unwrap_err(),
            raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)
        );
        assert!(store.take_snapshot_request());
    }

    #[test]
    fn a_member_in_the_snapshot_gets_it_data_and_all() {
        let store = store_with_snapshot(50, vec![1, 2, 3]);
        let sent = store.snapshot(0, 3).unwrap();
        assert_eq!(sent.get_metadata().index, 50);
        assert_eq!(&sent.data[..], b"the state machine");
        assert!(!store.take_snapshot_request());
    }

    /// A snapshot file that cannot be read is not fatal: the raft loop writes a new one.
    #[test]
    fn an_unreadable_snapshot_file_asks_for_a_new_one() {
        let mut store = empty_store();
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 50;
        snapshot
            .mut_metadata()
            .set_conf_state(ConfState::from((vec![1, 3], Vec::new())));
        store.set_snapshot(snapshot);
        assert_eq!(
            store.snapshot(0, 3).unwrap_err(),
            raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)
        );
        assert!(store.take_snapshot_request());
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
