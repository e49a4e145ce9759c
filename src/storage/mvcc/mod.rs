//! The in-memory multi-version key-value store behind the etcd KV API.
//!
//! Every replica applies the same committed raft entries to its own
//! `KvStore`, so this module must be a pure, deterministic function of the
//! requests it is given: ordered maps only, no clocks, no randomness. It must
//! also reproduce etcd 3.4's observable behaviour (revisions, versions,
//! headers, txn quirks) because clients cannot tell us apart otherwise.
//!
//! The layout mirrors etcd's: an index from each key to its history of
//! revisions ([`key_history`]), and a log from each revision to the value
//! written there (etcd's boltdb "key" bucket). Keeping the log ordered by
//! revision makes watch catch-up ([`events`]) and replica hashing ([`hash`])
//! simple scans.
//!
//! Request-shape validation that etcd does before proposing to raft (empty
//! keys, too many ops, duplicate keys in a txn) belongs to the API layer;
//! [`txn_has_duplicate_keys`] is exported for it.

mod duplicate_keys;
mod events;
mod hash;
mod key_history;
mod range;
mod revision;
mod revision_log;
mod snapshot;
mod txn;
mod write;

#[cfg(test)]
mod tests;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::pb::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, ResponseHeader,
};
use crate::pb::mvccpb::KeyValue;

pub use duplicate_keys::txn_has_duplicate_keys;
pub(crate) use hash::Crc32c;
pub(crate) use revision::Revision;

use key_history::{KeyChange, KeyHistory};
use range::KeyRange;
use revision_log::RevisionLog;
use write::WriteTxn;

/// Why a request could not be applied. Each maps to one etcd error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MvccError {
    /// The requested revision has been compacted away.
    Compacted,
    /// The requested revision is newer than the store.
    FutureRevision,
    /// `ignore_value` / `ignore_lease` on a key that does not exist.
    KeyNotFound,
    /// A put attaches a lease that does not exist.
    LeaseNotFound(i64),
    /// The same key is written twice in one txn (see [`txn_has_duplicate_keys`]).
    DuplicateKey,
}

impl fmt::Display for MvccError {
    /// etcd's error strings, so the API layer can forward them verbatim.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MvccError::Compacted => f.write_str("mvcc: required revision has been compacted"),
            MvccError::FutureRevision => {
                f.write_str("mvcc: required revision is a future revision")
            }
            MvccError::KeyNotFound => f.write_str("etcdserver: key not found"),
            MvccError::LeaseNotFound(_) => f.write_str("etcdserver: requested lease not found"),
            MvccError::DuplicateKey => {
                f.write_str("etcdserver: duplicate key given in txn request")
            }
        }
    }
}

impl std::error::Error for MvccError {}

/// A key's bytes, shared by its index entry and every logged revision of it, so a key that
/// changes many times is stored once.
type Key = Arc<[u8]>;

/// What one revision wrote: the fields of the full key-value for a put, or of just the key for
/// a tombstone (exactly what etcd stores, which the hash relies on). The fields are etcd's
/// `KeyValue`'s, held without its per-field allocations: the key shared, the value boxed once.
#[derive(Debug, Clone)]
struct LoggedChange {
    rev: Revision,
    key: Key,
    value: Box<[u8]>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
    tombstone: bool,
}

impl LoggedChange {
    fn new(rev: Revision, key: Key, kv: KeyValue, tombstone: bool) -> LoggedChange {
        debug_assert_eq!(*key, *kv.key, "the shared key is the change's key");
        LoggedChange {
            rev,
            key,
            value: kv.value.into_boxed_slice(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
            tombstone,
        }
    }

    fn bytes(&self) -> u64 {
        (self.key.len() + self.value.len()) as u64
    }

    /// The change as etcd's `KeyValue`.
    fn kv(&self) -> KeyValue {
        KeyValue {
            key: self.key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value.to_vec(),
            lease: self.lease,
        }
    }
}

/// A multi-version key-value store with etcd 3.4 semantics.
#[derive(Debug, Clone)]
pub struct KvStore {
    /// Each live-or-remembered key and the revisions that changed it.
    index: BTreeMap<Key, KeyHistory>,
    /// Every retained change, by revision.
    log: RevisionLog,
    /// The revision of the last write; 1 for an empty store, as in etcd.
    current_rev: i64,
    /// etcd's `compactMainRev`: -1 until the first compaction.
    compact_rev: i64,
    /// Keys deleted at `compact_rev` itself: the compaction dropped their tombstones, and with
    /// them the events a watch at `compact_rev` still needs (see
    /// [`KvStore::deletes_dropped_by_compaction`]).
    deletes_at_compact_rev: Vec<Key>,
}

impl Default for KvStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KvStore {
    /// An empty store. etcd starts at revision 1 with no keys, so the first
    /// write is revision 2.
    pub fn new() -> Self {
        KvStore {
            index: BTreeMap::new(),
            log: RevisionLog::default(),
            current_rev: 1,
            compact_rev: -1,
            deletes_at_compact_rev: Vec::new(),
        }
    }

