//! The checkers, one property per file (openraft's `invariants/`, etcd's robustness validators).
//! Each reads only the recorded [`History`] and returns its violations instead of panicking, so
//! one run reports every broken property, and a failure report can be re-checked offline.

pub mod acknowledged_writes;
pub mod client_revisions;
pub mod corruption_detection;
pub mod lease_expiry;
pub mod lease_safety;
pub mod lease_time_to_live;
pub mod linearizability;
pub mod liveness;
pub mod past_revisions;
pub mod replica_convergence;
pub mod state_hashes;
pub mod watch_guarantees;

use serde::{Deserialize, Serialize};

use crate::history::History;

/// Which class of failure a violation belongs to; it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Correctness,
    Liveness,
}

/// One broken property, with the operations (history ids) that show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub checker: String,
    pub class: Class,
    pub message: String,
    pub operations: Vec<usize>,
}

impl Violation {
    pub fn correctness(checker: &str, message: String, operations: Vec<usize>) -> Violation {
        Violation {
            checker: checker.to_string(),
            class: Class::Correctness,
            message,
            operations,
        }
    }
}

/// What all checkers found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    pub violations: Vec<Violation>,
    /// Checks that gave up (e.g. the linearizability search hit its bound): neither pass nor fail.
    pub unknown: Vec<String>,
}

pub fn check_all(history: &History) -> Findings {
    let mut findings = Findings::default();
    findings
        .violations
        .extend(linearizability::check(&history.operations));
    findings
        .violations
        .extend(acknowledged_writes::check(history));
    findings
        .violations
        .extend(replica_convergence::check(&history.replica_hashes));
    findings
        .violations
        .extend(replica_convergence::check_states(&history.replica_states));
    findings
        .violations
        .extend(state_hashes::check(&history.state_hashes));
    findings.violations.extend(liveness::check(history));
    findings
        .violations
        .extend(corruption_detection::check(&history.undetected_corruption));
    findings
        .violations
        .extend(client_revisions::check(&history.operations));
    findings
        .violations
        .extend(past_revisions::check(&history.operations));
    findings.violations.extend(watch_guarantees::check(history));
    findings
        .violations
        .extend(lease_safety::check(&history.leases));
    findings
        .violations
        .extend(lease_expiry::check(&history.leases));
    findings
        .violations
        .extend(lease_time_to_live::check(&history.leases));
    findings
}
