//! etcd's watch guarantees, against the kv history: per watch session (one logical subscription,
//! across resumes after errors)
//! - ordered: revisions never decrease within a response and strictly increase across responses;
//! - unique: no (revision, key) twice;
//! - atomic: all events of one revision come in one response;
//! - reliable: no gaps — every event known to exist (an acknowledged write to the watched keys, or
//!   an event any watcher received) between the session's start and the last revision it saw was
//!   delivered (a compaction cancel ends the session, so it needs no events past the cancel; a
//!   delete at exactly a watch's start revision may be gone with a compaction there, as in etcd);
//! - events match the writes: one event per (revision, key) across all watchers, a put's value is
//!   a value some client wrote to that key, at the revision its acknowledgement reported;
//! - `prev_kv` is the key's state just before the event, as far as the history shows it;
//! - filters and range: no event of a filtered type or outside the watch's range, and none owed;
//! - progress: after a progress response at revision R, no event at or below R comes (R says
//!   they were all sent), and every event up to R is owed.

use std::collections::{BTreeMap, BTreeSet};

use super::Violation;
use crate::history::{History, WatchEvent, WatchRecord};

const NAME: &str = "watch_guarantees";

/// What is known to have happened to a key at a revision: `Some(value)` a put, `None` a delete.
type Known = BTreeMap<(String, i64), Option<String>>;

/// Whether some watch may watch `key` (the widest range a watcher draws).
fn watchable(key: &str) -> bool {
    (crate::watchers::WATCH_KEY..crate::watchers::WITH_LEASE_KEYS).contains(&key)
}

