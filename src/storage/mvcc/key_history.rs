//! The life of one key: the ordered list of revisions at which it was put or
//! deleted (etcd's `keyIndex`).
//!
//! The values themselves live in the store's revision log; the history only
//! answers "which revision of this key is visible at revision R?", which is
//! all that ranges, compaction and hashing need.

use smallvec::SmallVec;

use super::revision::Revision;

/// One change of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyChange {
    pub rev: Revision,
    pub tombstone: bool,
}

/// Every retained change of one key, in strictly increasing revision order. Most keys have
/// one (written once, or compacted down to their live value), kept inline in the index entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyHistory {
    changes: SmallVec<[KeyChange; 1]>,
}

impl KeyHistory {
    /// Appends a change; revisions of one key must strictly increase.
    pub fn push(&mut self, change: KeyChange) {
        if let Some(last) = self.changes.last() {
            assert!(
                last.rev < change.rev,
                "key history must grow: {:?} after {:?}",
                change.rev,
                last.rev
            );
        }
        self.changes.push(change);
    }

    /// Undoes the latest change (used to roll back a failed txn).
    pub fn pop(&mut self, rev: Revision) {
        let last = self.changes.pop();
        assert_eq!(last.map(|c| c.rev), Some(rev), "rollback out of order");
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The latest change with `main <= rev`, tombstone or not.
    fn latest_at(&self, rev: i64) -> Option<(usize, KeyChange)> {
        let n = self.changes.partition_point(|c| c.rev.main <= rev);
        n.checked_sub(1).map(|i| (i, self.changes[i]))
    }

    /// The revision holding the key's value as of store revision `rev`, or
    /// `None` if the key did not exist then.
    pub fn visible_at(&self, rev: i64) -> Option<Revision> {
        match self.latest_at(rev) {
            Some((_, c)) if !c.tombstone => Some(c.rev),
            _ => None,
        }
    }

    /// Forgets what no read at `rev` or later can observe: every change
    /// before the one visible at `rev`, and that one too if it is a tombstone.
    /// Returns the dropped changes so the caller can drop their values.
    pub fn compact(&mut self, rev: i64) -> Vec<KeyChange> {
        let Some((i, change)) = self.latest_at(rev) else {
            return Vec::new();
        };
        let keep_from = if change.tombstone { i + 1 } else { i };
        self.changes.drain(..keep_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(main: i64) -> KeyChange {
        KeyChange {
            rev: Revision::new(main, 0),
            tombstone: false,
        }
    }

    fn del(main: i64) -> KeyChange {
        KeyChange {
            rev: Revision::new(main, 0),
            tombstone: true,
        }
    }

    fn history(changes: &[KeyChange]) -> KeyHistory {
        let mut h = KeyHistory::default();
        for c in changes {
            h.push(*c);
        }
        h
    }

    #[test]
    fn a_key_is_visible_from_its_put_until_its_delete() {
        let h = history(&[put(2), put(4), del(6), put(8)]);
        assert_eq!(h.visible_at(1), None);
        assert_eq!(h.visible_at(2), Some(Revision::new(2, 0)));
        assert_eq!(h.visible_at(5), Some(Revision::new(4, 0)));
        assert_eq!(h.visible_at(6), None);
        assert_eq!(h.visible_at(7), None);
        assert_eq!(h.visible_at(100), Some(Revision::new(8, 0)));
    }

    #[test]
    fn a_put_and_delete_in_one_revision_leave_the_key_absent() {
        let mut h = history(&[put(2)]);
        h.push(KeyChange {
            rev: Revision::new(3, 0),
            tombstone: false,
        });
        h.push(KeyChange {
            rev: Revision::new(3, 1),
            tombstone: true,
        });
        assert_eq!(h.visible_at(3), None);
        assert_eq!(h.visible_at(2), Some(Revision::new(2, 0)));
    }

    #[test]
    fn compaction_keeps_the_value_visible_at_the_compact_revision() {
        let mut h = history(&[put(2), put(4), del(6), put(8)]);
        assert_eq!(h.compact(5), vec![put(2)]);
        assert_eq!(h.visible_at(5), Some(Revision::new(4, 0)));
        assert_eq!(h.visible_at(8), Some(Revision::new(8, 0)));
    }

    #[test]
    fn compaction_drops_a_tombstone_visible_at_the_compact_revision() {
        let mut h = history(&[put(2), del(3)]);
        assert_eq!(h.compact(3), vec![put(2), del(3)]);
        assert!(h.is_empty());
    }

    #[test]
    fn compaction_before_the_first_change_drops_nothing() {
        let mut h = history(&[put(5)]);
        assert!(h.compact(4).is_empty());
        assert_eq!(h.visible_at(5), Some(Revision::new(5, 0)));
    }

    #[test]
    #[should_panic(expected = "key history must grow")]
    fn a_history_refuses_to_go_back_in_time() {
        history(&[put(3), put(3)]);
    }
}
