//! Linearizability of the KV history, decided by revisions, as etcd's robustness suite does.
//!
//! etcd totally orders its writes: each request that changes something makes exactly one new
//! revision, and every response's header carries the revision it was served at (the one a write
//! made; the current one for anything that wrote nothing). So the acknowledged operations need no
//! search for an order: a write made at revision `r` is linearized at `r`, a read served at `R`
//! after the write of `R` and before that of `R + 1`. What remains is to check that
//!
//! - the order respects real time: an operation that completed before another was invoked has the
//!   lower revision (lower or equal when the later one wrote nothing);
//! - no two writes share a revision;
//! - replaying each key's facts in revision order explains every response: a read (or a range,
//!   `prev_kv`, a compare, a delete count) at `R` sees exactly the key's state after the writes up
//!   to `R`. Because a txn's facts on several keys all sit at its one revision, this checks
//!   multi-key txns atomically, not only key by key.
//!
//! Indeterminate writes (the client never learned the outcome) are the only freedom. Values are
//! unique, so one that is *observed* (a read returned its value) happened, at the `mod_revision`
//! it was seen with, and becomes a write at that revision. One that is never observed may have
//! happened at any free revision after its invocation, or never: it sits in a pool, and is placed
//! only where a fact needs it (a key must be absent, or present for a delete that deleted it), as
//! late as possible, choosing among the usable ones the one invoked latest (the least flexible; an
//! earlier one can serve every later need it could). This replaces the Wing-Gong-Lowe search the
//! checker used before, which went past 500 000 configurations on ~0.9 % of default seeds. It
//! is permissive where exactness would need a search: an unobserved multi-key txn is placed key by
//! key, and free revisions are not reserved across keys.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::history::{
    CompareTarget, Comparison, Input, KeyRange, Operation, Output, RangeOutcome, RangeQuery,
    Relation, Request, Response, Versioned,
};

const NAME: &str = "linearizability";

/// A key's state in the model: absent, or a value and the revision of its last write (`None`
/// when an unobserved write placed from the pool made it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct State(Option<(String, Option<i64>)>);

impl State {
    fn describe(&self) -> String {
        match &self.0 {
            None => "absent".to_string(),
            Some((value, Some(revision))) => format!("{value}@{revision}"),
            Some((value, None)) => format!("{value}@?"),
        }
    }
}

/// What an operation tells about one key at its point in the revision order.
#[derive(Debug, Clone)]
enum Fact {
    /// The key's state is exactly this (a read, a range, a `prev_kv`).
    Is(Option<Versioned>),
    /// A compare on the key holds (`true`) or fails (`false`).
    Compare(Comparison, bool),
    /// A put made the key this value.
    Put(String),
    /// A delete deleted the key (so it existed).
    Delete,
    /// A delete-range over the key deleted it if it existed (the response does not say).
    DeleteIfPresent,
}

/// Where a fact sits in the revision order: a write at `r` is at `(r, 0, op, i)`, a read at `R`
/// at `(R, 1, op, i)`; `i` orders the facts of one operation (compares first).
type Position = (i64, u8, usize, usize);

/// One fact of one operation on one key.
#[derive(Debug, Clone)]
struct Event {
    position: Position,
    op: usize,
    fact: Fact,
}

/// An unobserved indeterminate write that may have happened: an optional put or delete of a key.
#[derive(Debug, Clone)]
struct Optional {
    op: usize,
    /// The highest revision of any operation that completed before it was invoked.
    after: i64,
    /// `Some(value)`: a put; `None`: a delete.
    put: Option<String>,
    /// A compare on the same key that must hold where it is placed (a compare-and-put's).
    guard: Option<Comparison>,
}

pub fn check(operations: &[Operation]) -> Vec<Violation> {
    Checker::new(operations).run()
}

struct Checker<'a> {
    operations: &'a [Operation],
    /// Every key any client wrote: a range's silence about one of them says it is absent.
    universe: BTreeSet<&'a str>,
    /// Operations that got a response, by completion time, with the running maximum of their
    /// revisions: what real time forces later operations to exceed.
    completed: Vec<(u64, i64)>,
    violations: Vec<Violation>,
}

fn fail(violations: &mut Vec<Violation>, message: String, operations: Vec<usize>) {
    violations.push(Violation::correctness(NAME, message, operations));
}

