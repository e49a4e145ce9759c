//! Every retained change, in revision order (etcd's boltdb "key" bucket).
//!
//! Writes only ever append a revision above the last one, and only a rolled-back txn takes
//! revisions off again (its own, the last ones), so the log is a sorted `Vec` rather than a
//! tree: one slot per change and no node overhead, found by binary search. Compaction, the one
//! removal from the middle, rewrites the vector in one pass, as it visits every key anyway.

use super::revision::Revision;
use super::LoggedChange;

#[derive(Debug, Clone, Default)]
pub(crate) struct RevisionLog {
    /// Strictly increasing by `rev`.
    changes: Vec<LoggedChange>,
    /// Key and value bytes of `changes`, kept as they change so that size checks on every
    /// write cost nothing.
    bytes: u64,
}

impl RevisionLog {
    /// Appends a change above every logged revision.
    pub fn push(&mut self, change: LoggedChange) {
        if let Some(last) = self.changes.last() {
            assert!(
                last.rev < change.rev,
                "revision {:?} logged after {:?}",
                change.rev,
                last.rev
            );
        }
        self.bytes += change.bytes();
        self.changes.push(change);
    }

    /// Takes the last change off again (a rolled-back txn's).
    pub fn pop(&mut self, rev: Revision) {
        let change = self.changes.pop();
        assert_eq!(
            change.as_ref().map(|c| c.rev),
            Some(rev),
            "rollback out of order"
        );
        self.bytes -= change.map_or(0, |c| c.bytes());
    }

    pub fn get(&self, rev: Revision) -> Option<&LoggedChange> {
        let i = self.changes.binary_search_by_key(&rev, |c| c.rev).ok()?;
        Some(&self.changes[i])
    }

    pub fn bytes(&self) -> u64 {
        debug_assert_eq!(
            self.bytes,
            self.changes.iter().map(LoggedChange::bytes).sum::<u64>(),
            "retained bytes follow the log"
        );
        self.bytes
    }

    /// All changes, in revision order.
    pub fn all(&self) -> &[LoggedChange] {
        &self.changes
    }

    /// The changes whose main revision is in `first..=last`, in revision order.
    pub fn mains(&self, first: i64, last: i64) -> &[LoggedChange] {
        let start = self.changes.partition_point(|c| c.rev.main < first);
        let end = self.changes.partition_point(|c| c.rev.main <= last);
        &self.changes[start..end.max(start)]
    }

    /// The changes at and after main revision `first`, to be altered in place by a planted bug.
    #[cfg(feature = "sim-bugs")]
    pub fn mains_from_mut(&mut self, first: i64) -> &mut [LoggedChange] {
        let start = self.changes.partition_point(|c| c.rev.main < first);
        &mut self.changes[start..]
    }

    /// Removes the changes at `revs` (sorted, each logged): what a compaction dropped.
    pub fn remove_sorted(&mut self, revs: &[Revision]) {
        if revs.is_empty() {
            return;
        }
        let mut doomed = revs.iter().peekable();
        let bytes = &mut self.bytes;
        self.changes.retain(|change| {
            if doomed.peek() == Some(&&change.rev) {
                doomed.next();
                *bytes -= change.bytes();
                false
            } else {
                true
            }
        });
        assert!(
            doomed.next().is_none(),
            "compaction dropped an unlogged revision"
        );
        // A compaction that dropped most of the history gives the memory back.
        if self.changes.len() < self.changes.capacity() / 2 {
            self.changes.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn change(main: i64, sub: i64, value: &str) -> LoggedChange {
        LoggedChange {
            rev: Revision::new(main, sub),
            key: Arc::from(&b"k"[..]),
            value: value.as_bytes().into(),
            create_revision: main,
            mod_revision: main,
            version: 1,
            lease: 0,
            tombstone: false,
        }
    }

    fn log_of(changes: &[(i64, i64)]) -> RevisionLog {
        let mut log = RevisionLog::default();
        for &(main, sub) in changes {
            log.push(change(main, sub, "vv"));
        }
        log
    }

    fn revs(changes: &[LoggedChange]) -> Vec<(i64, i64)> {
        changes.iter().map(|c| (c.rev.main, c.rev.sub)).collect()
    }

    #[test]
    fn changes_are_found_by_revision() {
        let log = log_of(&[(2, 0), (3, 0), (3, 1), (5, 0)]);
        assert_eq!(
            log.get(Revision::new(3, 1)).unwrap().rev,
            Revision::new(3, 1)
        );
        assert!(log.get(Revision::new(4, 0)).is_none());
        assert_eq!(revs(log.mains(3, 4)), [(3, 0), (3, 1)]);
        assert_eq!(revs(log.mains(6, 9)), []);
        assert_eq!(revs(log.mains(4, 3)), []);
        assert_eq!(log.bytes(), 4 * 3);
    }

    #[test]
    fn compaction_removes_exactly_the_dropped_revisions() {
        let mut log = log_of(&[(2, 0), (3, 0), (3, 1), (5, 0), (6, 0)]);
        log.remove_sorted(&[
            Revision::new(2, 0),
            Revision::new(3, 1),
            Revision::new(6, 0),
        ]);
        assert_eq!(revs(log.all()), [(3, 0), (5, 0)]);
        assert_eq!(log.bytes(), 2 * 3);
    }

    #[test]
    #[should_panic(expected = "compaction dropped an unlogged revision")]
    fn compaction_of_an_unlogged_revision_is_a_bug() {
        let mut log = log_of(&[(2, 0), (3, 0)]);
        log.remove_sorted(&[Revision::new(2, 1)]);
    }

    #[test]
    fn rollback_takes_the_last_changes_off() {
        let mut log = log_of(&[(2, 0), (3, 0), (3, 1)]);
        log.pop(Revision::new(3, 1));
        log.pop(Revision::new(3, 0));
        assert_eq!(revs(log.all()), [(2, 0)]);
        assert_eq!(log.bytes(), 3);
    }

    #[test]
    #[should_panic(expected = "logged after")]
    fn revisions_must_increase() {
        log_of(&[(3, 0), (2, 0)]);
    }
}
