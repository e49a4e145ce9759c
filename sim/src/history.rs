//! The operation history the workload records: what each client asked, when (simulated time), and
//! what it learned. Checkers work on this alone, so a failure report's `history.json` can be
//! re-checked offline (`detcd-sim check --report DIR`).

use serde::{Deserialize, Serialize};

/// A key and value as the workload writes them: short, readable strings.
pub type Key = String;
pub type Value = String;

/// A key's state as a read reports it: its value and `mod_revision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    pub value: Value,
    pub mod_revision: i64,
}

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Input {
    Get {
        key: Key,
    },
    Put {
        key: Key,
        value: Value,
    },
    Delete {
        key: Key,
    },
    /// A read-modify-write txn: if `mod_revision(key) == expected_mod_revision` then put `value`,
    /// else get `key`.
    CompareAndPut {
        key: Key,
        expected_mod_revision: i64,
        value: Value,
    },
    /// Any KV request with its options (the `breadth` workload): ranges with limits, past
    /// revisions and serializable reads, puts with `prev_kv`, delete-ranges, multi-op and nested
    /// txns.
    Request {
        request: Request,
    },
    /// Compact the history up to `revision` (through whichever member the client talks to).
    Compact {
        revision: i64,
    },
}

impl Input {
    /// The keys the request names (range starts included), for the reads after heal.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Input::Get { key }
            | Input::Put { key, .. }
            | Input::Delete { key }
            | Input::CompareAndPut { key, .. } => vec![key],
            Input::Request { request } => request.keys(),
            Input::Compact { .. } => Vec::new(),
        }
    }

    /// Whether the request may change the store: a client cannot know the outcome of one that
    /// times out.
    pub fn is_write(&self) -> bool {
        match self {
            Input::Get { .. } => false,
            Input::Request { request } => request.may_write(),
            _ => true,
        }
    }

    /// Every put the request may make, whether or not it did: (key, value).
    pub fn attempted_puts(&self) -> Vec<(&str, &str)> {
        match self {
            Input::Put { key, value } | Input::CompareAndPut { key, value, .. } => {
                vec![(key, value)]
            }
            Input::Request { request } => {
                let mut puts = Vec::new();
                request.each(&mut |r| {
                    if let Request::Put { key, value, .. } = r {
                        puts.push((key.as_str(), value.as_str()));
                    }
                });
                puts
            }
            _ => Vec::new(),
        }
    }
}

/// A key range as etcd names it: `[key, range_end)`, or the single `key` when `range_end` is
/// `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub key: Key,
    pub range_end: Option<Key>,
}

impl KeyRange {
    pub fn contains(&self, key: &str) -> bool {
        match &self.range_end {
            None => key == self.key,
            Some(end) => self.key.as_str() <= key && key < end.as_str(),
        }
    }
}

/// A range read with its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeQuery {
    pub range: KeyRange,
    /// At most this many keys (0: no limit).
    pub limit: i64,
    /// Read the store as of this revision (0: the latest).
    pub revision: i64,
    /// Served from the member's local state, without a ReadIndex round (may be stale).
    pub serializable: bool,
    pub count_only: bool,
    /// Sort by key, descending (else key order).
    pub descending: bool,
}

/// A compare of a txn: `target(key) relation operand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    pub key: Key,
    pub target: CompareTarget,
    pub relation: Relation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareTarget {
    /// The key's `mod_revision` (0 when absent).
    ModRevision(i64),
    /// The key's value (an absent key fails every value compare, as in etcd).
    Value(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Equal,
    NotEqual,
    Less,
    Greater,
}

/// A KV request, alone or as one op of a txn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    Range(RangeQuery),
    Put {
        key: Key,
        value: Value,
        prev_kv: bool,
        /// Keep the key's lease (the key must exist).
        ignore_lease: bool,
    },
    DeleteRange {
        range: KeyRange,
        prev_kv: bool,
    },
    /// Every compare holds ⇒ the success ops, else the failure ops, as one revision. etcd 3.4
    /// evaluates every compare on the path, nested txns' too, before the txn writes anything.
    Txn {
        compares: Vec<Comparison>,
        success: Vec<Request>,
        failure: Vec<Request>,
    },
}

