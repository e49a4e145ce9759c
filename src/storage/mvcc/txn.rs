//! Txn: compares, then the chosen branch of operations, as one revision.
//!
//! etcd 3.4 does this in three phases, and the phases are observable:
//! 1. every compare, including those of nested txns, is evaluated against
//!    the store *before* the txn writes anything, which fixes the path taken
//!    through nested txns up front;
//! 2. the ops on that path are checked against the same pre-txn state: first
//!    all puts (`ignore_*` needs an existing key, leases must exist), then all
//!    ranges (revision not in the future nor compacted);
//! 3. the ops are applied in order, each seeing the writes before it.
//!
//! Responses of nested ops carry headers with just a revision: the txn's
//! revision once it has written, the old one before. A nested txn's
//! response carries an empty header.

use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::response_op::Response;
use crate::pb::etcdserverpb::{
    Compare, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;

use super::write::WriteTxn;
use super::{header, txn_has_duplicate_keys, KeyRange, KvStore, MvccError};

/// The outcome of a txn's compares and, in op order, of the nested txns in
/// the branch it takes.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

impl KvStore {
    pub fn txn(
        &mut self,
        req: &TxnRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<TxnResponse, MvccError> {
        // The API layer rejects these before raft; refusing here too keeps
        // a bad log entry from writing a key twice in one revision.
        if txn_has_duplicate_keys(req) {
            return Err(MvccError::DuplicateKey);
        }
        let path = self.decide(req);
        self.check_ops(req, &path, &mut |op| match op {
            Request::RequestPut(put) => {
                if (put.ignore_value || put.ignore_lease)
                    && self.kv_at(&put.key, self.current_rev).is_none()
                {
                    return Err(MvccError::KeyNotFound);
                }
                if put.lease != 0 && !lease_exists(put.lease) {
                    return Err(MvccError::LeaseNotFound(put.lease));
                }
                Ok(())
            }
            _ => Ok(()),
        })?;
        self.check_ops(req, &path, &mut |op| match op {
            // Note etcd compares against -1 before the first compaction, so
            // negative revisions below that are reported as compacted.
            Request::RequestRange(range) if range.revision != 0 => {
                if range.revision > self.current_rev {
                    Err(MvccError::FutureRevision)
                } else if range.revision < self.compact_rev {
                    Err(MvccError::Compacted)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        })?;

        let mut w = WriteTxn::begin(self);
        // Only a put with ignore_* whose key an earlier op of the same txn
        // deleted can fail here (etcd panics); the txn is then rolled back.
        let mut resp = apply(&mut w, req, &path)?;
        resp.header = header(w.commit());
        Ok(resp)
    }

    fn decide(&self, req: &TxnRequest) -> Path {
        let succeeded = req.compare.iter().all(|c| self.compare_holds(c));
        let nested = branch(req, succeeded)
            .iter()
            .filter_map(|op| match &op.request {
                Some(Request::RequestTxn(t)) => Some(self.decide(t)),
                _ => None,
            })
            .collect();
        Path { succeeded, nested }
    }

    /// Runs `check` on every non-txn op along `path`, in order.
    fn check_ops(
        &self,
        req: &TxnRequest,
        path: &Path,
        check: &mut dyn FnMut(&Request) -> Result<(), MvccError>,
    ) -> Result<(), MvccError> {
        let mut nested = path.nested.iter();
        for op in branch(req, path.succeeded) {
            match &op.request {
                Some(Request::RequestTxn(t)) => {
                    let p = nested.next().expect("a path for every nested txn");
                    self.check_ops(t, p, check)?;
                }
                Some(r) => check(r)?,
                None => {}
            }
        }
        Ok(())
    }

    /// A compare holds if every key in its range satisfies it; a missing key
    /// compares as all-zero, except that a VALUE compare on it always fails.
    fn compare_holds(&self, c: &Compare) -> bool {
        let kvs = self.visible_kvs(KeyRange::new(&c.key, &c.range_end), self.current_rev);
        if kvs.is_empty() {
            return c.target != CompareTarget::Value as i32 && compare_kv(c, &KeyValue::default());
        }
        kvs.iter().all(|kv| compare_kv(c, kv))
    }
}

/// One compare against one key. A target union that does not match the
/// target compares against zero (or empty), as in etcd.
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let int = |field: i64, pick: fn(&TargetUnion) -> Option<i64>| {
        field.cmp(&c.target_union.as_ref().and_then(pick).unwrap_or(0))
    };
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Version) => int(kv.version, |t| match t {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        }),
        Ok(CompareTarget::Create) => int(kv.create_revision, |t| match t {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        }),
        Ok(CompareTarget::Mod) => int(kv.mod_revision, |t| match t {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        }),
        Ok(CompareTarget::Lease) => int(kv.lease, |t| match t {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        }),
        Ok(CompareTarget::Value) => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        Err(_) => std::cmp::Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord.is_eq(),
        Ok(CompareResult::NotEqual) => ord.is_ne(),
        Ok(CompareResult::Greater) => ord.is_gt(),
        Ok(CompareResult::Less) => ord.is_lt(),
        Err(_) => true,
    }
}

/// Applies the ops of `req` along `path`. The returned header is the empty
/// one etcd gives nested txns; the top level overwrites it.
fn apply(w: &mut WriteTxn<'_>, req: &TxnRequest, path: &Path) -> Result<TxnResponse, MvccError> {
    let mut nested = path.nested.iter();
    let mut responses = Vec::new();
    for op in branch(req, path.succeeded) {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => {
                let resp = w.range(r).expect("ranges are checked before applying");
                Some(Response::ResponseRange(resp))
            }
            Some(Request::RequestPut(r)) => Some(Response::ResponsePut(w.put(r)?)),
            Some(Request::RequestDeleteRange(r)) => {
                Some(Response::ResponseDeleteRange(w.delete_range(r)))
            }
            Some(Request::RequestTxn(t)) => {
                let p = nested.next().expect("a path for every nested txn");
                Some(Response::ResponseTxn(apply(w, t, p)?))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: Some(ResponseHeader::default()),
        succeeded: path.succeeded,
        responses,
    })
}
