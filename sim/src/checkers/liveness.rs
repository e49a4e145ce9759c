//! Liveness: once every fault is healed and every member restarted, the cluster must serve a
//! write and its replicas must agree, within a bounded simulated time (TigerBeetle VOPR's liveness
//! mode; Raft §5.2/§9: progress once a majority can communicate and timing is well-behaved).
//! The bound is enforced while the simulation runs; this checker reports what it recorded.

use super::{Class, Violation};
use crate::history::History;

pub fn check(history: &History) -> Vec<Violation> {
    history
        .liveness_failure
        .iter()
        .map(|failure| Violation {
            checker: "liveness".to_string(),
            class: Class::Liveness,
            message: failure.clone(),
            operations: Vec::new(),
        })
        .collect()
}
