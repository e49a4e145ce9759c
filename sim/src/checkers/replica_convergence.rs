//! Replica convergence: members that applied the same log prefix hold the same key-value state,
//! so their `HashKV` at one revision is equal (Raft's State Machine Safety, §5.4.3; etcd's
//! corruption check compares exactly these hashes).

use super::Violation;

/// `hashes`: (member, revision, hash) taken after heal.
pub fn check(hashes: &[(String, i64, u32)]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (i, (member, revision, hash)) in hashes.iter().enumerate() {
        // Compare with the first member that hashed at the same revision.
        let first = hashes[..i].iter().find(|(_, r, _)| r == revision);
        if let Some((other, _, other_hash)) = first.filter(|(_, _, h)| h != hash) {
            violations.push(Violation::correctness(
                "replica_convergence",
                format!(
                    "at revision {revision}, {member} hashes to {hash:#010x} but {other} to {other_hash:#010x}"
                ),
                Vec::new(),
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_hashes_at_one_revision_are_a_violation() {
        let hashes = vec![
            ("n1".into(), 7, 1),
            ("n2".into(), 7, 2),
            ("n3".into(), 7, 1),
        ];
        assert_eq!(check(&hashes).len(), 1);
    }

    #[test]
    fn different_revisions_are_not_compared() {
        let hashes = vec![("n1".into(), 7, 1), ("n2".into(), 8, 2)];
        assert!(check(&hashes).is_empty());
    }
}
