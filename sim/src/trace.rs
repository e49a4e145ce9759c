//! The run's timeline: node starts, stops, crashes and restarts, faults, client operations and
//! leader changes, as JSON lines stamped with simulated time. Only deterministic sources write to
//! it (the supervisor, node init, clients — all inside madsim), so the same seed gives the same
//! trace, and its hash is the run's fingerprint for `replay` and `--check-determinism`.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One timeline event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Simulated milliseconds since the run started.
    pub t_ms: u64,
    /// `node`, `fault`, `heal`, `client`, `leader`, `phase`, `check`.
    pub kind: String,
    /// The node (or client) it is about, if any.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub subject: String,
    pub what: String,
}

/// A shared, append-only trace. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    events: Arc<Mutex<Vec<Event>>>,
}

/// Simulated nanoseconds since the runtime started.
pub fn now_ns() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_nanos() as u64
}

impl Trace {
    pub fn record(&self, kind: &str, subject: impl Into<String>, what: impl Into<String>) {
        let event = Event {
            t_ms: now_ns() / 1_000_000,
            kind: kind.to_string(),
            subject: subject.into(),
            what: what.into(),
        };
        self.events.lock().unwrap().push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

/// Events as JSON lines.
pub fn to_json_lines(events: &[Event]) -> String {
    events
        .iter()
        .map(|event| serde_json::to_string(event).expect("events serialize") + "\n")
        .collect()
}

/// A readable line per event.
pub fn to_timeline(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{:>7}.{:03}s  {:<7} {:<10} {}\n",
                e.t_ms / 1000,
                e.t_ms % 1000,
                e.kind,
                e.subject,
                e.what
            )
        })
        .collect()
}

/// FNV-1a (64 bit) over the given texts: stable across platforms and Rust versions, unlike
/// `std`'s hasher.
pub fn fingerprint<'a>(texts: impl IntoIterator<Item = &'a str>) -> u64 {
    texts
        .into_iter()
        .flat_map(str::bytes)
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}
