//! Random histories against a naive model that keeps a full snapshot of
//! the key space at every revision: whatever the store does with histories,
//! sub-revisions and compaction, every read must agree with the snapshots.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::support::*;
use crate::pb::etcdserverpb::RangeRequest;
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::KeyValue;
use crate::storage::mvcc::{txn_has_duplicate_keys, KvStore, MvccError};

#[derive(Debug, Clone)]
enum Write {
    Put(String, String),
    Delete(String, String),
}

#[derive(Debug, Clone)]
enum Op {
    Write(Write),
    Txn(Vec<Write>),
    Compact(i64),
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(String::from)
}

fn range_end() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), Just("\0".to_string()), key()]
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        3 => (key(), "[xyz]{0,2}").prop_map(|(k, v)| Write::Put(k, v)),
        1 => (key(), range_end()).prop_map(|(k, e)| Write::Delete(k, e)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => write().prop_map(Op::Write),
        2 => prop::collection::vec(write(), 0..4).prop_map(Op::Txn),
        1 => (0i64..40).prop_map(Op::Compact),
    ]
}

type Snapshot = BTreeMap<Vec<u8>, KeyValue>;

/// Every revision's full key space; `snapshots[r]` is the state at `r`.
struct Model {
    snapshots: Vec<Snapshot>,
    /// -1 until the first compaction, like etcd.
    compacted: i64,
}

impl Model {
    fn current(&self) -> i64 {
        self.snapshots.len() as i64 - 1
    }

    /// Applies writes as one revision; returns whether anything changed.
    fn apply(&mut self, writes: &[Write]) {
        let rev = self.current() + 1;
        let mut next = self.snapshots.last().unwrap().clone();
        let mut changed = false;
        for w in writes {
            match w {
                Write::Put(k, v) => {
                    let key = k.as_bytes().to_vec();
                    let prev = next.get(&key);
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: prev.map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.map_or(0, |p| p.version) + 1,
                        value: v.as_bytes().to_vec(),
                        lease: 0,
                    };
                    next.insert(key, kv);
                    changed = true;
                }
                Write::Delete(k, end) => {
                    let before = next.len();
                    next.retain(|key, _| !in_range(key, k.as_bytes(), end.as_bytes()));
                    changed |= next.len() != before;
                }
            }
        }
        if changed {
            self.snapshots.push(next);
        }
    }
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    match end {
        [] => key == start,
        [0] => key >= start,
        end => key >= start && key < end,
    }
}

fn request(w: &Write) -> crate::pb::etcdserverpb::RequestOp {
    match w {
        Write::Put(k, v) => op_put(k, v),
        Write::Delete(k, e) => op_del(k, e),
    }
}

fn check_reads(store: &KvStore, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.current_revision(), model.current());
    for rev in 0..=model.current() + 1 {
        let req = RangeRequest {
            revision: rev,
            ..range_req("\0", "\0")
        };
        let got = store.range(&req);
        if rev > model.current() {
            prop_assert_eq!(got, Err(MvccError::FutureRevision));
        } else if rev != 0 && rev < model.compacted {
            prop_assert_eq!(got, Err(MvccError::Compacted));
        } else {
            let at = if rev == 0 { model.current() } else { rev };
            let want: Vec<KeyValue> = model.snapshots[at as usize].values().cloned().collect();
            let got = got.unwrap();
            prop_assert_eq!(got.count, want.len() as i64);
            prop_assert_eq!(got.kvs, want);
            prop_assert_eq!(got.header.unwrap().revision, model.current());
        }
    }
    Ok(())
}

/// Replaying each revision's events onto the previous snapshot must give
/// the next one, and each event's prev_kv must be the key's previous value.
fn check_events(store: &KvStore, model: &Model) -> Result<(), TestCaseError> {
    let first = (model.compacted + 1).max(2);
    let events = store.events_since(first).unwrap();
    let mut events = events.iter().peekable();
    for rev in first..=model.current() {
        let mut state = model.snapshots[rev as usize - 1].clone();
        while let Some(e) = events.next_if(|e| e.kv.as_ref().unwrap().mod_revision == rev) {
            let kv = e.kv.clone().unwrap();
            let before = &model.snapshots[rev as usize - 1];
            let is_create = e.r#type == EventType::Put as i32 && kv.create_revision == rev;
            prop_assert_eq!(
                e.prev_kv.as_ref(),
                before.get(&kv.key).filter(|_| !is_create)
            );
            if e.r#type == EventType::Delete as i32 {
                state.remove(&kv.key);
            } else {
                state.insert(kv.key.clone(), kv);
            }
        }
        prop_assert_eq!(&state, &model.snapshots[rev as usize]);
    }
    prop_assert!(events.next().is_none());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_read_at_every_revision_matches_the_snapshot_model(ops in prop::collection::vec(op(), 0..40)) {
        let mut store = KvStore::new();
        let mut model = Model { snapshots: vec![Snapshot::new(), Snapshot::new()], compacted: -1 };
        for op in &ops {
            match op {
                Op::Write(Write::Put(k, v)) => {
                    put(&mut store, k, v);
                    model.apply(&[Write::Put(k.clone(), v.clone())]);
                }
                Op::Write(Write::Delete(k, e)) => {
                    del(&mut store, k, e);
                    model.apply(&[Write::Delete(k.clone(), e.clone())]);
                }
                Op::Txn(writes) => {
                    let req = txn_req(vec![], writes.iter().map(request).collect(), vec![]);
                    let got = store.txn(&req, &no_leases);
                    if txn_has_duplicate_keys(&req) {
                        prop_assert_eq!(got, Err(MvccError::DuplicateKey));
                    } else {
                        model.apply(writes);
                        prop_assert_eq!(got.unwrap().header.unwrap().revision, model.current());
                    }
                }
                Op::Compact(rev) => {
                    let got = store.compact(*rev);
                    if *rev <= model.compacted {
                        prop_assert_eq!(got, Err(MvccError::Compacted));
                    } else if *rev > model.current() {
                        prop_assert_eq!(got, Err(MvccError::FutureRevision));
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        model.compacted = *rev;
                    }
                }
            }
            check_reads(&store, &model)?;
            check_events(&store, &model)?;
        }
        // Replicas fed the same history agree on their hash.
        let mut replica = KvStore::new();
        for op in &ops {
            match op {
                Op::Write(Write::Put(k, v)) => { put(&mut replica, k, v); }
                Op::Write(Write::Delete(k, e)) => { del(&mut replica, k, e); }
                Op::Txn(writes) => {
                    let req = txn_req(vec![], writes.iter().map(request).collect(), vec![]);
                    let _ = replica.txn(&req, &no_leases);
                }
                Op::Compact(rev) => { let _ = replica.compact(*rev); }
            }
        }
        prop_assert_eq!(replica.hash_kv(0), store.hash_kv(0));
    }
}
