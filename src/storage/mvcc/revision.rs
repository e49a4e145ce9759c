//! Revisions name every change in the store.
//!
//! etcd orders changes by a `(main, sub)` pair: `main` is the store revision
//! clients see, `sub` numbers the changes made by one transaction. The pair is
//! what makes a key's history totally ordered even when a single txn touches
//! the same key twice (etcd allows put-then-delete across nested txns).

/// A `(main, sub)` revision, ordered first by `main`, then by `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// etcd's backend key for this revision: big-endian `main`, `_`,
    /// big-endian `sub`, and a trailing `t` for tombstones. We only need it to
    /// feed the hash, so that our `hash_kv` numbers agree with etcd's.
    pub fn backend_key(self, tombstone: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(18);
        out.extend_from_slice(&self.main.to_be_bytes());
        out.push(b'_');
        out.extend_from_slice(&self.sub.to_be_bytes());
        if tombstone {
            out.push(b't');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_order_by_main_then_sub() {
        assert!(Revision::new(2, 5) < Revision::new(3, 0));
        assert!(Revision::new(3, 0) < Revision::new(3, 1));
    }

    #[test]
    fn backend_key_is_etcds_layout() {
        let key = Revision::new(0x0102, 3).backend_key(false);
        assert_eq!(key, [0, 0, 0, 0, 0, 0, 1, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 3]);
        let tomb = Revision::new(1, 0).backend_key(true);
        assert_eq!(tomb.len(), 18);
        assert_eq!(tomb[17], b't');
    }

    #[test]
    fn byte_order_of_backend_keys_matches_revision_order() {
        let a = Revision::new(2, 300);
        let b = Revision::new(3, 0);
        assert!(a.backend_key(true) < b.backend_key(false));
    }
}