impl Request {
    /// Calls `visit` on this request and every op nested in it, in order.
    pub fn each<'a>(&'a self, visit: &mut dyn FnMut(&'a Request)) {
        visit(self);
        if let Request::Txn {
            success, failure, ..
        } = self
        {
            for op in success.iter().chain(failure) {
                op.each(visit);
            }
        }
    }

    /// Pairs this request and each op on the path the server took with its response.
    pub fn zip<'a>(
        &'a self,
        response: &'a Response,
        visit: &mut dyn FnMut(&'a Request, &'a Response),
    ) {
        visit(self, response);
        if let (
            Request::Txn {
                success, failure, ..
            },
            Response::Txn {
                succeeded,
                responses,
            },
        ) = (self, response)
        {
            let ops = if *succeeded { success } else { failure };
            for (op, response) in ops.iter().zip(responses) {
                op.zip(response, visit);
            }
        }
    }

    /// Whether the request, answered with `response`, made a new revision: etcd makes one iff
    /// something changed (a put, or a delete that deleted a key).
    pub fn wrote(&self, response: &Response) -> bool {
        let mut wrote = false;
        self.zip(response, &mut |_, response| {
            wrote |= match response {
                Response::Put { .. } => true,
                Response::DeleteRange { deleted, .. } => *deleted > 0,
                _ => false,
            }
        });
        wrote
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = Vec::new();
        self.each(&mut |r| match r {
            Request::Range(query) => keys.push(query.range.key.as_str()),
            Request::Put { key, .. } => keys.push(key),
            Request::DeleteRange { range, .. } => keys.push(&range.key),
            Request::Txn { compares, .. } => keys.extend(compares.iter().map(|c| c.key.as_str())),
        });
        keys
    }

    fn may_write(&self) -> bool {
        let mut writes = false;
        self.each(&mut |r| {
            writes |= matches!(r, Request::Put { .. } | Request::DeleteRange { .. })
        });
        writes
    }
}

/// What a range read returned: the keys in the order the server sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeOutcome {
    pub kvs: Vec<(Key, Versioned)>,
    pub count: i64,
    pub more: bool,
}

/// The response to a [`Request`], op for op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Range(RangeOutcome),
    Put {
        prev: Option<Versioned>,
    },
    DeleteRange {
        deleted: i64,
        prev: Vec<(Key, Versioned)>,
    },
    Txn {
        succeeded: bool,
        responses: Vec<Response>,
    },
}

/// What the client learned. `revision` is the response header's revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Output {
    Get {
        kv: Option<Versioned>,
        revision: i64,
    },
    Put {
        revision: i64,
    },
    Delete {
        deleted: i64,
        revision: i64,
    },
    CompareAndPut {
        succeeded: bool,
        /// The failure branch's read of the key.
        current: Option<Versioned>,
        revision: i64,
    },
    /// The response to an [`Input::Request`]; `revision` is its header's.
    Response {
        response: Response,
        revision: i64,
    },
    /// A compaction the server acknowledged.
    Compacted {
        revision: i64,
    },
    /// The request definitely had no effect (a read that failed, a rejected write).
    Failed {
        error: String,
    },
    /// Timeout, unavailable, connection lost: the write may or may not have happened, and an
    /// etcd client cannot know which. Not a failure.
    Indeterminate {
        error: String,
    },
}

/// One client operation. Times are simulated nanoseconds since the simulation started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: usize,
    pub client: u32,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub input: Input,
    pub output: Output,
}

impl Operation {
    pub fn is_indeterminate(&self) -> bool {
        matches!(self.output, Output::Indeterminate { .. })
    }

    /// A read served from a member's local state: it may be stale, so real time does not bind
    /// it to the operations before it.
    pub fn is_serializable(&self) -> bool {
        matches!(
            &self.input,
            Input::Request {
                request: Request::Range(RangeQuery {
                    serializable: true,
                    ..
                })
            }
        )
    }

    /// The response header revision, for operations that got a response.
    pub fn header_revision(&self) -> Option<i64> {
        match &self.output {
            Output::Get { revision, .. }
            | Output::Put { revision }
            | Output::Delete { revision, .. }
            | Output::CompareAndPut { revision, .. }
            | Output::Response { revision, .. } => Some(*revision),
            Output::Compacted { .. } | Output::Failed { .. } | Output::Indeterminate { .. } => None,
        }
    }

