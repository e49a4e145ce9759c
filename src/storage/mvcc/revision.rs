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
    /// big-endian `sub`, and a trailing `t` for tombstones: it feeds the hash
    /// (so that our `hash_kv` numbers agree with etcd's) and keys the "key"
    /// bucket of backups in etcd's format.
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

    /// The revision and tombstone mark of a backend key, if it is one.
    pub fn from_backend_key(key: &[u8]) -> Option<(Revision, bool)> {
        let tombstone = match key.len() {
            17 => false,
            18 if key[17] == b't' => true,
            _ => return None,
        };
        if key[8] != b'_' {
            return None;
        }
        let main = i64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
        let sub = i64::from_be_bytes(key[9..17].try_into().expect("8 bytes"));
        Some((Revision::new(main, sub), tombstone))
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
        assert_eq!(
            Revision::from_backend_key(&tomb),
            Some((Revision::new(1, 0), true))
        );
        assert_eq!(
            Revision::from_backend_key(&key),
            Some((Revision::new(0x0102, 3), false))
        );
        assert_eq!(Revision::from_backend_key(&tomb[..16]), None);
    }

    #[test]
    fn byte_order_of_backend_keys_matches_revision_order() {
        let a = Revision::new(2, 300);
        let b = Revision::new(3, 0);
        assert!(a.backend_key(true) < b.backend_key(false));
    }
}
