//! The server-wide bound on open watches (`--experimental-max-watchers`). Each watch costs the
//! server memory (its key range) and every catch-up pass time, for as long as it is open; a
//! client that opens watches without end would otherwise grow both without limit.
//!
//! Each stream holds a [`Share`] of the budget: it takes a slot per watch it opens, gives one back
//! per watch it ends, and returns what it still holds when the stream ends, however it ends.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct WatcherBudget {
    open: AtomicUsize,
    max: usize,
}

impl WatcherBudget {
    pub fn new(max: usize) -> WatcherBudget {
        assert!(max > 0, "a watcher budget must allow one watch");
        WatcherBudget {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Watches open on all streams.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn share(&self) -> Share<'_> {
        Share {
            budget: self,
            held: 0,
        }
    }
}

/// One stream's slots.
#[derive(Debug)]
pub struct Share<'a> {
    budget: &'a WatcherBudget,
    held: usize,
}

impl Share<'_> {
    /// Takes a slot for a new watch, or false when the server holds its maximum already.
    pub fn take(&mut self) -> bool {
        let max = self.budget.max;
        let taken = self
            .budget
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < max).then_some(open + 1)
            })
            .is_ok();
        self.held += usize::from(taken);
        taken
    }

    /// Gives back the slot of a watch that ended.
    pub fn give_back(&mut self) {
        assert!(self.held > 0, "a stream gave back a slot it never took");
        self.held -= 1;
        self.budget.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.budget.open.fetch_sub(self.held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_share_the_server_bound_and_return_their_slots_when_they_end() {
        let budget = WatcherBudget::new(3);
        let mut first = budget.share();
        assert!(first.take() && first.take());
        {
            let mut second = budget.share();
            assert!(second.take());
            assert!(!second.take(), "the server bound holds across streams");
            assert!(!first.take());
            assert_eq!(budget.open(), 3);
        }
        assert_eq!(budget.open(), 2, "an ended stream returns its slots");
        first.give_back();
        assert_eq!(budget.open(), 1);
        assert!(first.take() && first.take());
        assert!(!first.take());
        drop(first);
        assert_eq!(budget.open(), 0);
    }
}
