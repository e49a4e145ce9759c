//! Durability of acknowledged writes: a write the server acknowledged survives every crash and
//! restart (etcd's durability guarantee: "an acknowledged write is persisted"; Raft §5.3/§5.4 —
//! an entry is acknowledged only once committed, and committed entries are never lost).
//!
//! Two looks, both after heal: (1) reading each acknowledged put's key *at the put's revision*
//! must return that put's value with that `mod_revision`, unless the revision was compacted;
//! (2) each key's final value must come from some write in the history, and its `mod_revision`
//! cannot be older than the newest acknowledged write to the key.

use std::collections::BTreeMap;

use super::Violation;
use crate::history::{History, Output};

/// Client id of the reads the simulator makes after heal.
pub const CHECKER_CLIENT: u32 = u32::MAX;

pub fn check(history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut acknowledged: BTreeMap<(&str, i64), (&str, usize)> = BTreeMap::new();
    for op in &history.operations {
        for (key, value, revision) in op.acknowledged_puts() {
            acknowledged.insert((key, revision), (value, op.id));
        }
    }
    for read in &history.revision_reads {
        let Some(&(value, id)) = acknowledged.get(&(read.key.as_str(), read.revision)) else {
            continue;
        };
        match &read.result {
            Ok(Some(kv)) if kv.value == value && kv.mod_revision == read.revision => {}
            Ok(found) => violations.push(Violation::correctness(
                "acknowledged_writes",
                format!(
                    "put {}={value} was acknowledged at revision {}, but reading {} at that revision returns {found:?}",
                    read.key, read.revision, read.key
                ),
                vec![id],
            )),
            // Compacted away, or unreadable: no evidence either way.
            Err(_) => {}
        }
    }
    violations.extend(check_final_values(history));
    violations
}

/// The final read of each key (the checker client's last get) against the writes to it.
fn check_final_values(history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    let final_reads = history
        .operations
        .iter()
        .filter(|op| op.client == CHECKER_CLIENT);
    for read in final_reads {
        let Output::Get { kv: Some(kv), .. } = &read.output else {
            continue;
        };
        let Some(&key) = read.input.keys().first() else {
            continue;
        };
        let mut newest_acknowledged: Option<(i64, usize)> = None;
        let mut written_by = None;
        for op in history
            .operations
            .iter()
            .filter(|op| op.client != CHECKER_CLIENT)
        {
            if op
                .input
                .attempted_puts()
                .contains(&(key, kv.value.as_str()))
            {
                written_by = Some(op.id);
            }
            let newest_here = op
                .acknowledged_writes()
                .into_iter()
                .filter(|(written, _, _)| *written == key)
                .map(|(_, _, revision)| revision)
                .max();
            if let Some(revision) = newest_here {
                if newest_acknowledged.is_none_or(|(newest, _)| revision > newest) {
                    newest_acknowledged = Some((revision, op.id));
                }
            }
        }
        if written_by.is_none() {
            violations.push(Violation::correctness(
                "acknowledged_writes",
                format!("key {key} ends as {:?}, which no client wrote", kv.value),
                vec![read.id],
            ));
        }
        if let Some((newest, id)) = newest_acknowledged {
            if kv.mod_revision < newest {
                violations.push(Violation::correctness(
                    "acknowledged_writes",
                    format!(
                        "key {key} ends at mod_revision {}, older than the write acknowledged at revision {newest}: \
                         an acknowledged write was lost",
                        kv.mod_revision
                    ),
                    vec![id, read.id],
                ));
            }
        }
    }
    violations
}
