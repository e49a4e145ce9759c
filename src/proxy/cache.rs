//! The range cache (etcd's grpcproxy `cache`): the last responses to ranges, by request, served
//! to serializable ranges. A write through the proxy drops every entry whose range it touches; a
//! compaction through it makes older revisions answer "compacted". Like etcd's, it does not see
//! writes that reach the cluster another way: serializable reads may be stale, by contract.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use prost::Message;

use crate::pb::etcdserverpb::{RangeRequest, RangeResponse};

/// etcd's `DefaultMaxEntries`.
pub const ENTRIES_MAX: usize = 2048;

pub struct RangeCache {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Encoded request (as serializable) → the range it read and the answer.
    entries: lru::LruCache<Vec<u8>, Entry>,
    compacted_revision: i64,
}

struct Entry {
    range: KeyRange,
    response: RangeResponse,
}

/// `[key, range_end)` as etcd reads it: an empty end is the key alone, "\0" the keyspace's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    key: Vec<u8>,
    range_end: Vec<u8>,
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        KeyRange {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }

    /// The first key after the range; None when it runs to the end of the keyspace.
    fn end(&self) -> Option<Vec<u8>> {
        match self.range_end.as_slice() {
            [] => {
                let mut end = self.key.clone();
                end.push(0);
                Some(end)
            }
            [0] => None,
            end => Some(end.to_vec()),
        }
    }

    fn overlaps(&self, other: &KeyRange) -> bool {
        let starts_before = |a: &KeyRange, b: &KeyRange| a.end().is_none_or(|end| end > b.key);
        starts_before(self, other) && starts_before(other, self)
    }
}

/// What a serializable range finds in the cache.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    Hit(RangeResponse),
    Miss,
    /// The revision asked for was compacted through the proxy.
    Compacted,
}

impl Default for RangeCache {
    fn default() -> Self {
        RangeCache::new(ENTRIES_MAX)
    }
}

impl RangeCache {
    pub fn new(entries: usize) -> RangeCache {
        RangeCache {
            inner: Mutex::new(Inner {
                entries: lru::LruCache::new(NonZeroUsize::new(entries).expect("entries > 0")),
                compacted_revision: 0,
            }),
        }
    }

    pub fn get(&self, request: &RangeRequest) -> Lookup {
        let mut inner = self.inner.lock().unwrap();
        if request.revision > 0 && request.revision < inner.compacted_revision {
            inner.entries.pop(&cache_key(request));
            return Lookup::Compacted;
        }
        match inner.entries.get(&cache_key(request)) {
            Some(entry) => Lookup::Hit(entry.response.clone()),
            None => Lookup::Miss,
        }
    }

    /// Remembers `response` for later serializable ranges of the same request.
    pub fn add(&self, request: &RangeRequest, response: &RangeResponse) {
        let mut inner = self.inner.lock().unwrap();
        if request.revision > 0 && request.revision < inner.compacted_revision {
            return;
        }
        let entry = Entry {
            range: KeyRange::new(&request.key, &request.range_end),
            response: response.clone(),
        };
        inner.entries.put(cache_key(request), entry);
    }

    /// A write to `range` went through the proxy: answers that read any of it are stale.
    pub fn invalidate(&self, range: &KeyRange) {
        let mut inner = self.inner.lock().unwrap();
        let stale: Vec<Vec<u8>> = inner
            .entries
            .iter()
            .filter(|(_, entry)| entry.range.overlaps(range))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            inner.entries.pop(&key);
        }
    }

    pub fn compact(&self, revision: i64) {
        let mut inner = self.inner.lock().unwrap();
        inner.compacted_revision = inner.compacted_revision.max(revision);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }
}

/// Linearizable and serializable ranges read the same data; both fill the entry a serializable
/// range is served from.
fn cache_key(request: &RangeRequest) -> Vec<u8> {
    RangeRequest {
        serializable: true,
        ..request.clone()
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(key: &str, end: &str) -> RangeRequest {
        RangeRequest {
            key: key.into(),
            range_end: end.into(),
            serializable: true,
            ..Default::default()
        }
    }

    fn answer(count: i64) -> RangeResponse {
        RangeResponse {
            count,
            ..Default::default()
        }
    }

    #[test]
    fn a_write_drops_exactly_the_ranges_it_touches() {
        let cache = RangeCache::default();
        cache.add(&range("a", ""), &answer(1));
        cache.add(&range("b", "d"), &answer(2));
        cache.add(&range("x", "\0"), &answer(3));
        // Filled by a linearizable range, served to a serializable one.
        cache.add(
            &RangeRequest {
                serializable: false,
                ..range("q", "")
            },
            &answer(4),
        );
        assert_eq!(cache.get(&range("q", "")), Lookup::Hit(answer(4)));
        cache.invalidate(&KeyRange::new(b"c", b""));
        assert_eq!(cache.get(&range("a", "")), Lookup::Hit(answer(1)));
        assert_eq!(cache.get(&range("b", "d")), Lookup::Miss);
        cache.invalidate(&KeyRange::new(b"z", b""));
        assert_eq!(cache.get(&range("x", "\0")), Lookup::Miss);
        cache.invalidate(&KeyRange::new(b"", b"\0"));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn entries_are_bounded_and_compaction_answers_compacted() {
        let cache = RangeCache::new(2);
        for key in ["a", "b", "c"] {
            cache.add(&range(key, ""), &answer(1));
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&range("a", "")), Lookup::Miss);
        let old = RangeRequest {
            revision: 3,
            ..range("b", "")
        };
        cache.add(&old, &answer(5));
        cache.compact(4);
        assert_eq!(cache.get(&old), Lookup::Compacted);
    }
}
