//! Linearizability of the KV history (Herlihy & Wing 1990; etcd's API guarantee for every request
//! that is not `serializable`). Checked per key, which is sound because a history is linearizable
//! iff each object's sub-history is (locality, Herlihy & Wing §3.3), with a Wing-Gong-Lowe search
//! like porcupine's: linearize, one by one, operations that no unlinearized operation precedes in
//! real time, backtracking, and memoizing (linearized set, model state) to avoid repeated work.
//!
//! The model is a register with revisions: a key holds a value and the revision of its last write;
//! a put at revision R requires R to exceed the key's last write revision; a read returns exactly
//! the value and `mod_revision`; a compare-and-put succeeds iff the key's `mod_revision` (0 when
//! absent) equals the expected one. An indeterminate write (the client cannot know whether it
//! happened) never returns, so it may take effect at any point after its invocation, or never; its
//! revision is unknown until a read reveals it. The search is bounded: past [`STEPS_MAX`]
//! configurations it reports "unknown" rather than pass or fail.

use std::collections::{BTreeMap, HashSet};

use super::Violation;
use crate::history::{Input, Operation, Output, Versioned};

/// Configurations one key's search may visit before it gives up.
pub const STEPS_MAX: usize = 500_000;

/// A key's state in the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyState {
    value: Option<String>,
    /// Revision of the last write (put or delete); `None` when an indeterminate write made it.
    revision: Option<i64>,
}

impl KeyState {
    const INITIAL: KeyState = KeyState {
        value: None,
        revision: Some(0),
    };

    /// What a `mod_revision` compare sees: 0 for an absent key; `None` when unknown.
    fn mod_revision(&self) -> Option<i64> {
        match self.value {
            None => Some(0),
            Some(_) => self.revision,
        }
    }

    fn write_allowed_at(&self, revision: i64) -> bool {
        self.revision.is_none_or(|last| revision > last)
    }

    /// The state after a read that observed `observed`, if the read is possible.
    fn read(&self, observed: &Option<Versioned>) -> Option<KeyState> {
        match observed {
            None => self.value.is_none().then(|| self.clone()),
            Some(kv) => (self.value.as_deref() == Some(kv.value.as_str())
                && self.revision.is_none_or(|r| r == kv.mod_revision))
            .then(|| KeyState {
                value: Some(kv.value.clone()),
                revision: Some(kv.mod_revision),
            }),
        }
    }

    /// Every state the operation can lead to from this one (none: it cannot happen here).
    fn step(&self, op: &Operation) -> Vec<KeyState> {
        let written = |value: &str, revision: Option<i64>| KeyState {
            value: Some(value.to_string()),
            revision,
        };
        match (&op.input, &op.output) {
            (Input::Get { .. }, Output::Get { kv, .. }) => self.read(kv).into_iter().collect(),
            (Input::Put { value, .. }, Output::Put { revision }) => {
                if self.write_allowed_at(*revision) {
                    vec![written(value, Some(*revision))]
                } else {
                    vec![]
                }
            }
            (Input::Put { value, .. }, Output::Indeterminate { .. }) => {
                vec![self.clone(), written(value, None)]
            }
            (Input::Delete { .. }, Output::Delete { deleted, revision }) => {
                if *deleted == 0 {
                    self.value
                        .is_none()
                        .then(|| self.clone())
                        .into_iter()
                        .collect()
                } else if self.value.is_some() && self.write_allowed_at(*revision) {
                    vec![KeyState {
                        value: None,
                        revision: Some(*revision),
                    }]
                } else {
                    vec![]
                }
            }
            (Input::Delete { .. }, Output::Indeterminate { .. }) => {
                let mut next = vec![self.clone()];
                if self.value.is_some() {
                    next.push(KeyState {
                        value: None,
                        revision: None,
                    });
                }
                next
            }
            (
                Input::CompareAndPut {
                    expected_mod_revision,
                    value,
                    ..
                },
                output,
            ) => {
                let may_match = self
                    .mod_revision()
                    .is_none_or(|r| r == *expected_mod_revision);
                let may_differ = self
                    .mod_revision()
                    .is_none_or(|r| r != *expected_mod_revision);
                match output {
                    Output::CompareAndPut {
                        succeeded: true,
                        revision,
                        ..
                    } => {
                        if may_match && self.write_allowed_at(*revision) {
                            vec![written(value, Some(*revision))]
                        } else {
                            vec![]
                        }
                    }
                    Output::CompareAndPut {
                        succeeded: false,
                        current,
                        ..
                    } => {
                        if may_differ {
                            self.read(current).into_iter().collect()
                        } else {
                            vec![]
                        }
                    }
                    Output::Indeterminate { .. } => {
                        let mut next = vec![self.clone()];
                        if may_match {
                            next.push(written(value, None));
                        }
                        next
                    }
                    _ => vec![],
                }
            }
            _ => vec![],
        }
    }
}

/// What the search concluded for one key.
#[derive(Debug)]
enum Verdict {
    Linearizable,
    /// No order explains the history; the operations that could not be placed next to the
    /// longest linearizable prefix found.
    Violation {
        prefix: usize,
        stuck: Vec<usize>,
    },
    Unknown,
}

