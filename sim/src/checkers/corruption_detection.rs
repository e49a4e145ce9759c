//! Corruption detection: a member whose WAL has a damaged record refuses to start instead of
//! serving from it (etcd's WAL: every record is CRC-checked on read, and a mismatch anywhere but a
//! torn tail is `ErrCRCMismatch`; detcd's WAL format doc, "Recovery"). The fault schedule flips a
//! durable bit after a crash and records any member that started anyway with the flipped byte
//! still in its log (a flip inside a torn tail is legitimately truncated away).

use super::Violation;

pub fn check(undetected: &[String]) -> Vec<Violation> {
    undetected
        .iter()
        .map(|what| Violation::correctness("corruption_detection", what.clone(), Vec::new()))
        .collect()
}
