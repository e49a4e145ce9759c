//! A write transaction: the changes that together form one new revision.
//!
//! Like etcd's `storeTxnWrite`, changes go straight into the index and log
//! under revision `current + 1` with increasing sub-revisions, so later
//! operations of the same txn read them. The store's current revision only
//! moves when the txn commits, and only if something changed. Dropping an
//! uncommitted `WriteTxn` undoes its changes, which keeps a txn that fails
//! half-way atomic.

use crate::pb::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
};
use crate::pb::mvccpb::KeyValue;

use super::revision::Revision;
use super::{header, Key, KeyRange, KvStore, LoggedChange, MvccError};

pub(crate) struct WriteTxn<'a> {
    store: &'a mut KvStore,
    /// Keys changed so far, in order; their revisions are `(main, index)`.
    written: Vec<Key>,
}

impl<'a> WriteTxn<'a> {
    pub fn begin(store: &'a mut KvStore) -> Self {
        WriteTxn {
            store,
            written: Vec::new(),
        }
    }

    /// The revision this txn writes at.
    fn main(&self) -> i64 {
        self.store.current_rev + 1
    }

    /// The latest revision visible to this txn: its own once it has written.
    pub fn head(&self) -> i64 {
        if self.written.is_empty() {
            self.store.current_rev
        } else {
            self.main()
        }
    }

    fn record(&mut self, kv: KeyValue, tombstone: bool) {
        let rev = Revision::new(self.main(), self.written.len() as i64);
        let key = self.store.record(rev, kv, tombstone);
        self.written.push(key);
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        if crate::planted_bug!(TxnRangeMissesOwnWrites) {
            return self.store.range_with_head(req, self.store.current_rev);
        }
        self.store.range_with_head(req, self.head())
    }

    /// Applies a put whose lease has already been checked.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse, MvccError> {
        let main = self.main();
        let prev = self.store.kv_at(&req.key, main);
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.map_or(main, |p| p.create_revision),
            mod_revision: main,
            version: prev.map_or(0, |p| p.version) + 1,
            value: match prev {
                Some(prev) if req.ignore_value => prev.value.to_vec(),
                _ => req.value.clone(),
            },
            lease: match prev {
                Some(prev) if req.ignore_lease => prev.lease,
                _ => req.lease,
            },
        };
        let prev_kv = prev.filter(|_| req.prev_kv).map(LoggedChange::kv);
        self.record(kv, false);
        Ok(PutResponse {
            header: header(main),
            prev_kv,
        })
    }

    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> DeleteRangeResponse {
        let range = KeyRange::new(&req.key, &req.range_end);
        let doomed = self.store.visible_kvs(range, self.head());
        let deleted = doomed.len() as i64;
        for kv in &doomed {
            self.record(
                KeyValue {
                    key: kv.key.clone(),
                    ..Default::default()
                },
                true,
            );
        }
        DeleteRangeResponse {
            // Deleting nothing in a txn that has not written reports the
            // unchanged revision, like etcd.
            header: header(self.head()),
            deleted,
            prev_kvs: if req.prev_kv { doomed } else { Vec::new() },
        }
    }

    /// Makes the changes visible; returns the store's new current revision.
    pub fn commit(mut self) -> i64 {
        if !self.written.is_empty() {
            self.store.current_rev += 1;
            self.written.clear();
        }
        self.store.current_rev
    }
}

impl Drop for WriteTxn<'_> {
    /// Rolls back whatever was not committed.
    fn drop(&mut self) {
        let main = self.main();
        while let Some(key) = self.written.pop() {
            let rev = Revision::new(main, self.written.len() as i64);
            self.store.unrecord(rev, &key);
        }
    }
}
