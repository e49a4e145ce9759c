//! Wait registry (etcd's `wait.Wait`): a proposer registers a one-shot channel under its request id
//! before proposing, and the apply loop triggers it with the result once the entry is applied.
//!
//! The registry is bounded: every waiter stands for a proposal in flight (its request held by
//! the proposer, its entry in raft's log), so a flood of proposals would otherwise grow memory
//! without limit. When full, `register` refuses at once with etcd's
//! `etcdserver: too many requests`, and the client may retry later.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::ServerError;

/// Registered waiters, at most one per id and at most `capacity` in all.
#[derive(Debug)]
pub struct Wait<T> {
    waiters: Mutex<BTreeMap<u64, oneshot::Sender<T>>>,
    capacity: usize,
}

impl<T> Wait<T> {
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "a wait registry must hold at least one waiter"
        );
        Wait {
            waiters: Mutex::new(BTreeMap::new()),
            capacity,
        }
    }

    /// Registers `id`, or refuses with `TooManyRequests` when `capacity` waiters already wait.
    /// Ids are unique per server run, so a duplicate is a bug.
    pub fn register(&self, id: u64) -> Result<oneshot::Receiver<T>, ServerError> {
        let mut waiters = self.waiters.lock().unwrap();
        if waiters.len() >= self.capacity {
            return Err(ServerError::TooManyRequests);
        }
        let (sender, receiver) = oneshot::channel();
        let previous = waiters.insert(id, sender);
        assert!(previous.is_none(), "wait id {id:#x} registered twice");
        Ok(receiver)
    }

    /// Wakes the waiter for `id`, if any (an entry proposed by an earlier run has none).
    pub fn trigger(&self, id: u64, value: T) {
        if let Some(sender) = self.waiters.lock().unwrap().remove(&id) {
            // The waiter may have given up (timeout); the result is then dropped on purpose.
            let _ = sender.send(value);
        }
    }

    /// Forgets `id` without waking it: the proposer timed out or the proposal was dropped.
    pub fn cancel(&self, id: u64) {
        self.waiters.lock().unwrap().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.waiters.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_wakes_only_the_registered_waiter() {
        let wait = Wait::with_capacity(8);
        let mut first = wait.register(1).unwrap();
        let mut second = wait.register(2).unwrap();
        wait.trigger(2, "two");
        assert_eq!(second.try_recv().unwrap(), "two");
        assert!(first.try_recv().is_err());
        wait.trigger(7, "nobody");
        assert_eq!(wait.len(), 1);
    }

    #[test]
    fn a_full_registry_refuses_until_a_waiter_leaves() {
        let wait: Wait<()> = Wait::with_capacity(2);
        let _a = wait.register(1).unwrap();
        let _b = wait.register(2).unwrap();
        assert_eq!(wait.register(3).unwrap_err(), ServerError::TooManyRequests);
        assert_eq!(wait.len(), 2, "a refused id takes no place");
        wait.trigger(1, ());
        let _c = wait.register(3).unwrap();
        assert_eq!(wait.register(4).unwrap_err(), ServerError::TooManyRequests);
        wait.cancel(2);
        assert!(wait.register(4).is_ok());
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_duplicate_id_is_a_bug() {
        let wait: Wait<()> = Wait::with_capacity(8);
        let _a = wait.register(5);
        let _b = wait.register(5);
    }
}
