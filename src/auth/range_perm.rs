//! Whether a user's permissions cover a requested key range (etcd's `rangePerm`): a request is
//! allowed only if every key it could touch lies in the union of the ranges its roles grant.

use std::ops::Bound;

use crate::pb::authpb::permission::Type as PermType;
use crate::pb::authpb::Permission;

/// What a request does to its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn granted_by(self, perm: &Permission) -> bool {
        matches!(
            (self, perm.perm_type()),
            (_, PermType::Readwrite)
                | (Access::Read, PermType::Read)
                | (Access::Write, PermType::Write)
        )
    }
}

/// A half-open key interval [start, end); `Unbounded` end is etcd's "\0" range end (every key
/// from `start` on).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: Bound<Vec<u8>>,
}

impl Interval {
    /// As etcd reads a (key, range_end) pair: no range end is the key alone, "\0" is open ended.
    /// A range that ends at or before its start selects nothing beyond its key, so it is taken
    /// as the key alone (asking for more would refuse requests etcd's store answers empty).
    fn of(key: &[u8], range_end: &[u8]) -> Interval {
        let end = if range_end == [0] {
            Bound::Unbounded
        } else if range_end.is_empty() || range_end <= key {
            Bound::Excluded(key_successor(key))
        } else {
            Bound::Excluded(range_end.to_vec())
        };
        Interval {
            start: key.to_vec(),
            end,
        }
    }
}

/// The smallest key after `key`: `key` + "\0".
fn key_successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// `a` reaches at least as far as `b`.
fn end_at_least(a: &Bound<Vec<u8>>, b: &Bound<Vec<u8>>) -> bool {
    match (a, b) {
        (Bound::Unbounded, _) => true,
        (_, Bound::Unbounded) => false,
        (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => unreachable!("intervals end excluded or unbounded"),
    }
}

/// Whether `perms` grant `access` to every key in (key, range_end).
pub fn covers<'a>(
    perms: impl Iterator<Item = &'a Permission>,
    access: Access,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let wanted = Interval::of(key, range_end);
    let mut granted: Vec<Interval> = perms
        .filter(|perm| access.granted_by(perm))
        .map(|perm| Interval::of(&perm.key, &perm.range_end))
        .collect();
    granted.sort_by(|a, b| a.start.cmp(&b.start));
    // Sweep the granted intervals in start order, extending how far from `wanted.start` on
    // every key is covered, until a gap opens before `wanted.end`.
    let mut covered_to = Bound::Excluded(wanted.start.clone());
    for interval in granted {
        let starts_in_time = match &covered_to {
            Bound::Excluded(reach) => interval.start <= *reach,
            Bound::Unbounded => true,
            Bound::Included(_) => unreachable!("intervals end excluded or unbounded"),
        };
        if !starts_in_time {
            break;
        }
        if !end_at_least(&covered_to, &interval.end) {
            covered_to = interval.end;
        }
        if end_at_least(&covered_to, &wanted.end) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(perm_type: PermType, key: &str, range_end: &[u8]) -> Permission {
        Permission {
            perm_type: perm_type as i32,
            key: key.into(),
            range_end: range_end.to_vec(),
        }
    }

    fn allows(perms: &[Permission], access: Access, key: &str, range_end: &[u8]) -> bool {
        covers(perms.iter(), access, key.as_bytes(), range_end)
    }

    #[test]
    fn a_single_key_permission_covers_that_key_only() {
        let perms = [perm(PermType::Read, "/a", b"")];
        assert!(allows(&perms, Access::Read, "/a", b""));
        assert!(!allows(&perms, Access::Read, "/a0", b""));
        assert!(!allows(&perms, Access::Read, "/a", b"/b"));
        assert!(!allows(&perms, Access::Write, "/a", b""));
    }

    #[test]
    fn a_prefix_covers_its_keys_and_sub_ranges() {
        let perms = [perm(PermType::Readwrite, "/p", b"/q")];
        assert!(allows(&perms, Access::Write, "/p/x", b""));
        assert!(allows(&perms, Access::Read, "/p", b"/q"));
        assert!(allows(&perms, Access::Read, "/p/a", b"/p/b"));
        assert!(!allows(&perms, Access::Read, "/p", b"/r"));
        assert!(!allows(&perms, Access::Read, "/o", b""));
        assert!(!allows(&perms, Access::Read, "/p", &[0]));
    }

    #[test]
    fn from_key_is_open_ended() {
        let perms = [perm(PermType::Write, "/f", &[0])];
        assert!(allows(&perms, Access::Write, "/z", b""));
        assert!(allows(&perms, Access::Write, "/f", &[0]));
        assert!(!allows(&perms, Access::Write, "/e", b""));
        assert!(!allows(&perms, Access::Read, "/z", b""));
    }

    #[test]
    fn adjacent_ranges_cover_together_and_gaps_refuse() {
        let perms = [
            perm(PermType::Read, "a", b"c"),
            perm(PermType::Read, "c", b"e"),
            perm(PermType::Read, "f", b"g"),
        ];
        assert!(allows(&perms, Access::Read, "a", b"e"));
        assert!(allows(&perms, Access::Read, "b", b"d"));
        assert!(!allows(&perms, Access::Read, "a", b"g"));
        assert!(!allows(&perms, Access::Read, "e", b""));
    }

    #[test]
    fn no_permission_covers_nothing() {
        assert!(!allows(&[], Access::Read, "a", b""));
        assert!(!allows(&[], Access::Read, "a", b"a"));
    }
}
