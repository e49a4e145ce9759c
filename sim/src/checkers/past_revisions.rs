//! Reads at a past revision against the compactions (etcd: `Compact(C)` makes every revision below
//! `C` unreadable; a read at one answers "required revision has been compacted"; a read at a
//! revision the store has not reached answers "required revision is a future revision"). What a
//! successful one returns is checked by `linearizability`, at its revision. Here:
//! - a read refused as compacted had a compaction above its revision invoked before it completed;
//! - a read that succeeded had no compaction above its revision acknowledged before it began;
//! - a linearizable read is never refused as future at a revision some operation that completed
//!   before it had already reached.
//!
//! Only histories that record every compaction (the breadth mix) have past-revision reads.

use super::Violation;
use crate::history::{Input, Operation, Output, RangeQuery, Request};

const NAME: &str = "past_revisions";

pub fn check(operations: &[Operation]) -> Vec<Violation> {
    // (invoke, complete, revision, acknowledged) of every compaction that may have happened.
    let compactions: Vec<(u64, u64, i64, bool, usize)> = operations
        .iter()
        .filter_map(|op| match (&op.input, &op.output) {
            (Input::Compact { revision }, Output::Compacted { .. }) => {
                Some((op.invoke_ns, op.complete_ns, *revision, true, op.id))
            }
            (Input::Compact { revision }, Output::Indeterminate { .. }) => {
                Some((op.invoke_ns, op.complete_ns, *revision, false, op.id))
            }
            _ => None,
        })
        .collect();
    let mut violations = Vec::new();
    for op in operations {
        let Input::Request {
            request:
                Request::Range(RangeQuery {
                    revision: at @ 1..,
                    serializable: false,
                    ..
                }),
        } = &op.input
        else {
            continue;
        };
        match &op.output {
            Output::Failed { error } if error.contains("compacted") => {
                let explained = compactions
                    .iter()
                    .any(|&(invoke, _, revision, _, _)| revision > *at && invoke < op.complete_ns);
                if !explained {
                    violations.push(Violation::correctness(
                        NAME,
                        format!("#{}: a read at revision {at} was refused as compacted, but no compaction above it had begun", op.id),
                        vec![op.id],
                    ));
                }
            }
            Output::Failed { error } if error.contains("future revision") => {
                let reached = operations
                    .iter()
                    .filter(|other| other.complete_ns < op.invoke_ns)
                    .filter_map(|other| Some((other.header_revision()?, other.id)))
                    .find(|&(revision, _)| revision >= *at);
                if let Some((revision, other)) = reached {
                    violations.push(Violation::correctness(
                        NAME,
                        format!(
                            "#{}: a read at revision {at} was refused as a future revision, after #{other} had seen revision {revision}",
                            op.id
                        ),
                        vec![other, op.id],
                    ));
                }
            }
            Output::Response { .. } => {
                let compaction =
                    compactions
                        .iter()
                        .find(|&&(_, complete, revision, acknowledged, _)| {
                            acknowledged && revision > *at && complete < op.invoke_ns
                        });
                if let Some(&(_, _, revision, _, id)) = compaction {
                    violations.push(Violation::correctness(
                        NAME,
                        format!(
                            "#{}: a read at revision {at} succeeded after #{id} had compacted to revision {revision}",
                            op.id
                        ),
                        vec![id, op.id],
                    ));
                }
            }
            _ => {}
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{KeyRange, RangeOutcome, Response};

    fn op(id: usize, invoke_ns: u64, complete_ns: u64, input: Input, output: Output) -> Operation {
        Operation {
            id,
            client: 0,
            invoke_ns,
            complete_ns,
            input,
            output,
        }
    }

    fn read_at(revision: i64) -> Input {
        Input::Request {
            request: Request::Range(RangeQuery {
                range: KeyRange {
                    key: "k0".into(),
                    range_end: None,
                },
                limit: 0,
                revision,
                serializable: false,
                count_only: false,
                descending: false,
            }),
        }
    }

    fn answered() -> Output {
        Output::Response {
            response: Response::Range(RangeOutcome {
                kvs: Vec::new(),
                count: 0,
                more: false,
            }),
            revision: 9,
        }
    }

    fn compacted() -> Output {
        Output::Failed {
            error: "etcdserver: mvcc: required revision has been compacted".into(),
        }
    }

    #[test]
    fn a_read_below_an_acknowledged_compaction_must_fail() {
        let compaction = op(
            0,
            0,
            10,
            Input::Compact { revision: 5 },
            Output::Compacted { revision: 9 },
        );
        let history = vec![compaction.clone(), op(1, 20, 30, read_at(4), answered())];
        assert_eq!(check(&history).len(), 1);
        // At the compaction revision itself the store still answers.
        let at_compaction = vec![compaction, op(1, 20, 30, read_at(5), answered())];
        assert!(check(&at_compaction).is_empty());
    }

    #[test]
    fn a_compacted_error_needs_a_compaction() {
        assert_eq!(check(&[op(1, 20, 30, read_at(4), compacted())]).len(), 1);
        let lost = op(
            0,
            25,
            40,
            Input::Compact { revision: 6 },
            Output::Indeterminate {
                error: "timeout".into(),
            },
        );
        assert!(check(&[lost, op(1, 20, 30, read_at(4), compacted())]).is_empty());
    }
}