    pub fn current_revision(&self) -> i64 {
        self.current_rev
    }

    /// Bytes of keys and values the store retains (every revision since the last compaction):
    /// detcd's measure of backend size, reported as etcd's `dbSize`.
    pub fn size_bytes(&self) -> u64 {
        self.log.bytes()
    }

    /// Logs a change of `kv.key` at `rev` and indexes it under the key's shared bytes.
    fn record(&mut self, rev: Revision, kv: KeyValue, tombstone: bool) -> Key {
        let change = KeyChange { rev, tombstone };
        // A map keyed by `Arc<[u8]>` only takes an owned key in `entry`: one short-lived copy
        // of a known key costs less than a second walk down the tree.
        let key = match self.index.entry(kv.key.as_slice().into()) {
            Entry::Occupied(mut known) => {
                known.get_mut().push(change);
                known.key().clone()
            }
            Entry::Vacant(new) => {
                let key = new.key().clone();
                new.insert(KeyHistory::default()).push(change);
                key
            }
        };
        self.log
            .push(LoggedChange::new(rev, key.clone(), kv, tombstone));
        key
    }

    /// Undoes [`KvStore::record`] of the latest change (a txn rolled back).
    fn unrecord(&mut self, rev: Revision, key: &[u8]) {
        self.log.pop(rev);
        let history = self.index.get_mut(key).expect("recorded key is indexed");
        history.pop(rev);
        if history.is_empty() {
            self.index.remove(key);
        }
    }

    /// Planted bug `FollowerTombstoneDrift`: stamps the tombstones at and after `revision` with
    /// a create revision, which no real tombstone has (byte counts stay as they were).
    #[cfg(feature = "sim-bugs")]
    pub fn plant_tombstone_drift(&mut self, revision: i64) {
        for change in self.log.mains_from_mut(revision) {
            if change.tombstone {
                change.create_revision = change.rev.main;
            }
        }
    }

    /// The last compaction revision, 0 if never compacted.
    pub fn compacted_revision(&self) -> i64 {
        self.compact_rev.max(0)
    }

    pub fn put(
        &mut self,
        req: &PutRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<PutResponse, MvccError> {
        // etcd checks the lease before looking at the previous value.
        if req.lease != 0 && !lease_exists(req.lease) {
            return Err(MvccError::LeaseNotFound(req.lease));
        }
        let mut w = WriteTxn::begin(self);
        let resp = w.put(req)?;
        w.commit();
        Ok(resp)
    }

    pub fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, MvccError> {
        let mut w = WriteTxn::begin(self);
        let resp = w.delete_range(req);
        w.commit();
        Ok(resp)
    }

    /// Discards history older than `revision`: afterwards reads below it
    /// fail with `Compacted`, reads at or above it are unaffected.
    pub fn compact(&mut self, revision: i64) -> Result<(), MvccError> {
        // Same order of checks as etcd: a stale compaction is reported as
        // such even if it is also in the future.
        if revision <= self.compact_rev {
            return Err(MvccError::Compacted);
        }
        if revision > self.current_rev {
            return Err(MvccError::FutureRevision);
        }
        let mut dropped = Vec::new();
        let mut deletes_at_compact_rev = Vec::new();
        self.index.retain(|key, history| {
            let changes = history.compact(revision);
            if changes
                .iter()
                .any(|c| c.tombstone && c.rev.main == revision)
            {
                deletes_at_compact_rev.push(key.clone());
            }
            dropped.extend(changes.iter().map(|c| c.rev));
            !history.is_empty()
        });
        self.deletes_at_compact_rev = deletes_at_compact_rev;
        dropped.sort_unstable();
        self.log.remove_sorted(&dropped);
        self.compact_rev = revision;
        Ok(())
    }

    /// The key's value as of `rev`, if it existed then.
    fn kv_at(&self, key: &[u8], rev: i64) -> Option<&LoggedChange> {
        let at = self.index.get(key)?.visible_at(rev)?;
        Some(self.logged(at))
    }

    fn logged(&self, rev: Revision) -> &LoggedChange {
        self.log
            .get(rev)
            .expect("index points at a logged revision")
    }
}

/// A response header carrying only the revision; the server fills in the
/// cluster, member and term.
fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}
