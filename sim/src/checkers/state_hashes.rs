//! State hashes during the run (TigerBeetle's replica checks while the simulation goes on): any
//! two members' `HashKV` at one revision, with one compaction revision (the hash covers only
//! what a compaction kept), must be equal whenever they were taken.

use std::collections::BTreeMap;

use super::Violation;
use crate::history::StateHash;

pub fn check(hashes: &[StateHash]) -> Vec<Violation> {
    let mut first: BTreeMap<(i64, i64), &StateHash> = BTreeMap::new();
    let mut violations = Vec::new();
    for hash in hashes {
        let seen = *first
            .entry((hash.revision, hash.compact_revision))
            .or_insert(hash);
        if seen.hash != hash.hash {
            violations.push(Violation::correctness(
                "state_hashes",
                format!(
                    "at revision {} (compacted at {}), {} hashed {:#010x} at {}ms but {} {:#010x} at {}ms",
                    hash.revision,
                    hash.compact_revision,
                    hash.member,
                    hash.hash,
                    hash.taken_ns / 1_000_000,
                    seen.member,
                    seen.hash,
                    seen.taken_ns / 1_000_000
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

    fn hash(member: &str, revision: i64, compact_revision: i64, hash: u32) -> StateHash {
        StateHash {
            taken_ns: 0,
            member: member.to_string(),
            revision,
            compact_revision,
            hash,
        }
    }

    #[test]
    fn members_differing_at_one_revision_diverged() {
        let hashes = [
            hash("n1", 5, -1, 1),
            hash("n2", 5, -1, 1),
            hash("n3", 5, -1, 2),
        ];
        let violations = check(&hashes);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("n3"), "{violations:?}");
    }

    #[test]
    fn other_revisions_or_compactions_are_not_compared() {
        let hashes = [
            hash("n1", 5, -1, 1),
            hash("n2", 6, -1, 2),
            hash("n3", 5, 4, 3),
        ];
        assert!(check(&hashes).is_empty());
    }
}
