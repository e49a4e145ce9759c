//! etcd's rule against writing a key twice in one txn (`checkIntervals`).
//!
//! A txn writes everything at one revision, so etcd refuses txns in which a
//! key is put twice, or put and deleted. The rule is not the obvious one,
//! and clients can observe its exact shape, so it is reproduced as is:
//! - puts in the success and failure branches of one nested txn may share a
//!   key (only one branch runs);
//! - deletes of one level are checked against the puts of that level and of
//!   nested txns, but a nested txn's deletes only against puts of nested txns
//!   that come after it and puts of the enclosing level (so "put k" in one
//!   nested txn followed by "delete k" in a later one is allowed);
//! - a delete with `range_end == "\0"` is, to etcd's interval tree, the empty
//!   interval `[key, "\0")`, so it never conflicts with anything;
//! - two deletes never conflict.

use std::collections::BTreeSet;

use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::{RequestOp, TxnRequest};

/// The interval a delete covers, for conflict checks only.
struct Deleted<'a> {
    key: &'a [u8],
    range_end: &'a [u8],
}

impl Deleted<'_> {
    fn covers(&self, key: &[u8]) -> bool {
        if self.range_end.is_empty() {
            key == self.key
        } else {
            self.key <= key && key < self.range_end
        }
    }
}

/// The keys one list of ops (with its nested txns) puts and deletes.
#[derive(Default)]
struct Writes<'a> {
    puts: BTreeSet<&'a [u8]>,
    deletes: Vec<Deleted<'a>>,
}

impl<'a> Writes<'a> {
    fn deletes(&self, key: &[u8]) -> bool {
        self.deletes.iter().any(|d| d.covers(key))
    }
}

struct Duplicate;

/// Whether etcd would reject `req` with "duplicate key given in txn request".
pub fn txn_has_duplicate_keys(req: &TxnRequest) -> bool {
    writes(&req.success).is_err() || writes(&req.failure).is_err()
}

fn writes(ops: &[RequestOp]) -> Result<Writes<'_>, Duplicate> {
    let mut acc = Writes::default();
    for op in ops {
        if let Some(Request::RequestDeleteRange(d)) = &op.request {
            acc.deletes.push(Deleted {
                key: &d.key,
                range_end: &d.range_end,
            });
        }
    }
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let then = writes(&t.success)?;
        let otherwise = writes(&t.failure)?;
        for key in &then.puts {
            if acc.puts.contains(key) || acc.deletes(key) {
                return Err(Duplicate);
            }
            acc.puts.insert(key);
        }
        for key in &otherwise.puts {
            let clash = acc.puts.contains(key) && !then.puts.contains(key);
            if clash || acc.deletes(key) {
                return Err(Duplicate);
            }
            acc.puts.insert(key);
        }
        acc.deletes.extend(then.deletes);
        acc.deletes.extend(otherwise.deletes);
    }
    for op in ops {
        if let Some(Request::RequestPut(p)) = &op.request {
            if acc.puts.contains(p.key.as_slice()) || acc.deletes(&p.key) {
                return Err(Duplicate);
            }
            acc.puts.insert(&p.key);
        }
    }
    Ok(acc)
}