    /// The writes the server acknowledged: (key, `Some(value)` for a put or `None` for a delete,
    /// revision). A delete-range's keys are known from its `prev_kv`s, or when it names one key.
    pub fn acknowledged_writes(&self) -> Vec<(&str, Option<&str>, i64)> {
        match (&self.input, &self.output) {
            (Input::Put { key, value }, Output::Put { revision })
            | (
                Input::CompareAndPut { key, value, .. },
                Output::CompareAndPut {
                    succeeded: true,
                    revision,
                    ..
                },
            ) => vec![(key, Some(value), *revision)],
            (
                Input::Delete { key },
                Output::Delete {
                    deleted: 1..,
                    revision,
                },
            ) => vec![(key, None, *revision)],
            (Input::Request { request }, Output::Response { response, revision }) => {
                let mut writes = Vec::new();
                request.zip(
                    response,
                    &mut |request, response| match (request, response) {
                        (Request::Put { key, value, .. }, Response::Put { .. }) => {
                            writes.push((key.as_str(), Some(value.as_str()), *revision));
                        }
                        (
                            Request::DeleteRange { range, .. },
                            Response::DeleteRange { deleted, prev },
                        ) => {
                            if !prev.is_empty() {
                                writes.extend(
                                    prev.iter().map(|(key, _)| (key.as_str(), None, *revision)),
                                );
                            } else if range.range_end.is_none() && *deleted > 0 {
                                writes.push((range.key.as_str(), None, *revision));
                            }
                        }
                        _ => {}
                    },
                );
                writes
            }
            _ => Vec::new(),
        }
    }

    /// The puts the server acknowledged: (key, value, revision).
    pub fn acknowledged_puts(&self) -> impl Iterator<Item = (&str, &str, i64)> {
        self.acknowledged_writes()
            .into_iter()
            .filter_map(|(key, value, revision)| Some((key, value?, revision)))
    }
}

/// A read of one key at one revision, made after the run to look for acknowledged writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRead {
    pub key: Key,
    pub revision: i64,
    /// `Err` carries the error text (e.g. the revision was compacted).
    pub result: Result<Option<Versioned>, String>,
}

/// Everything a run hands to the checkers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub operations: Vec<Operation>,
    /// Reads at the revision of every acknowledged put, after heal.
    pub revision_reads: Vec<RevisionRead>,
    /// `HashKV` of each replica at one revision, after heal: (member name, revision, hash).
    pub replica_hashes: Vec<(String, i64, u32)>,
    /// Members that started on a WAL with a flipped bit in a complete record.
    pub undetected_corruption: Vec<String>,
    /// Why the liveness phase failed, if it did.
    pub liveness_failure: Option<String>,
    /// Every watch stream the watchers opened, with what it received (`watch` workload).
    #[serde(default)]
    pub watches: Vec<WatchRecord>,
    /// The lease client's leases and the reads of lease keys after heal (`lease` workload).
    #[serde(default)]
    pub leases: LeaseHistory,
    /// Each replica's leases and member list after heal, at one applied index.
    #[serde(default)]
    pub replica_states: Vec<ReplicaState>,
    /// `HashKV` answers taken while the run went on (`state_hashes`).
    #[serde(default)]
    pub state_hashes: Vec<StateHash>,
}

/// The state beside the key-value store that a replica holds, read after heal while its raft
/// applied index stood still, so that replicas at one index must hold the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub member: String,
    pub applied_index: u64,
    /// `Maintenance.Hash`, which covers what `HashKV` does not: the deletes the last compaction
    /// dropped (a watch at the compaction revision still needs them), leases and their
    /// checkpointed TTLs, auth.
    #[serde(default)]
    pub state_hash: u32,
    /// Lease ids, in id order.
    pub leases: Vec<i64>,
    /// The member list, one `id name peer-urls client-urls [learner]` line per member, in id
    /// order.
    pub members: Vec<String>,
}

/// One member's `HashKV` at one revision, taken during the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHash {
    /// Simulated ns when the answer came.
    pub taken_ns: u64,
    pub member: String,
    pub revision: i64,
    /// The member's compaction revision (-1: never compacted); the hash covers only what it kept.
    pub compact_revision: i64,
    pub hash: u32,
}