pub fn check(history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut fail = |message: String, operations: Vec<usize>| {
        violations.push(Violation::correctness(NAME, message, operations))
    };
    // Acknowledged writes to the watched keys, and every value any client tried to write.
    let mut known: Known = BTreeMap::new();
    let mut acknowledged_by: BTreeMap<(String, i64), usize> = BTreeMap::new();
    let mut written: BTreeMap<String, (String, Option<i64>, usize)> = BTreeMap::new();
    for op in &history.operations {
        for (key, value) in op.input.attempted_puts() {
            if watchable(key) {
                let revision = op
                    .acknowledged_puts()
                    .find(|&(k, v, _)| (k, v) == (key, value))
                    .map(|(_, _, revision)| revision);
                written.insert(value.to_string(), (key.to_string(), revision, op.id));
            }
        }
        for (key, value, revision) in op.acknowledged_writes() {
            if watchable(key) {
                known.insert((key.to_string(), revision), value.map(str::to_string));
                acknowledged_by.insert((key.to_string(), revision), op.id);
            }
        }
    }
    for lease in &history.leases.leases {
        for (key, value, _) in &lease.puts {
            written.insert(value.clone(), (key.clone(), None, usize::MAX));
        }
    }
    // Every event any watcher received must agree with the writes and with the other watchers.
    for record in &history.watches {
        for response in &record.responses {
            for event in &response.events {
                let id = (event.key.clone(), event.revision);
                let what = (!event.delete).then(|| event.value.clone());
                let ops = acknowledged_by.get(&id).copied().into_iter().collect();
                if !record.covers(&event.key, event.delete) {
                    fail(
                        format!(
                            "{}: event outside the watched range (up to {}) or of a filtered \
                             type (noput {}, nodelete {})",
                            describe(record, event),
                            record.range_end,
                            record.no_put,
                            record.no_delete
                        ),
                        ops,
                    );
                    continue;
                }
                match known.get(&id) {
                    Some(expected) if *expected != what => fail(
                        format!(
                            "{}: the history has {} at this revision",
                            describe(record, event),
                            expected
                                .as_ref()
                                .map_or("a delete".to_string(), |v| format!("put {v}"))
                        ),
                        ops,
                    ),
                    Some(_) => {}
                    None => {
                        known.insert(id, what);
                    }
                }
                if !event.delete {
                    match written.get(&event.value) {
                        // The lease client records a put once it is answered: one cut short
                        // when the client stopped is in no record, yet may have happened.
                        None if event.key.starts_with(crate::leases::LEASE_PREFIX) => {}
                        None => fail(
                            format!("{}: no client wrote this value", describe(record, event)),
                            Vec::new(),
                        ),
                        Some((key, revision, op)) => {
                            if *key != event.key || revision.is_some_and(|r| r != event.revision) {
                                fail(
                                    format!(
                                        "{}: the value was written to {key} at revision {revision:?}",
                                        describe(record, event)
                                    ),
                                    // Lease puts are no history operations.
                                    [*op].into_iter().filter(|&op| op != usize::MAX).collect(),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    // One put per value: unique values cannot appear at two revisions.
    let mut revision_of_value: BTreeMap<&str, i64> = BTreeMap::new();
    for ((_, revision), value) in &known {
        if let Some(value) = value {
            if let Some(other) = revision_of_value.insert(value, *revision) {
                fail(
                    format!("value {value} appears at revisions {other} and {revision}"),
                    Vec::new(),
                );
            }
        }
    }
    // Per session: order, uniqueness, atomicity, no gaps, prev_kv.
    let mut sessions: BTreeMap<(u32, u32), Vec<&WatchRecord>> = BTreeMap::new();
    for record in &history.watches {
        sessions
            .entry((record.watcher, record.session))
            .or_default()
            .push(record);
    }
    for ((watcher, session), records) in sessions {
        let name = format!("watcher{watcher} session {session}");
        let from = records.iter().find_map(|r| match r.start_revision {
            0 => r.created_revision.map(|c| c + 1),
            start => Some(start),
        });
        let mut last: Option<i64> = None;
        // The highest revision a progress response said everything up to was sent.
        let mut progress: Option<i64> = None;
        let mut seen: BTreeSet<(String, i64)> = BTreeSet::new();
        for record in &records {
            for response in &record.responses {
                if response.progress {
                    progress = progress.max(Some(response.header_revision));
                    continue;
                }
                let first = response.events.first().map_or(0, |e| e.revision);
                if let Some(progress) = progress.filter(|&progress| first <= progress) {
                    fail(
                        format!(
                            "{name}: revision {first} after a progress response at revision \
                             {progress} (progress ahead of the events sent)"
                        ),
                        Vec::new(),
                    );
                }
                if let Some(last) = last {
                    if first == last {
                        fail(
                            format!(
                                "{name}: revision {first} split across two responses (not atomic)"
                            ),
                            Vec::new(),
                        );
                    } else if first < last {
                        fail(
                            format!("{name}: revision {first} after revision {last} (not ordered)"),
                            Vec::new(),
                        );
                    }
                }
                let mut previous = first;
                for event in &response.events {
                    if event.revision < previous {
                        fail(
                            format!("{name}: revision {} after {previous} in one response (not ordered)", event.revision),
                            Vec::new(),
                        );
                    }
                    previous = event.revision;
                    if !seen.insert((event.key.clone(), event.revision)) {
                        fail(
                            format!(
                                "{name}: {} at revision {} delivered twice (not unique)",
                                event.key, event.revision
                            ),
                            Vec::new(),
                        );
                    }
                    if record.prev_kv {
                        check_prev_kv(&known, record, event, &mut fail);
                    }
                }
                last = Some(last.map_or(previous, |last| last.max(previous)));
            }
        }
        let (Some(from), Some(last)) = (from, last.max(progress)) else {
            continue;
        };
        // A compaction at revision R drops a delete's tombstone at R (etcd keeps only live keys),
        // so a watch starting at R cannot be sent it: excused at every start in the session.
        let starts: BTreeSet<i64> = records
            .iter()
            .filter_map(|r| match r.start_revision {
                0 => r.created_revision.map(|c| c + 1),
                start => Some(start),
            })
            .collect();
        for ((key, revision), what) in &known {
            if !records[0].covers(key, what.is_none()) {
                continue;
            }
            let excused = what.is_none() && starts.contains(revision);
            if (from..=last).contains(revision)
                && !excused
                && !seen.contains(&(key.clone(), *revision))
            {
                let ops = acknowledged_by
                    .get(&(key.clone(), *revision))
                    .copied()
                    .into_iter()
                    .collect();
                fail(
                    format!(
                        "{name}: the event of {key} at revision {revision} is missing (watched from \
                         revision {from}, saw up to {last}; not reliable)"
                    ),
                    ops,
                );
            }
        }
    }
    violations
}

fn check_prev_kv(
    known: &Known,
    record: &WatchRecord,
    event: &WatchEvent,
    fail: &mut impl FnMut(String, Vec<usize>),
) {
    let before = known
        .range((event.key.clone(), i64::MIN)..(event.key.clone(), event.revision))
        .next_back()
        .map(|((_, revision), what)| (*revision, what.clone()));
    match (&event.prev, before) {
        (Some(prev), _) if prev.mod_revision >= event.revision => fail(
            format!(
                "{}: prev_kv has mod_revision {}",
                describe(record, event),
                prev.mod_revision
            ),
            Vec::new(),
        ),
        (Some(prev), _)
            if known
                .get(&(event.key.clone(), prev.mod_revision))
                .is_some_and(|what| what.as_deref() != Some(prev.value.as_str())) =>
        {
            fail(
                format!(
                    "{}: prev_kv {}@{} disagrees with the history at that revision",
                    describe(record, event),
                    prev.value,
                    prev.mod_revision
                ),
                Vec::new(),
            )
        }
        (Some(prev), Some((revision, _))) if prev.mod_revision < revision => fail(
            format!(
                "{}: prev_kv {}@{} is older than the key's write at revision {revision}",
                describe(record, event),
                prev.value,
                prev.mod_revision
            ),
            Vec::new(),
        ),
        // A deleted key existed, so a delete always has a prev_kv. (A put's missing prev_kv
        // could follow a delete the history does not know about.)
        (None, _) if event.delete => fail(
            format!("{}: a delete without prev_kv", describe(record, event)),
            Vec::new(),
        ),
        _ => {}
    }
}

fn describe(record: &WatchRecord, event: &WatchEvent) -> String {
    let what = if event.delete {
        format!("delete {}", event.key)
    } else {
        format!("put {}={}", event.key, event.value)
    };
    format!(
        "watcher{} session {}: event {what} at revision {}",
        record.watcher, record.session, event.revision
    )
}