/// Linearizability verdict per key, over the operations that may have had an effect.
pub struct Report {
    pub violations: Vec<Violation>,
    pub unknown: Vec<String>,
}

pub fn check(operations: &[Operation]) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in operations {
        if !matches!(op.output, Output::Failed { .. }) {
            by_key.entry(op.input.key()).or_default().push(op);
        }
    }
    let mut report = Report {
        violations: Vec::new(),
        unknown: Vec::new(),
    };
    for (key, ops) in by_key {
        match search(&ops) {
            Verdict::Linearizable => {}
            Verdict::Unknown => report.unknown.push(format!(
                "linearizability of key {key}: gave up after {STEPS_MAX} configurations ({} operations)",
                ops.len()
            )),
            Verdict::Violation { prefix, stuck } => {
                report.violations.push(Violation::correctness(
                    "linearizability",
                    format!(
                        "key {key}: no linearization of its {} operations; the longest explains {prefix} of them, \
                         and none of the operations that could come next fits the state it reaches",
                        ops.len()
                    ),
                    stuck,
                ))
            }
        }
    }
    report
}

/// A set of operation positions.
type Bits = Vec<u64>;

fn contains(bits: &Bits, i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn search(ops: &[&Operation]) -> Verdict {
    let n = ops.len();
    // An indeterminate operation never returned: it constrains nothing after it.
    let returns: Vec<u64> = ops
        .iter()
        .map(|op| {
            if op.is_indeterminate() {
                u64::MAX
            } else {
                op.complete_ns
            }
        })
        .collect();
    let empty: Bits = vec![0; n.div_ceil(64)];
    let mut seen: HashSet<(Bits, KeyState)> = HashSet::new();
    let mut stack = vec![(empty, KeyState::INITIAL, 0usize)];
    let mut best: (usize, Vec<usize>) = (0, Vec::new());
    let mut steps = 0;
    while let Some((done, state, count)) = stack.pop() {
        if count == n {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > STEPS_MAX {
            return Verdict::Unknown;
        }
        // Candidates: unlinearized operations invoked before every unlinearized one returned.
        let first_return = (0..n)
            .filter(|&i| !contains(&done, i))
            .map(|i| returns[i])
            .min()
            .expect("some operation is left");
        let candidates: Vec<usize> = (0..n)
            .filter(|&i| !contains(&done, i) && ops[i].invoke_ns <= first_return)
            .collect();
        let mut placed = false;
        for &i in &candidates {
            for next in state.step(ops[i]) {
                placed = true;
                let mut next_done = done.clone();
                next_done[i / 64] |= 1 << (i % 64);
                if seen.insert((next_done.clone(), next.clone())) {
                    stack.push((next_done, next, count + 1));
                }
            }
        }
        if !placed && count >= best.0 {
            best = (count, candidates.iter().map(|&i| ops[i].id).collect());
        }
    }
    Verdict::Violation {
        prefix: best.0,
        stuck: best.1,
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

    fn put(value: &str) -> Input {
        Input::Put {
            key: "k".into(),
            value: value.into(),
        }
    }

    fn get() -> Input {
        Input::Get { key: "k".into() }
    }

    fn seen(value: &str, mod_revision: i64) -> Output {
        Output::Get {
            kv: Some(Versioned {
                value: value.into(),
                mod_revision,
            }),
            revision: mod_revision,
        }
    }

    #[test]
    fn a_read_after_an_acknowledged_write_must_see_it() {
        let history = vec![
            op(0, 0, 10, put("a"), Output::Put { revision: 2 }),
            op(
                1,
                20,
                30,
                get(),
                Output::Get {
                    kv: None,
                    revision: 2,
                },
            ),
        ];
        assert_eq!(check(&history).violations.len(), 1);
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let history = vec![
            op(0, 0, 30, put("a"), Output::Put { revision: 2 }),
            op(
                1,
                5,
                20,
                get(),
                Output::Get {
                    kv: None,
                    revision: 1,
                },
            ),
            op(2, 25, 40, get(), seen("a", 2)),
        ];
        let report = check(&history);
        assert!(report.violations.is_empty() && report.unknown.is_empty());
    }

    #[test]
    fn an_indeterminate_write_may_appear_later_or_never() {
        let lost = Output::Indeterminate {
            error: "timeout".into(),
        };
        let history = vec![
            op(0, 0, 10, put("a"), lost.clone()),
            op(
                1,
                20,
                30,
                get(),
                Output::Get {
                    kv: None,
                    revision: 1,
                },
            ),
            op(2, 40, 50, get(), seen("a", 2)),
        ];
        assert!(check(&history).violations.is_empty());
    }

    #[test]
    fn a_revision_going_backwards_on_a_key_is_a_violation() {
        let history = vec![
            op(0, 0, 10, put("a"), Output::Put { revision: 5 }),
            op(1, 20, 30, put("b"), Output::Put { revision: 4 }),
        ];
        assert_eq!(check(&history).violations.len(), 1);
    }
}
