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
}

impl Input {
    pub fn key(&self) -> &str {
        match self {
            Input::Get { key }
            | Input::Put { key, .. }
            | Input::Delete { key }
            | Input::CompareAndPut { key, .. } => key,
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Input::Get { .. })
    }
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

    /// The response header revision, for operations that got a response.
    pub fn header_revision(&self) -> Option<i64> {
        match &self.output {
            Output::Get { revision, .. }
            | Output::Put { revision }
            | Output::Delete { revision, .. }
            | Output::CompareAndPut { revision, .. } => Some(*revision),
            Output::Failed { .. } | Output::Indeterminate { .. } => None,
        }
    }

    /// The revision an acknowledged write created (a put, or a txn that took its success branch).
    pub fn acknowledged_put(&self) -> Option<(&str, &str, i64)> {
        match (&self.input, &self.output) {
            (Input::Put { key, value }, Output::Put { revision })
            | (
                Input::CompareAndPut { key, value, .. },
                Output::CompareAndPut {
                    succeeded: true,
                    revision,
                    ..
                },
            ) => Some((key, value, *revision)),
            _ => None,
        }
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
    /// The created response's header revision, once it came.
    pub created_revision: Option<i64>,
    pub responses: Vec<WatchResponseRecord>,
    /// Set when the server canceled the watch because `start_revision` was compacted.
    pub compacted: Option<i64>,
    /// How the stream ended (error text), if it ended before the run did.
    pub ended: Option<String>,
}

/// One response carrying events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponseRecord {
    pub received_ns: u64,
    pub header_revision: i64,
    pub events: Vec<WatchEvent>,
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
