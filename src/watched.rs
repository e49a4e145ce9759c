//! [`Watched`]: a value that tasks can wait on until it satisfies a condition.
//!
//! This is what `tokio::sync::watch` does, minus its one problem for the simulator: tokio's
//! watch channel spreads its waiters over several `Notify`s picked by tokio's internal random
//! number generator, which madsim does not seed, so the order in which waiting tasks wake differs
//! from run to run and a seed no longer fixes the execution. A single `Notify` wakes its waiters
//! in the order they started waiting, which the simulator does control.

use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Watched<T> {
    value: Mutex<T>,
    changed: Notify,
}

impl<T: Clone> Watched<T> {
    pub fn new(value: T) -> Self {
        Watched {
            value: Mutex::new(value),
            changed: Notify::new(),
        }
    }

    pub fn get(&self) -> T {
        self.value.lock().unwrap().clone()
    }

    /// Replaces the value and wakes every waiter.
    pub fn set(&self, value: T) {
        *self.value.lock().unwrap() = value;
        self.changed.notify_waiters();
    }

    /// Changes the value in place; waiters are woken only if `change` returns true.
    pub fn update(&self, change: impl FnOnce(&mut T) -> bool) {
        let changed = change(&mut self.value.lock().unwrap());
        if changed {
            self.changed.notify_waiters();
        }
    }

    /// Resolves with the value once `condition` holds for it.
    pub async fn wait_for(&self, condition: impl Fn(&T) -> bool) -> T {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Register before looking, so a change between the look and the wait is not missed.
            notified.as_mut().enable();
            {
                let value = self.value.lock().unwrap();
                if condition(&value) {
                    return value.clone();
                }
            }
            notified.await;
        }
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_once_its_condition_holds() {
        let watched = Arc::new(Watched::new(0u64));
        let waiter = {
            let watched = watched.clone();
            tokio::spawn(async move { watched.wait_for(|v| *v >= 3).await })
        };
        for value in 1..=3 {
            tokio::task::yield_now().await;
            watched.set(value);
        }
        assert_eq!(waiter.await.unwrap(), 3);
    }

    #[tokio::test]
    async fn an_update_that_changes_nothing_wakes_nobody() {
        let watched = Watched::new(5u64);
        watched.update(|_| false);
        assert_eq!(watched.get(), 5);
        assert_eq!(watched.wait_for(|v| *v == 5).await, 5);
    }
}