impl<'a> Checker<'a> {
    fn new(operations: &'a [Operation]) -> Checker<'a> {
        let universe = operations
            .iter()
            .flat_map(|op| op.input.attempted_puts())
            .map(|(key, _)| key)
            .collect();
        let mut completed: Vec<(u64, i64)> = operations
            .iter()
            .filter_map(|op| Some((op.complete_ns, op.header_revision()?)))
            .collect();
        completed.sort();
        let mut highest = 0;
        for entry in &mut completed {
            highest = highest.max(entry.1);
            entry.1 = highest;
        }
        Checker {
            operations,
            universe,
            completed,
            violations: Vec::new(),
        }
    }

    /// The highest revision among operations that completed before `ns` (1: the initial one).
    fn revision_before(&self, ns: u64) -> i64 {
        let index = self
            .completed
            .partition_point(|&(complete, _)| complete < ns);
        if index == 0 {
            1
        } else {
            self.completed[index - 1].1
        }
    }

    fn run(mut self) -> Vec<Violation> {
        let observed = self.observations();
        let mut events: BTreeMap<&'a str, Vec<Event>> = BTreeMap::new();
        let mut pool: BTreeMap<&'a str, Vec<Optional>> = BTreeMap::new();
        // Revision → the write operation placed there.
        let mut writes: BTreeMap<i64, usize> = BTreeMap::new();
        for op in self.operations {
            let mut facts = Vec::new();
            let placed = match &op.output {
                Output::Failed { .. } | Output::Compacted { .. } => continue,
                Output::Indeterminate { .. } => match self.forced_revision(op, &observed) {
                    Some(revision) => {
                        let before = self.revision_before(op.invoke_ns);
                        if revision <= before {
                            fail(
                                    &mut self.violations,
                                    format!(
                                        "#{} was seen written at revision {revision}, but an operation that completed \
                                         before it was invoked had already reached revision {before}",
                                        op.id,
                                    ),
                                    vec![op.id],
                                );
                        }
                        self.forced_facts(op, &observed, &mut facts, &mut pool);
                        Some((revision, true))
                    }
                    None => {
                        self.pool(op, &mut pool);
                        None
                    }
                },
                _ => {
                    let placed = self.facts(op, &mut facts);
                    self.check_real_time(op, placed);
                    Some(placed)
                }
            };
            let Some((revision, wrote)) = placed else {
                continue;
            };
            if wrote {
                if let Some(&other) = writes.get(&revision) {
                    fail(
                        &mut self.violations,
                        format!("#{other} and #{} both wrote revision {revision}", op.id),
                        vec![other, op.id],
                    );
                }
                writes.insert(revision, op.id);
            }
            for (i, (key, fact, at)) in facts.into_iter().enumerate() {
                let stage = if wrote { 0 } else { 1 };
                events.entry(key).or_default().push(Event {
                    position: (at.unwrap_or(revision), stage, op.id, i),
                    op: op.id,
                    fact,
                });
            }
        }
        let occupied: BTreeSet<i64> = writes.keys().copied().collect();
        for (key, mut events) in events {
            events.sort_by_key(|event| event.position);
            let pool = pool.remove(key).unwrap_or_default();
            replay(key, &events, pool, &occupied, &mut self.violations);
        }
        self.violations
    }

    /// Every value a response showed, with the `mod_revision`s it was seen at.
    fn observations(&self) -> BTreeMap<&'a str, BTreeSet<i64>> {
        let mut observed: BTreeMap<&'a str, BTreeSet<i64>> = BTreeMap::new();
        let mut see = |kv: &'a Versioned| {
            observed
                .entry(kv.value.as_str())
                .or_default()
                .insert(kv.mod_revision);
        };
        for op in self.operations {
            match &op.output {
                Output::Get { kv: Some(kv), .. }
                | Output::CompareAndPut {
                    current: Some(kv), ..
                } => see(kv),
                Output::Response { response, .. } => {
                    each_response(response, &mut |response| match response {
                        Response::Range(outcome) => outcome.kvs.iter().for_each(|(_, kv)| see(kv)),
                        Response::Put { prev: Some(kv) } => see(kv),
                        Response::DeleteRange { prev, .. } => {
                            prev.iter().for_each(|(_, kv)| see(kv))
                        }
                        _ => {}
                    })
                }
                _ => {}
            }
        }
        observed
    }

    /// The revision at which an indeterminate write is known to have happened: the
    /// `mod_revision` its value was seen with.
    fn forced_revision(
        &mut self,
        op: &Operation,
        observed: &BTreeMap<&str, BTreeSet<i64>>,
    ) -> Option<i64> {
        let revisions: BTreeSet<i64> = op
            .input
            .attempted_puts()
            .into_iter()
            .filter_map(|(_, value)| observed.get(value))
            .flatten()
            .copied()
            .collect();
        if revisions.len() > 1 {
            fail(
                &mut self.violations,
                format!(
                    "the writes of #{} were seen at several revisions {revisions:?}: one request makes one revision",
                    op.id
                ),
                vec![op.id],
            );
        }
        revisions.first().copied()
    }

    /// The facts of an acknowledged operation; returns its revision and whether it wrote.
    fn facts(
        &mut self,
        op: &'a Operation,
        facts: &mut Vec<(&'a str, Fact, Option<i64>)>,
    ) -> (i64, bool) {
        let here = |key: &'a str, fact| (key, fact, None);
        match (&op.input, &op.output) {
            (Input::Get { key }, Output::Get { kv, revision }) => {
                facts.push(here(key, Fact::Is(kv.clone())));
                (*revision, false)
            }
            (Input::Put { key, value }, Output::Put { revision }) => {
                facts.push(here(key, Fact::Put(value.clone())));
                (*revision, true)
            }
            (Input::Delete { key }, Output::Delete { deleted, revision }) => {
                facts.push(here(
                    key,
                    if *deleted > 0 {
                        Fact::Delete
                    } else {
                        Fact::Is(None)
                    },
                ));
                (*revision, *deleted > 0)
            }
            (
                Input::CompareAndPut {
                    key,
                    expected_mod_revision,
                    value,
                },
                Output::CompareAndPut {
                    succeeded,
                    current,
                    revision,
                },
            ) => {
                let compare = Comparison {
                    key: key.clone(),
                    target: CompareTarget::ModRevision(*expected_mod_revision),
                    relation: Relation::Equal,
                };
                facts.push(here(key, Fact::Compare(compare, *succeeded)));
                facts.push(here(
                    key,
                    if *succeeded {
                        Fact::Put(value.clone())
                    } else {
                        Fact::Is(current.clone())
                    },
                ));
                (*revision, *succeeded)
            }
            (Input::Request { request }, Output::Response { response, revision }) => {
                let wrote = request.wrote(response);
                if let (Request::Range(query), Response::Range(outcome)) = (request, response) {
                    if query.revision > *revision {
                        fail(
                            &mut self.violations,
                            format!(
                                "#{}: a read at revision {} answered with header revision {revision}",
                                op.id, query.revision
                            ),
                            vec![op.id],
                        );
                    }
                    let at = (query.revision > 0).then_some(query.revision);
                    self.range_facts(op.id, query, outcome, at, facts);
                } else {
                    self.request_facts(op.id, request, response, facts);
                }
                (*revision, wrote)
            }
            _ => {
                fail(
                    &mut self.violations,
                    format!("#{}: the output does not answer the input", op.id),
                    vec![op.id],
                );
                (0, false)
            }
        }
    }

    /// Real time: every operation that completed before `op` was invoked has a lower revision
    /// (not higher, when `op` wrote nothing). A serializable read may be stale, so it is exempt
    /// as the later operation (it still reached its revision before it completed).
    fn check_real_time(&mut self, op: &Operation, (revision, wrote): (i64, bool)) {
        if op.is_serializable() {
            return;
        }
        let before = self.revision_before(op.invoke_ns);
        if before > revision || (wrote && before == revision) {
            fail(
                &mut self.violations,
                format!(
                    "#{} {} at revision {revision}, but an operation that completed before it was invoked had \
                     already reached revision {before}",
                    op.id,
                    if wrote { "wrote" } else { "read" }
                ),
                vec![op.id],
            );
        }
    }

    /// The facts of a request and the path the server took through it. etcd evaluates every
    /// compare on the path before the first op applies, so they come first.
    fn request_facts(
        &mut self,
        id: usize,
        request: &'a Request,
        response: &'a Response,
        facts: &mut Vec<(&'a str, Fact, Option<i64>)>,
    ) {
        request.zip(response, &mut |request, response| {
            if let (Request::Txn { compares, .. }, Response::Txn { succeeded, .. }) =
                (request, response)
            {
                // Of several compares that did not all hold, which failed is not known here.
                if *succeeded || compares.len() == 1 {
                    for compare in compares {
                        facts.push((
                            &compare.key,
                            Fact::Compare(compare.clone(), *succeeded),
                            None,
                        ));
                    }
                }
            }
        });
        if let (
            Request::Txn {
                compares, failure, ..
            },
            Response::Txn {
                succeeded: false,
                responses,
            },
        ) = (request, response)
        {
            // The failure branch's first op reads the state the compares saw, before any write:
            // some compare must fail on it.
            if let (Some(Request::Range(query)), Some(Response::Range(outcome))) =
                (failure.first(), responses.first())
            {
                if compares.len() > 1 && !compares.iter().any(|c| fails_on(c, query, outcome)) {
                    self.local(
                        id,
                        "the txn took its failure branch, but every compare holds on what that branch read first",
                    );
                }
            }
        }
        request.zip(
            response,
            &mut |request, response| match (request, response) {
                (Request::Range(query), Response::Range(outcome)) => {
                    self.range_facts(id, query, outcome, None, facts);
                }
                (
                    Request::Put {
                        key,
                        value,
                        prev_kv,
                        ignore_lease,
                    },
                    Response::Put { prev },
                ) => {
                    if *ignore_lease {
                        // It keeps the key's lease, so the key existed.
                        let exists = Comparison {
                            key: key.clone(),
                            target: CompareTarget::ModRevision(0),
                            relation: Relation::Greater,
                        };
                        facts.push((key, Fact::Compare(exists, true), None));
                    }
                    if *prev_kv {
                        facts.push((key, Fact::Is(prev.clone()), None));
                    } else if prev.is_some() {
                        self.local(id, "a put without prev_kv returned a previous value");
                    }
                    facts.push((key, Fact::Put(value.clone()), None));
                }
                (
                    Request::DeleteRange { range, prev_kv },
                    Response::DeleteRange { deleted, prev },
                ) => {
                    self.delete_facts(id, range, *prev_kv, *deleted, prev, facts);
                }
                (Request::Txn { .. }, Response::Txn { .. }) => {}
                _ => self.local(id, "a response does not answer its request"),
            },
        );
    }

    fn local(&mut self, id: usize, message: &str) {
        fail(&mut self.violations, format!("#{id}: {message}"), vec![id]);
    }

    fn keys_in(&self, range: &KeyRange) -> Vec<&'a str> {
        self.universe
            .iter()
            .copied()
            .filter(|key| range.contains(key))
            .collect()
    }

    fn delete_facts(
        &mut self,
        id: usize,
        range: &KeyRange,
        prev_kv: bool,
        deleted: i64,
        prev: &[(String, Versioned)],
        facts: &mut Vec<(&'a str, Fact, Option<i64>)>,
    ) {
        let keys = self.keys_in(range);
        if prev_kv {
            if prev.len() as i64 != deleted {
                self.local(
                    id,
                    "a delete-range's prev_kvs do not match its deleted count",
                );
            }
            for key in keys {
                match prev.iter().find(|(k, _)| k == key) {
                    Some((_, kv)) => {
                        facts.push((key, Fact::Is(Some(kv.clone())), None));
                        facts.push((key, Fact::Delete, None));
                    }
                    None => facts.push((key, Fact::Is(None), None)),
                }
            }
            if prev
                .iter()
                .any(|(key, _)| !range.contains(key) || !self.universe.contains(key.as_str()))
            {
                self.local(id, "a delete-range returned a prev_kv outside its range, or of a key no client wrote");
            }
            return;
        }
        if !prev.is_empty() {
            self.local(
                id,
                "a delete-range without prev_kv returned previous values",
            );
        }
        if deleted > keys.len() as i64 {
            self.local(
                id,
                "a delete-range deleted more keys than were ever written in its range",
            );
        }
        let fact = if deleted == 0 {
            Fact::Is(None)
        } else if deleted == keys.len() as i64 {
            Fact::Delete
        } else {
            Fact::DeleteIfPresent
        };
        facts.extend(keys.into_iter().map(|key| (key, fact.clone(), None)));
    }

    /// A range's facts: each returned key is as returned; every key the range covered but did
    /// not return is absent. With `more`, the range covered the keys up to the last returned
    /// one in its order. `at`: a read at a past revision.
    fn range_facts(
        &mut self,
        id: usize,
        query: &RangeQuery,
        outcome: &'a RangeOutcome,
        at: Option<i64>,
        facts: &mut Vec<(&'a str, Fact, Option<i64>)>,
    ) {
        let returned = outcome.kvs.len() as i64;
        let in_order = outcome.kvs.windows(2).all(|pair| {
            if query.descending {
                pair[0].0 > pair[1].0
            } else {
                pair[0].0 < pair[1].0
            }
        });
        let keys = self.keys_in(&query.range);
        let problem = if !in_order {
            Some("keys out of order")
        } else if outcome
            .kvs
            .iter()
            .any(|(key, _)| !query.range.contains(key))
        {
            Some("a key outside the range")
        } else if outcome
            .kvs
            .iter()
            .any(|(key, _)| !self.universe.contains(key.as_str()))
        {
            Some("a key no client wrote")
        } else if query.count_only && returned > 0 {
            Some("count_only returned keys")
        } else if query.limit > 0 && returned > query.limit {
            Some("more keys than the limit")
        } else if !query.count_only && outcome.more != (outcome.count > returned) {
            Some("`more` disagrees with count and the keys returned")
        } else if !query.count_only && query.limit > 0 && outcome.more && returned < query.limit {
            Some("fewer keys than the limit, yet `more`")
        } else if outcome.count < returned || outcome.count > keys.len() as i64 {
            Some("a count that cannot be")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.local(
                id,
                &format!("range {:?}: {problem} ({outcome:?})", query.range),
            );
            return;
        }
        if query.count_only {
            return;
        }
        let last = outcome.kvs.last().map(|(key, _)| key.as_str());
        for key in keys {
            let covered = !outcome.more
                || last.is_some_and(|last| {
                    if query.descending {
                        key >= last
                    } else {
                        key <= last
                    }
                });
            match outcome.kvs.iter().find(|(k, _)| k == key) {
                Some((_, kv)) => facts.push((key, Fact::Is(Some(kv.clone())), at)),
                None if covered => facts.push((key, Fact::Is(None), at)),
                None => {}
            }
        }
    }

    /// The facts of an indeterminate write whose values were seen: the writes on the path its
    /// observed values show (a txn level none of them shows goes to the pool).
    fn forced_facts(
        &mut self,
        op: &'a Operation,
        observed: &BTreeMap<&str, BTreeSet<i64>>,
        facts: &mut Vec<(&'a str, Fact, Option<i64>)>,
        pool: &mut BTreeMap<&'a str, Vec<Optional>>,
    ) {
        match &op.input {
            Input::Put { key, value } => facts.push((key, Fact::Put(value.clone()), None)),
            Input::CompareAndPut {
                key,
                expected_mod_revision,
                value,
            } => {
                let compare = Comparison {
                    key: key.clone(),
                    target: CompareTarget::ModRevision(*expected_mod_revision),
                    relation: Relation::Equal,
                };
                facts.push((key, Fact::Compare(compare, true), None));
                facts.push((key, Fact::Put(value.clone()), None));
            }
            Input::Request { request } => {
                let seen = |r: &Request| {
                    let mut seen = false;
                    r.each(&mut |r| {
                        if let Request::Put { value, .. } = r {
                            seen |= observed.contains_key(value.as_str());
                        }
                    });
                    seen
                };
                let mut effects = Vec::new();
                self.forced_path(op, request, &seen, facts, &mut effects, pool);
                facts.extend(effects);
            }
            _ => {}
        }
    }

    /// Walks the path of a forced request: compares into `facts`, writes into `effects`.
    fn forced_path(
        &mut self,
        op: &'a Operation,
        request: &'a Request,
        seen: &dyn Fn(&Request) -> bool,
        facts: &mut Vec<(&'a str, Fact, Option<i64>)>,
        effects: &mut Vec<(&'a str, Fact, Option<i64>)>,
        pool: &mut BTreeMap<&'a str, Vec<Optional>>,
    ) {
        match request {
            Request::Put { key, value, .. } => effects.push((key, Fact::Put(value.clone()), None)),
            Request::DeleteRange { range, .. } => {
                for key in self.keys_in(range) {
                    effects.push((key, Fact::DeleteIfPresent, None));
                }
            }
            Request::Range(_) => {}
            Request::Txn {
                compares,
                success,
                failure,
            } => {
                let in_success = success.iter().any(seen);
                let in_failure = failure.iter().any(seen);
                if in_success && in_failure {
                    self.local(op.id, "values from both branches of one txn were seen");
                    return;
                }
                if !in_success && !in_failure {
                    self.pool_request(op, request, pool);
                    return;
                }
                if in_success || compares.len() == 1 {
                    for compare in compares {
                        facts.push((
                            &compare.key,
                            Fact::Compare(compare.clone(), in_success),
                            None,
                        ));
                    }
                }
                for op_request in if in_success { success } else { failure } {
                    self.forced_path(op, op_request, seen, facts, effects, pool);
                }
            }
        }
    }

    /// An unobserved indeterminate write: optional puts and deletes of the keys it touches.
    fn pool(&mut self, op: &'a Operation, pool: &mut BTreeMap<&'a str, Vec<Optional>>) {
        let after = self.revision_before(op.invoke_ns);
        let optional = |put: Option<String>, guard: Option<Comparison>| Optional {
            op: op.id,
            after,
            put,
            guard,
        };
        match &op.input {
            Input::Put { key, value } => pool
                .entry(key)
                .or_default()
                .push(optional(Some(value.clone()), None)),
            Input::Delete { key } => pool.entry(key).or_default().push(optional(None, None)),
            Input::CompareAndPut {
                key,
                expected_mod_revision,
                value,
            } => {
                let guard = Comparison {
                    key: key.clone(),
                    target: CompareTarget::ModRevision(*expected_mod_revision),
                    relation: Relation::Equal,
                };
                pool.entry(key)
                    .or_default()
                    .push(optional(Some(value.clone()), Some(guard)));
            }
            Input::Request { request } => self.pool_request(op, request, pool),
            _ => {}
        }
    }

    fn pool_request(
        &self,
        op: &Operation,
        request: &'a Request,
        pool: &mut BTreeMap<&'a str, Vec<Optional>>,
    ) {
        let after = self.revision_before(op.invoke_ns);
        request.each(&mut |r| match r {
            Request::Put { key, value, .. } => pool.entry(key).or_default().push(Optional {
                op: op.id,
                after,
                put: Some(value.clone()),
                guard: None,
            }),
            Request::DeleteRange { range, .. } => {
                for key in self.keys_in(range) {
                    pool.entry(key).or_default().push(Optional {
                        op: op.id,
                        after,
                        put: None,
                        guard: None,
                    });
                }
            }
            _ => {}
        });
    }
}

/// Whether `compare` fails on the key as a range read saw it (a key it did not cover: unknown,
/// so not evidence of failure).
fn fails_on(compare: &Comparison, query: &RangeQuery, outcome: &RangeOutcome) -> bool {
    if !query.range.contains(&compare.key) || outcome.more || query.count_only {
        return false;
    }
    let kv = outcome
        .kvs
        .iter()
        .find(|(key, _)| *key == compare.key)
        .map(|(_, kv)| (kv.value.clone(), Some(kv.mod_revision)));
    holds(compare, &State(kv)) == Some(false)
}

/// Whether a compare holds on a state: `None` when the state's revision is unknown. An absent key
/// has `mod_revision` 0 and fails every value compare, as in etcd.
fn holds(compare: &Comparison, state: &State) -> Option<bool> {
    let ordering = match (&compare.target, &state.0) {
        (CompareTarget::Value(_), None) => return Some(false),
        (CompareTarget::Value(want), Some((value, _))) => value.as_str().cmp(want.as_str()),
        (CompareTarget::ModRevision(want), None) => 0.cmp(want),
        (CompareTarget::ModRevision(want), Some((_, revision))) => (*revision)?.cmp(want),
    };
    Some(match compare.relation {
        Relation::Equal => ordering.is_eq(),
        Relation::NotEqual => ordering.is_ne(),
        Relation::Less => ordering.is_lt(),
        Relation::Greater => ordering.is_gt(),
    })
}

/// Applies a fact to a state: the next state, or `None` if the fact cannot hold here.
fn apply(fact: &Fact, state: &State, revision: i64) -> Option<State> {
    match fact {
        Fact::Is(kv) => {
            let fits = match (kv, &state.0) {
                (None, None) => true,
                (Some(kv), Some((value, known))) => {
                    *value == kv.value && known.is_none_or(|r| r == kv.mod_revision)
                }
                _ => false,
            };
            fits.then(|| {
                State(
                    kv.as_ref()
                        .map(|kv| (kv.value.clone(), Some(kv.mod_revision))),
                )
            })
        }
        Fact::Compare(compare, expected) => holds(compare, state)
            .is_none_or(|h| h == *expected)
            .then(|| state.clone()),
        Fact::Put(value) => Some(State(Some((value.clone(), Some(revision))))),
        Fact::Delete => state.0.is_some().then_some(State(None)),
        Fact::DeleteIfPresent => Some(State(None)),
    }
}

/// The latest revision an optional write placed just before `event` may have.
fn ceiling(event: &Event) -> i64 {
    let (revision, stage, _, _) = event.position;
    // A write's facts see the state before it; a read's, the state at its revision.
    if stage == 0 {
        revision - 1
    } else {
        revision
    }
}

fn is_effect(fact: &Fact) -> bool {
    matches!(fact, Fact::Put(_) | Fact::Delete | Fact::DeleteIfPresent)
}

/// Applies `events` in order from `state`: the state after them, if they all can happen.
fn apply_all(events: &[Event], state: State) -> Option<State> {
    events.iter().try_fold(state, |state, event| {
        apply(&event.fact, &state, event.position.0)
    })
}

/// Replays one key's facts in revision order, placing optional writes from the pool where a
/// fact needs one. Reports the first fact nothing explains.
fn replay(
    key: &str,
    events: &[Event],
    mut pool: Vec<Optional>,
    occupied: &BTreeSet<i64>,
    violations: &mut Vec<Violation>,
) {
    // Before each event: the state, and the revision after which an optional write may go.
    let mut before: Vec<(State, i64)> = Vec::with_capacity(events.len());
    let mut state = State(None);
    let mut floor = 1;
    let mut made_by: Option<usize> = None;
    for (i, event) in events.iter().enumerate() {
        before.push((state.clone(), floor));
        let next = apply(&event.fact, &state, event.position.0).or_else(|| {
            // Place an optional write as late as it can go: just before this fact, or before
            // earlier facts back to the last write, if they all still hold after it.
            (0..=i)
                .rev()
                .take_while(|&j| j == i || !is_effect(&events[j].fact))
                .find_map(|j| {
                    let (state, floor) = &before[j];
                    let window = (*floor, ceiling(&events[j]));
                    let (placed, op) = place(&events[j..=i], state, window, &mut pool, occupied)?;
                    made_by = Some(op);
                    Some(placed)
                })
        });
        let Some(next) = next else {
            fail(
                violations,
                format!(
                    "key {key}: #{} needs {} at revision {}, but the history leaves the key {} there{} \
                     and no unacknowledged write can explain it",
                    event.op,
                    describe_fact(&event.fact),
                    ceiling(event),
                    state.describe(),
                    made_by.map_or(String::new(), |op| format!(" (last written by #{op})")),
                ),
                made_by.into_iter().chain([event.op]).collect(),
            );
            return;
        };
        if is_effect(&event.fact) {
            made_by = Some(event.op);
        }
        state = next;
        floor = floor.max(event.position.0);
    }
}

/// Places the least flexible optional write (the one invoked latest) under which all of
/// `events` hold, at a free revision in `window` (exclusive, inclusive); returns the state after
/// `events` and the write's operation.
fn place(
    events: &[Event],
    state: &State,
    (floor, ceiling): (i64, i64),
    pool: &mut Vec<Optional>,
    occupied: &BTreeSet<i64>,
) -> Option<(State, usize)> {
    let free = |after: i64| {
        let low = floor.max(after) + 1;
        low <= ceiling && occupied.range(low..=ceiling).count() < (ceiling - low + 1) as usize
    };
    let best = pool
        .iter()
        .enumerate()
        .filter(|(_, optional)| free(optional.after))
        .filter(|(_, optional)| {
            optional
                .guard
                .as_ref()
                .is_none_or(|guard| holds(guard, state) != Some(false))
        })
        .filter_map(|(i, optional)| {
            let written = State(optional.put.as_ref().map(|value| (value.clone(), None)));
            apply_all(events, written).map(|after| (i, optional.after, after))
        })
        .max_by_key(|&(_, after, _)| after)?;
    let optional = pool.remove(best.0);
    Some((best.2, optional.op))
}

fn describe_fact(fact: &Fact) -> String {
    match fact {
        Fact::Is(None) => "the key absent".to_string(),
        Fact::Is(Some(kv)) => format!("{}@{}", kv.value, kv.mod_revision),
        Fact::Compare(compare, holds) => format!(
            "compare {:?} {:?} to {}",
            compare.target,
            compare.relation,
            if *holds { "hold" } else { "fail" }
        ),
        Fact::Put(value) => format!("a put of {value}"),
        Fact::Delete => "the key present, for the delete that deleted it".to_string(),
        Fact::DeleteIfPresent => "a delete-range".to_string(),
    }
}

/// Calls `visit` on a response and every response nested in it.
fn each_response<'a>(response: &'a Response, visit: &mut dyn FnMut(&'a Response)) {
    visit(response);
    if let Response::Txn { responses, .. } = response {
        for response in responses {
            each_response(response, visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: usize, invoke_ns: u64, complete_ns: u64, input: Input, output: Output) -> Operation {
        Operation {
            id,
            client: id as u32,
            invoke_ns,
            complete_ns,
            input,
            output,
        }
    }

    fn put(key: &str, value: &str) -> Input {
        Input::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn get(key: &str) -> Input {
        Input::Get { key: key.into() }
    }

    fn kv(value: &str, mod_revision: i64) -> Versioned {
        Versioned {
            value: value.into(),
            mod_revision,
        }
    }

    fn seen(value: &str, mod_revision: i64, revision: i64) -> Output {
        Output::Get {
            kv: Some(kv(value, mod_revision)),
            revision,
        }
    }

    fn absent(revision: i64) -> Output {
        Output::Get { kv: None, revision }
    }

    fn lost() -> Output {
        Output::Indeterminate {
            error: "timeout".into(),
        }
    }

    fn request(request: Request) -> Input {
        Input::Request { request }
    }

    fn response(response: Response, revision: i64) -> Output {
        Output::Response { response, revision }
    }

    fn range(key: &str, range_end: Option<&str>, limit: i64) -> RangeQuery {
        RangeQuery {
            range: KeyRange {
                key: key.into(),
                range_end: range_end.map(str::to_string),
            },
            limit,
            revision: 0,
            serializable: false,
            count_only: false,
            descending: false,
        }
    }

    fn put_op(key: &str, value: &str) -> Request {
        Request::Put {
            key: key.into(),
            value: value.into(),
            prev_kv: false,
            ignore_lease: false,
        }
    }

    fn outcome(kvs: &[(&str, &str, i64)], count: i64, more: bool) -> RangeOutcome {
        RangeOutcome {
            kvs: kvs
                .iter()
                .map(|&(key, value, revision)| (key.to_string(), kv(value, revision)))
                .collect(),
            count,
            more,
        }
    }

    fn violations(history: &[Operation]) -> usize {
        check(history).len()
    }

    #[test]
    fn a_read_after_an_acknowledged_write_must_see_it() {
        let history = vec![
            op(0, 0, 10, put("k", "a"), Output::Put { revision: 2 }),
            op(1, 20, 30, get("k"), absent(2)),
        ];
        assert_eq!(violations(&history), 1);
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let history = vec![
            op(0, 0, 30, put("k", "a"), Output::Put { revision: 2 }),
            op(1, 5, 20, get("k"), absent(1)),
            op(2, 25, 40, get("k"), seen("a", 2, 2)),
        ];
        assert_eq!(violations(&history), 0);
    }

    #[test]
    fn a_read_served_before_a_write_it_followed_in_real_time_is_a_violation() {
        // The read began after the put returned, yet was served at the revision before it.
        let history = vec![
            op(0, 0, 10, put("k", "a"), Output::Put { revision: 2 }),
            op(1, 20, 30, get("other"), absent(1)),
        ];
        assert_eq!(violations(&history), 1);
    }

    #[test]
    fn an_indeterminate_write_may_appear_later_or_never() {
        let history = vec![
            op(0, 0, 10, put("k", "a"), lost()),
            op(1, 20, 30, get("k"), absent(1)),
            op(2, 40, 50, get("k"), seen("a", 2, 2)),
        ];
        assert_eq!(violations(&history), 0);
        let never = vec![
            op(0, 0, 10, put("k", "a"), lost()),
            op(1, 20, 30, get("k"), absent(1)),
        ];
        assert_eq!(violations(&never), 0);
    }

    #[test]
    fn an_indeterminate_write_cannot_be_seen_before_it_was_invoked() {
        let history = vec![
            op(0, 0, 10, put("k", "b"), Output::Put { revision: 3 }),
            op(1, 20, 30, put("k", "a"), lost()),
            op(2, 40, 50, get("k"), seen("a", 2, 3)),
        ];
        assert!(violations(&history) >= 1);
    }

    #[test]
    fn an_unobserved_indeterminate_delete_explains_an_absent_key_only_after_its_invocation() {
        let delete = Input::Delete { key: "k".into() };
        let history = vec![
            op(0, 0, 10, put("k", "a"), Output::Put { revision: 2 }),
            op(1, 20, 30, delete.clone(), lost()),
            op(2, 40, 50, get("k"), absent(3)),
        ];
        assert_eq!(violations(&history), 0);
        // The delete was invoked after the read returned: it cannot explain it.
        let late = vec![
            op(0, 0, 10, put("k", "a"), Output::Put { revision: 2 }),
            op(2, 20, 30, get("k"), absent(3)),
            op(1, 40, 50, delete, lost()),
        ];
        assert_eq!(violations(&late), 1);
    }

    #[test]
    fn an_optional_write_goes_before_every_fact_that_sees_its_effect() {
        // The failed compare holds before and after the lost delete; the read after it in the
        // same txn needs the delete: it goes before both.
        let cas = Input::CompareAndPut {
            key: "k".into(),
            expected_mod_revision: 1,
            value: "b".into(),
        };
        let history = vec![
            op(0, 0, 10, put("k", "a"), Output::Put { revision: 2 }),
            op(1, 20, 30, Input::Delete { key: "k".into() }, lost()),
            op(
                2,
                40,
                50,
                cas,
                Output::CompareAndPut {
                    succeeded: false,
                    current: None,
                    revision: 3,
                },
            ),
        ];
        assert_eq!(violations(&history), 0);
        // Revision 4 is another key's: the delete must precede the read at 3, which saw the key.
        let pinned = vec![
            op(0, 0, 10, put("k", "a"), Output::Put { revision: 2 }),
            op(1, 20, 30, Input::Delete { key: "k".into() }, lost()),
            op(2, 40, 50, get("k"), seen("a", 2, 3)),
            op(3, 40, 50, put("other", "x"), Output::Put { revision: 4 }),
            op(4, 60, 70, get("k"), absent(4)),
        ];
        assert_eq!(violations(&pinned), 1);
    }

    #[test]
    fn a_revision_going_backwards_on_a_key_is_a_violation() {
        let history = vec![
            op(0, 0, 10, put("k", "a"), Output::Put { revision: 5 }),
            op(1, 20, 30, put("k", "b"), Output::Put { revision: 4 }),
        ];
        assert_eq!(violations(&history), 1);
    }

    #[test]
    fn two_writes_at_one_revision_are_a_violation() {
        let history = vec![
            op(0, 0, 10, put("a", "1"), Output::Put { revision: 2 }),
            op(1, 0, 10, put("b", "2"), Output::Put { revision: 2 }),
        ];
        assert_eq!(violations(&history), 1);
    }

    #[test]
    fn a_multi_key_txn_is_atomic() {
        let txn = request(Request::Txn {
            compares: Vec::new(),
            success: vec![put_op("a", "1"), put_op("b", "2")],
            failure: Vec::new(),
        });
        let done = response(
            Response::Txn {
                succeeded: true,
                responses: vec![Response::Put { prev: None }, Response::Put { prev: None }],
            },
            2,
        );
        let read_both = |id, a: &[(&str, &str, i64)]| {
            op(
                id,
                5,
                20,
                request(Request::Range(range("a", Some("c"), 0))),
                response(Response::Range(outcome(a, a.len() as i64, false)), 2),
            )
        };
        // A read at the txn's revision sees both writes: fine.
        let history = vec![
            op(0, 0, 10, txn.clone(), done.clone()),
            read_both(1, &[("a", "1", 2), ("b", "2", 2)]),
        ];
        assert_eq!(violations(&history), 0);
        // One write without the other at the same revision: not atomic.
        let torn = vec![op(0, 0, 10, txn, done), read_both(1, &[("a", "1", 2)])];
        assert_eq!(violations(&torn), 1);
    }

    #[test]
    fn a_txn_read_sees_the_writes_before_it_in_the_same_txn() {
        let txn = request(Request::Txn {
            compares: Vec::new(),
            success: vec![put_op("a", "1"), Request::Range(range("a", None, 0))],
            failure: Vec::new(),
        });
        let answered = |kvs: &[(&str, &str, i64)]| {
            response(
                Response::Txn {
                    succeeded: true,
                    responses: vec![
                        Response::Put { prev: None },
                        Response::Range(outcome(kvs, kvs.len() as i64, false)),
                    ],
                },
                2,
            )
        };
        assert_eq!(
            violations(&[op(0, 0, 10, txn.clone(), answered(&[("a", "1", 2)]))]),
            0
        );
        assert_eq!(violations(&[op(0, 0, 10, txn, answered(&[]))]), 1);
    }

    #[test]
    fn a_failed_compare_must_fail_on_the_state() {
        let compare = |key: &str| Comparison {
            key: key.into(),
            target: CompareTarget::ModRevision(0),
            relation: Relation::Equal,
        };
        let txn = request(Request::Txn {
            compares: vec![compare("a"), compare("b")],
            success: vec![put_op("a", "1")],
            failure: vec![Request::Range(range("a", Some("c"), 0))],
        });
        // Both keys absent, so both compares hold: the failure branch cannot be.
        let history = vec![
            op(0, 0, 5, put("b", "x"), lost()),
            op(
                1,
                10,
                20,
                txn,
                response(
                    Response::Txn {
                        succeeded: false,
                        responses: vec![Response::Range(outcome(&[], 0, false))],
                    },
                    1,
                ),
            ),
        ];
        assert_eq!(violations(&history), 1);
    }

    #[test]
    fn a_limited_range_must_count_every_key() {
        let writes = vec![
            op(0, 0, 10, put("a", "1"), Output::Put { revision: 2 }),
            op(1, 20, 30, put("b", "2"), Output::Put { revision: 3 }),
        ];
        let limited = |count, more| {
            op(
                2,
                40,
                50,
                request(Request::Range(range("a", Some("c"), 1))),
                response(Response::Range(outcome(&[("a", "1", 2)], count, more)), 3),
            )
        };
        let mut good = writes.clone();
        good.push(limited(2, true));
        assert_eq!(violations(&good), 0);
        let mut wrong_count = writes.clone();
        wrong_count.push(limited(1, true));
        assert_eq!(violations(&wrong_count), 1);
        // Count right, but `more` says nothing is left: b must then be absent, and it is not.
        let mut no_more = writes;
        no_more.push(limited(2, false));
        assert_eq!(violations(&no_more), 1);
    }

    #[test]
    fn a_past_revision_read_sees_the_state_at_that_revision() {
        let at = |revision| {
            let mut query = range("a", None, 0);
            query.revision = revision;
            request(Request::Range(query))
        };
        let history = vec![
            op(0, 0, 10, put("a", "1"), Output::Put { revision: 2 }),
            op(1, 20, 30, put("a", "2"), Output::Put { revision: 3 }),
            op(
                2,
                40,
                50,
                at(2),
                response(Response::Range(outcome(&[("a", "1", 2)], 1, false)), 3),
            ),
        ];
        assert_eq!(violations(&history), 0);
        let mut stale = history.clone();
        stale[2].output = response(Response::Range(outcome(&[("a", "2", 3)], 1, false)), 3);
        assert_eq!(violations(&stale), 1);
    }

    #[test]
    fn a_serializable_read_may_be_stale_but_must_match_its_revision() {
        let serializable = || {
            let mut query = range("a", None, 0);
            query.serializable = true;
            request(Request::Range(query))
        };
        let history = vec![
            op(0, 0, 10, put("a", "1"), Output::Put { revision: 2 }),
            op(1, 20, 30, put("a", "2"), Output::Put { revision: 3 }),
            op(
                2,
                40,
                50,
                serializable(),
                response(Response::Range(outcome(&[("a", "1", 2)], 1, false)), 2),
            ),
        ];
        assert_eq!(violations(&history), 0);
        // Stale is allowed; a state that never was at the header revision is not.
        let mut wrong = history.clone();
        wrong[2].output = response(Response::Range(outcome(&[("a", "1", 2)], 1, false)), 3);
        assert_eq!(violations(&wrong), 1);
    }

    #[test]
    fn prev_kv_is_the_state_before_the_put() {
        let with_prev = |prev: Option<Versioned>| {
            op(
                1,
                20,
                30,
                request(Request::Put {
                    key: "a".into(),
                    value: "2".into(),
                    prev_kv: true,
                    ignore_lease: false,
                }),
                response(Response::Put { prev }, 3),
            )
        };
        let first = op(0, 0, 10, put("a", "1"), Output::Put { revision: 2 });
        assert_eq!(violations(&[first.clone(), with_prev(Some(kv("1", 2)))]), 0);
        assert_eq!(violations(&[first, with_prev(None)]), 1);
    }
}
