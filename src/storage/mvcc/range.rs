//! Range reads: key selection, revision checks, filters, sort and limit.
//!
//! The order of operations follows etcd 3.4's apply layer, because it is
//! observable: `count` is taken before the mod/create revision filters are
//! applied, filters are applied before sorting, and `limit` is applied after
//! sorting (`more` says whether sorting+filtering left more than `limit`).

use std::ops::Bound;

use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::{RangeRequest, RangeResponse};
use crate::pb::mvccpb::KeyValue;

use super::revision::Revision;
use super::{header, KvStore, MvccError};

/// The keys a request addresses, decoded from etcd's `key`/`range_end` pair.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyRange<'a> {
    /// Empty `range_end`: just `key`.
    Single(&'a [u8]),
    /// `[key, range_end)`, or every key `>= key` when `range_end` is `"\0"`.
    Span(&'a [u8], Bound<&'a [u8]>),
}

impl<'a> KeyRange<'a> {
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::Span(key, Bound::Unbounded),
            end => KeyRange::Span(key, Bound::Excluded(end)),
        }
    }
}

impl KvStore {
    /// The keys in `range` that exist at `rev`, in key order, with the
    /// revision holding each one's value.
    pub(crate) fn visible(
        &self,
        range: KeyRange<'_>,
        rev: i64,
    ) -> impl Iterator<Item = Revision> + '_ {
        let entries: Box<dyn Iterator<Item = _>> = match range {
            KeyRange::Single(key) => Box::new(self.index.get(key).into_iter()),
            KeyRange::Span(start, end) => {
                // BTreeMap::range panics on an inverted range; etcd just
                // returns nothing.
                if matches!(end, Bound::Excluded(end) if end <= start) {
                    Box::new(std::iter::empty())
                } else {
                    Box::new(
                        self.index
                            .range::<[u8], _>((Bound::Included(start), end))
                            .map(|(_, h)| h),
                    )
                }
            }
        };
        entries.filter_map(move |history| history.visible_at(rev))
    }

    /// The values of the keys in `range` that exist at `rev`, in key order.
    pub(crate) fn visible_kvs(&self, range: KeyRange<'_>, rev: i64) -> Vec<KeyValue> {
        self.visible(range, rev)
            .map(|r| self.logged(r).kv())
            .collect()
    }

    /// A range as seen by a reader whose latest revision is `head` (the
    /// store's current revision, or inside a txn that has already written,
    /// the txn's own revision).
    pub(crate) fn range_with_head(
        &self,
        req: &RangeRequest,
        head: i64,
    ) -> Result<RangeResponse, MvccError> {
        if req.revision > head {
            return Err(MvccError::FutureRevision);
        }
        let rev = if req.revision <= 0 {
            head
        } else {
            req.revision
        };
        if rev < self.compact_rev {
            return Err(MvccError::Compacted);
        }

        let revs: Vec<Revision> = self
            .visible(KeyRange::new(&req.key, &req.range_end), rev)
            .collect();
        let mut count = revs.len() as i64;
        if req.count_only {
            return Ok(RangeResponse {
                header: header(head),
                kvs: Vec::new(),
                more: false,
                count,
            });
        }

        let has_filter = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        // Without sorting or filtering only `limit + 1` values are needed
        // (the extra one tells whether there is `more`).
        let fetch = if req.limit > 0 && req.sort_order() == SortOrder::None && !has_filter {
            (req.limit as usize).saturating_add(1)
        } else {
            usize::MAX
        };
        let mut kvs: Vec<KeyValue> = revs
            .into_iter()
            .take(fetch)
            .map(|r| self.logged(r).kv())
            .collect();

        // etcd applies each filter whenever it is non-zero, even negative.
        kvs.retain(|kv| {
            (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        });

        sort(&mut kvs, req.sort_order(), req.sort_target());

        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
            if crate::planted_bug!(RangeCountStopsAtLimit) {
                count = req.limit;
            }
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            header: header(head),
            kvs,
            more,
            count,
        })
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.range_with_head(req, self.current_rev)
    }
}

/// Sorts key-ordered `kvs` as etcd does: order NONE means key order for the
/// KEY target but ascending for any other target. The sort is stable, so ties
/// stay in key order; etcd's (Go's) sort is only guaranteed to agree with
/// that for up to 12 results, beyond which Go's pdqsort may permute ties.
fn sort(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let order = match (order, target) {
        (SortOrder::None, SortTarget::Key) => return,
        (SortOrder::None, _) => SortOrder::Ascend,
        (order, _) => order,
    };
    let key = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    match order {
        SortOrder::Descend => kvs.sort_by(|a, b| key(b, a)),
        _ => kvs.sort_by(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_range_end_selects_one_key() {
        assert!(matches!(KeyRange::new(b"a", b""), KeyRange::Single(b"a")));
    }

    #[test]
    fn a_nul_range_end_selects_every_key_from_key_on() {
        assert!(matches!(
            KeyRange::new(b"a", b"\0"),
            KeyRange::Span(b"a", Bound::Unbounded)
        ));
    }

    #[test]
    fn an_inverted_range_selects_nothing() {
        let store = KvStore::new();
        assert_eq!(store.visible(KeyRange::new(b"b", b"a"), 1).count(), 0);
        assert_eq!(store.visible(KeyRange::new(b"b", b"b"), 1).count(), 0);
    }
}
