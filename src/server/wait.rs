//! Wait registry (etcd's `wait.Wait`): a proposer registers a one-shot channel under its request id
//! before proposing, and the apply loop triggers it with the result once the entry is applied.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Registered waiters, at most one per id.
#[derive(Debug)]
pub struct Wait<T> {
    waiters: Mutex<BTreeMap<u64, oneshot::Sender<T>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait {
            waiters: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<T> Wait<T> {
    /// Registers `id`; ids are unique per server run, so a duplicate is a bug.
    pub fn register(&self, id: u64) -> oneshot::Receiver<T> {
        let (sender, receiver) = oneshot::channel();
        let previous = self.waiters.lock().unwrap().insert(id, sender);
        assert!(previous.is_none(), "wait id {id:#x} registered twice");
        receiver
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
        let wait = Wait::default();
        let mut first = wait.register(1);
        let mut second = wait.register(2);
        wait.trigger(2, "two");
        assert_eq!(second.try_recv().unwrap(), "two");
        assert!(first.try_recv().is_err());
        wait.trigger(7, "nobody");
        assert_eq!(wait.len(), 1);
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_duplicate_id_is_a_bug() {
        let wait: Wait<()> = Wait::default();
        let _a = wait.register(5);
        let _b = wait.register(5);
    }
}
