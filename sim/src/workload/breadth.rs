//! The `breadth` op mix (a swarm option): the rest of etcd's KV API beside the basic mix —
//! multi-op and nested txns with compares on several keys, read-only txns, ranges and prefixes with
//! limit, sort and count, serializable reads, reads at a past revision, delete-ranges, `prev_kv`
//! and `ignore_lease` puts, and compactions through whichever member the client talks to. Every
//! put writes a fresh value, and the keys a txn writes are distinct (etcd refuses a txn that
//! writes a key twice).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::history::{
    CompareTarget, Comparison, Input, KeyRange, Output, RangeQuery, Relation, Request, Response,
    Versioned,
};

/// What one client has seen so far: each key's latest state and the highest revision.
#[derive(Debug, Default)]
pub struct Seen {
    keys: BTreeMap<String, Option<Versioned>>,
    revision: i64,
}

impl Seen {
    /// Learns from one response.
    pub fn learn(&mut self, input: &Input, output: &Output) {
        match (input, output) {
            (Input::Get { key }, Output::Get { kv, .. })
            | (Input::CompareAndPut { key, .. }, Output::CompareAndPut { current: kv, .. }) => {
                self.keys.insert(key.clone(), kv.clone());
            }
            (Input::Put { key, value }, Output::Put { revision }) => {
                self.keys.insert(
                    key.clone(),
                    Some(Versioned {
                        value: value.clone(),
                        mod_revision: *revision,
                    }),
                );
            }
            (Input::Request { request }, Output::Response { response, .. }) => {
                request.zip(
                    response,
                    &mut |request, response| match (request, response) {
                        (Request::Range(query), Response::Range(outcome))
                            if query.revision == 0 && !outcome.more =>
                        {
                            for (key, kv) in &outcome.kvs {
                                self.keys.insert(key.clone(), Some(kv.clone()));
                            }
                        }
                        (Request::DeleteRange { .. }, Response::DeleteRange { prev, .. }) => {
                            for (key, _) in prev {
                                self.keys.insert(key.clone(), None);
                            }
                        }
                        _ => {}
                    },
                );
            }
            _ => {}
        }
        if let Some(revision) = header(output) {
            self.revision = self.revision.max(revision);
        }
    }
}

fn header(output: &Output) -> Option<i64> {
    match output {
        Output::Get { revision, .. }
        | Output::Put { revision }
        | Output::Delete { revision, .. }
        | Output::CompareAndPut { revision, .. }
        | Output::Response { revision, .. } => Some(*revision),
        _ => None,
    }
}

/// Draws one operation of the breadth mix.
pub struct Chooser<'a> {
    pub rng: &'a mut StdRng,
    pub keys: u32,
    pub client: u32,
    pub sequence: &'a mut u64,
    pub seen: &'a Seen,
}

