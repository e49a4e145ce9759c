//! Records that simulated clients append and then fill in as their operations complete (the
//! watch streams, the leases), shared between a client's tasks and the run that reads them after.

use std::sync::{Arc, Mutex};

/// An append-only list of records; clones share it.
#[derive(Debug)]
pub struct Recorded<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Recorded {
            items: Arc::default(),
        }
    }
}

impl<T> Clone for Recorded<T> {
    fn clone(&self) -> Self {
        Recorded {
            items: self.items.clone(),
        }
    }
}

impl<T: Clone> Recorded<T> {
    /// Appends `item`; returns its index for [`Recorded::update`].
    pub fn push(&self, item: T) -> usize {
        let mut items = self.items.lock().unwrap();
        items.push(item);
        items.len() - 1
    }

    pub fn update(&self, index: usize, change: impl FnOnce(&mut T)) {
        change(&mut self.items.lock().unwrap()[index]);
    }

    pub fn get(&self, index: usize) -> T {
        self.items.lock().unwrap()[index].clone()
    }

    pub fn all(&self) -> Vec<T> {
        self.items.lock().unwrap().clone()
    }
}