/// One watch stream: a create request and the responses it got until it ended. A watcher's
/// *session* is one logical subscription: after an error it reconnects and resumes from the last
/// revision it saw + 1 (a new record, same session); a compaction cancel or a voluntary restart
/// begins a new session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRecord {
    pub watcher: u32,
    pub session: u32,
    /// Simulated ns when the create request was sent.
    pub opened_ns: u64,
    /// The requested `start_revision` (0: from now on).
    pub start_revision: i64,
    pub prev_kv: bool,
    /// The end of the watched range, which begins at `k` (`l`: the kv keys; `m`: `lease/` keys
    /// too).
    #[serde(default = "kv_range_end")]
    pub range_end: String,
    /// The event types the watch filters out.
    #[serde(default)]
    pub no_put: bool,
    #[serde(default)]
    pub no_delete: bool,
    /// Whether the watch asked for progress notifications.
    #[serde(default)]
    pub progress_notify: bool,
    /// The created response's header revision, once it came.
    pub created_revision: Option<i64>,
    pub responses: Vec<WatchResponseRecord>,
    /// Set when the server canceled the watch because `start_revision` was compacted.
    pub compacted: Option<i64>,
    /// How the stream ended (error text), if it ended before the run did.
    pub ended: Option<String>,
}

fn kv_range_end() -> String {
    "l".to_string()
}

impl WatchRecord {
    /// Whether the watch covers `key` and passes its event type through its filters.
    pub fn covers(&self, key: &str, delete: bool) -> bool {
        let filtered = if delete { self.no_delete } else { self.no_put };
        key >= "k" && key < self.range_end.as_str() && !filtered
    }
}

/// One response carrying events, or a progress response (no events: every event at or below
/// `header_revision` was sent before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponseRecord {
    pub received_ns: u64,
    pub header_revision: i64,
    pub events: Vec<WatchEvent>,
    /// A progress notification or the answer to a progress request.
    #[serde(default)]
    pub progress: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub delete: bool,
    pub key: Key,
    /// Empty for deletes.
    pub value: Value,
    /// The event's revision (`kv.mod_revision`).
    pub revision: i64,
    /// `prev_kv`, when the watch asked for it and the server sent one.
    pub prev: Option<Versioned>,
}

/// What the lease client did and what was left of its keys after heal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHistory {
    pub leases: Vec<LeaseRecord>,
    /// Simulated ns of the linearizable read of every `lease/` key after heal, if it was made.
    pub read_ns: Option<u64>,
    /// What that read returned: (key, value, lease id).
    pub live_keys: Vec<(Key, Value, i64)>,
    /// A lease with no keep-alive since this time (simulated ns) must be gone by the read: the
    /// after-heal write that proved a leader, or the lease's last acknowledged operation.
    pub heal_ns: u64,
    /// The election timeout a new leader extends leases by.
    pub election_timeout_ms: u64,
    /// When a member last reported a new leader before the read (simulated ns): the new leader
    /// restarted every lease then, so none needs to be gone sooner than a TTL after it.
    #[serde(default)]
    pub leader_change_ns: u64,
}

/// One lease the lease client granted (or tried to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub id: i64,
    pub requested_ttl_s: i64,
    /// The TTL the grant response gave (`None`: the grant's outcome is unknown).
    pub granted_ttl_s: Option<i64>,
    pub grant_invoke_ns: u64,
    pub grant_complete_ns: u64,
    /// Puts with this lease: (key, value, acknowledged).
    pub puts: Vec<(Key, Value, bool)>,
    /// Keep-alives that got an answer: (invoke ns, complete ns, TTL; 0 = not found).
    pub keep_alives: Vec<(u64, u64, i64)>,
    /// A revoke: (invoke ns, complete ns, acknowledged); recorded when first sent, with complete
    /// ns = invoke ns and not acknowledged until it is answered.
    pub revoke: Option<(u64, u64, bool)>,
    /// TimeToLive polls that got an answer: (invoke ns, complete ns, remaining TTL, granted TTL;
    /// granted 0 = not found).
    #[serde(default)]
    pub time_to_lives: Vec<(u64, u64, i64, i64)>,
}