impl Chooser<'_> {
    pub fn choose(&mut self) -> Input {
        let request = match self.rng.random_range(0..100) {
            0..20 => self.txn(),
            20..30 => self.read_only_txn(),
            30..45 => Request::Range(self.range()),
            45..53 => {
                let mut query = self.range();
                query.serializable = true;
                Request::Range(query)
            }
            53..63 => {
                let mut query = self.range();
                query.revision = self
                    .rng
                    .random_range((self.seen.revision - 20).max(1)..=self.seen.revision.max(1));
                Request::Range(query)
            }
            63..73 => Request::DeleteRange {
                range: self.key_range(),
                prev_kv: self.rng.random_bool(0.5),
            },
            73..95 => {
                let key = self.key();
                self.put(key)
            }
            _ => {
                let revision = self.seen.revision - self.rng.random_range(0..10);
                return Input::Compact {
                    revision: revision.max(1),
                };
            }
        };
        Input::Request { request }
    }

    fn key(&mut self) -> String {
        format!("k{}", self.rng.random_range(0..self.keys))
    }

    /// `n` distinct keys.
    fn distinct_keys(&mut self, n: usize) -> Vec<String> {
        let mut keys: Vec<String> = (0..self.keys).map(|i| format!("k{i}")).collect();
        keys.shuffle(self.rng);
        keys.truncate(n);
        keys
    }

    fn value(&mut self) -> String {
        *self.sequence += 1;
        format!("c{}-{}", self.client, self.sequence)
    }

    fn put(&mut self, key: String) -> Request {
        Request::Put {
            value: self.value(),
            prev_kv: self.rng.random_bool(0.5),
            ignore_lease: self.rng.random_bool(0.1),
            key,
        }
    }

    /// One key, a span of keys, or every key (the `k` prefix).
    fn key_range(&mut self) -> KeyRange {
        match self.rng.random_range(0..3) {
            0 => KeyRange {
                key: self.key(),
                range_end: None,
            },
            1 => {
                let low = self.rng.random_range(0..self.keys);
                let high = self.rng.random_range(low + 1..=self.keys);
                KeyRange {
                    key: format!("k{low}"),
                    range_end: Some(format!("k{high}")),
                }
            }
            _ => every_key(),
        }
    }

    fn range(&mut self) -> RangeQuery {
        RangeQuery {
            range: self.key_range(),
            limit: if self.rng.random_bool(0.5) {
                self.rng.random_range(1..=self.keys.into())
            } else {
                0
            },
            revision: 0,
            serializable: false,
            count_only: self.rng.random_bool(0.1),
            descending: self.rng.random_bool(0.3),
        }
    }

    /// A compare the client's last look makes likely to hold.
    fn compare(&mut self, key: String) -> Comparison {
        let last = self.seen.keys.get(&key).cloned().flatten();
        let (target, relation) = match (self.rng.random_range(0..10), last) {
            (0..2, Some(kv)) => (CompareTarget::Value(kv.value), Relation::Equal),
            (2, last) => (
                CompareTarget::ModRevision(last.map_or(0, |kv| kv.mod_revision) + 1),
                Relation::Less,
            ),
            (3, _) => (CompareTarget::ModRevision(0), Relation::Greater),
            (_, last) => (
                CompareTarget::ModRevision(last.map_or(0, |kv| kv.mod_revision)),
                Relation::Equal,
            ),
        };
        Comparison {
            key,
            target,
            relation,
        }
    }

    /// Compares on one to three keys; the success branch writes one to three keys, maybe reads
    /// after writing and maybe nests a txn; the failure branch first reads every key (so that a
    /// failed compare can be checked), then maybe writes.
    fn txn(&mut self) -> Request {
        let compared = self.rng.random_range(1..=3.min(self.keys as usize));
        let compares = self
            .distinct_keys(compared)
            .into_iter()
            .map(|key| self.compare(key))
            .collect();
        let writes = self.rng.random_range(1..=3.min(self.keys as usize));
        let mut written = self.distinct_keys(writes + 2).into_iter();
        let mut success: Vec<Request> = Vec::new();
        for key in written.by_ref().take(writes) {
            success.push(if self.rng.random_bool(0.8) {
                self.put(key)
            } else {
                Request::DeleteRange {
                    range: KeyRange {
                        key,
                        range_end: None,
                    },
                    prev_kv: self.rng.random_bool(0.5),
                }
            });
        }
        if self.rng.random_bool(0.5) {
            success.push(Request::Range(RangeQuery {
                range: every_key(),
                ..self.range()
            }));
        }
        if let (true, Some(key)) = (self.rng.random_bool(0.3), written.next()) {
            let compare = self.compare(key.clone());
            let nested_success = vec![self.put(key)];
            let nested_failure = written
                .next()
                .map(|other| vec![self.put(other)])
                .unwrap_or_default();
            success.push(Request::Txn {
                compares: vec![compare],
                success: nested_success,
                failure: nested_failure,
            });
        }
        let mut failure = vec![Request::Range(read_everything())];
        if self.rng.random_bool(0.5) {
            let key = self.key();
            failure.push(self.put(key));
        }
        Request::Txn {
            compares,
            success,
            failure,
        }
    }

    /// Compares, then only reads.
    fn read_only_txn(&mut self) -> Request {
        let compared = self.rng.random_range(1..=2.min(self.keys as usize));
        let compares = self
            .distinct_keys(compared)
            .into_iter()
            .map(|key| self.compare(key))
            .collect();
        let success = vec![Request::Range(self.range()), Request::Range(self.range())];
        Request::Txn {
            compares,
            success,
            failure: vec![Request::Range(read_everything())],
        }
    }
}

/// The `k` prefix: every workload key.
fn every_key() -> KeyRange {
    KeyRange {
        key: "k".into(),
        range_end: Some("l".into()),
    }
}

/// A plain read of every key: what a failure branch sees first.
fn read_everything() -> RangeQuery {
    RangeQuery {
        range: every_key(),
        limit: 0,
        revision: 0,
        serializable: false,
        count_only: false,
        descending: false,
    }
}
