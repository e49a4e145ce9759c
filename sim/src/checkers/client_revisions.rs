//! Revision monotonicity per client: the header revisions one client observes, operation after
//! operation, never go backwards. etcd guarantees it for linearizable requests (every request the
//! workload makes but serializable reads, which may be stale): each is served at a point after the
//! previous one completed, and the store's revision only grows (etcd API guarantees: "revisions are
//! monotonically increasing").

use std::collections::BTreeMap;

use super::Violation;
use crate::history::Operation;

pub fn check(operations: &[Operation]) -> Vec<Violation> {
    let mut last: BTreeMap<u32, (i64, usize)> = BTreeMap::new();
    let mut by_completion: Vec<&Operation> = operations.iter().collect();
    by_completion.sort_by_key(|op| (op.complete_ns, op.id));
    let mut violations = Vec::new();
    for op in by_completion {
        let Some(revision) = op.header_revision() else {
            continue;
        };
        if let Some(&(previous, previous_id)) = last.get(&op.client) {
            // A serializable read may come from a member that lags the one before it.
            if revision < previous && !op.is_serializable() {
                violations.push(Violation::correctness(
                    "client_revisions",
                    format!(
                        "client {} saw revision {revision} after revision {previous}",
                        op.client
                    ),
                    vec![previous_id, op.id],
                ));
            }
        }
        last.insert(op.client, (revision, op.id));
    }
    violations
}
