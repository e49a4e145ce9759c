//! Replica convergence: members that applied the same log prefix hold the same state, so their
//! `HashKV` at one revision is equal (Raft's State Machine Safety, §5.4.3; etcd's corruption
//! check compares exactly these hashes), and so are, at one applied index, their leases, their
//! member lists and `Maintenance.Hash` of their whole state, which `HashKV` does not cover.

use super::Violation;
use crate::history::ReplicaState;

/// `states`: each replica's leases and member list after heal.
pub fn check_states(states: &[ReplicaState]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (i, state) in states.iter().enumerate() {
        let Some(other) = states[..i]
            .iter()
            .find(|other| other.applied_index == state.applied_index)
        else {
            continue;
        };
        let index = state.applied_index;
        let mut differ = |what: &str, mine: String, theirs: String| {
            violations.push(Violation::correctness(
                "replica_convergence",
                format!(
                    "at applied index {index}, {} has {what} {mine} but {} {theirs}",
                    state.member, other.member
                ),
                Vec::new(),
            ))
        };
        let leases_differ = state.leases != other.leases;
        let members_differ = state.members != other.members;
        if leases_differ {
            differ(
                "leases",
                format!("{:x?}", state.leases),
                format!("{:x?}", other.leases),
            );
        }
        if members_differ {
            differ(
                "members",
                format!("{:?}", state.members),
                format!("{:?}", other.members),
            );
        }
        // Differing leases or members change it too, and say more: only otherwise.
        if state.state_hash != other.state_hash && !leases_differ && !members_differ {
            differ(
                "state hash (Maintenance.Hash)",
                format!("{:#010x}", state.state_hash),
                format!("{:#010x}", other.state_hash),
            );
        }
    }
    violations
}

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

    fn state(member: &str, applied_index: u64, leases: Vec<i64>) -> ReplicaState {
        ReplicaState {
            member: member.into(),
            applied_index,
            state_hash: 7,
            leases,
            members: vec!["1 n1".into()],
        }
    }

    #[test]
    fn different_leases_or_members_at_one_applied_index_are_a_violation() {
        let mut states = vec![state("n1", 9, vec![1, 2]), state("n2", 9, vec![1])];
        states.push(ReplicaState {
            members: Vec::new(),
            ..state("n3", 9, vec![1, 2])
        });
        let violations = check_states(&states);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].message.contains("leases"));
        assert!(violations[1].message.contains("members"));
    }

    /// Same leases and members, yet other state (a restored store that forgot the deletes its
    /// compaction dropped): only the state hash tells.
    #[test]
    fn a_different_state_hash_at_one_applied_index_is_a_violation() {
        let states = vec![
            state("n1", 9, vec![1]),
            ReplicaState {
                state_hash: 8,
                ..state("n2", 9, vec![1])
            },
        ];
        let violations = check_states(&states);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].message.contains("state hash"),
            "{violations:?}"
        );
    }

    #[test]
    fn states_at_different_applied_indexes_are_not_compared() {
        let states = vec![state("n1", 9, vec![1, 2]), state("n2", 10, vec![1])];
        assert!(check_states(&states).is_empty());
    }

    #[test]
    fn different_revisions_are_not_compared() {
        let hashes = vec![("n1".into(), 7, 1), ("n2".into(), 8, 2)];
        assert!(check(&hashes).is_empty());
    }
}
