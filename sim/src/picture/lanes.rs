//! What the picture shows, read from a run's trace: per member its role and term over time, the
//! spans a fault held it (down, paused, partitioned, clogged, drifting clock, lossy network) and
//! the marks of instant faults (disk faults, failpoints, flipped bits, membership steps); and the
//! leader changes. Nothing here runs the simulation: any trace, of a passing or failing run, will
//! do.

use std::collections::BTreeMap;

use crate::trace::Event;

/// A member's role as it reported it (the observer polls `Status` every 500 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    /// It reported no leader (an election, or cut off).
    NoLeader,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::NoLeader => "no-leader",
        }
    }
}

/// A stretch of time on a member's lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub from_ms: u64,
    pub to_ms: u64,
    /// `down`, `pause`, `partition`, `clog`, `clock`, `network`; or a role's name.
    pub kind: String,
    pub label: String,
}

/// An instant on a member's lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub at_ms: u64,
    /// `disk`, `failpoint`, `damage`, `membership`, `interrupt`, `crash` or `fault`.
    pub kind: String,
    pub label: String,
}

#[derive(Debug, Clone, Default)]
pub struct Lane {
    pub name: String,
    pub roles: Vec<Span>,
    pub spans: Vec<Span>,
    pub marks: Vec<Mark>,
}

/// A new term's leader, first reported at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderChange {
    pub at_ms: u64,
    pub term: u64,
    pub leader: String,
}

pub struct Lanes {
    pub members: Vec<Lane>,
    pub leader_changes: Vec<LeaderChange>,
    pub end_ms: u64,
}

/// Which fault kinds hold a span, by the start of their trace line, and the heal line that ends
/// them.
const HELD: &[(&str, &str, &str)] = &[
    ("pause", "pause for", "resume"),
    ("clock", "clock drift", "clock drift 0 ppm"),
    ("clog", "clog", "unclog"),
    ("clog", "swizzle-clog", "unclog"),
];

/// Reads the lanes of `members` (names `n1`…, with their initial member ids) from `events`.
pub fn read(events: &[Event], members: &[(String, u64)], end_ms: u64) -> Lanes {
    let mut lanes: Vec<Lane> = members
        .iter()
        .map(|(name, _)| Lane {
            name: name.clone(),
            ..Lane::default()
        })
        .collect();
    let index: BTreeMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    let mut ids: Vec<u64> = members.iter().map(|(_, id)| *id).collect();
    // Open spans per member: (kind, from, label).
    let mut open: Vec<Vec<(String, u64, String)>> = vec![Vec::new(); members.len()];
    let mut shared_open: Vec<(String, u64, String, Vec<usize>)> = Vec::new();
    let mut reported: Vec<Option<(u64, Role, u64)>> = vec![None; members.len()];
    let mut leader_changes: Vec<LeaderChange> = Vec::new();
    let close = |lane: &mut Lane, open: &mut Vec<(String, u64, String)>, kind: &str, at: u64| {
        if let Some(position) = open.iter().rposition(|(k, _, _)| k == kind) {
            let (kind, from_ms, label) = open.remove(position);
            lane.spans.push(Span {
                from_ms,
                to_ms: at,
                kind,
                label,
            });
        }
    };
    for event in events {
        let at = event.t_ms;
        let what = event.what.as_str();
        let member = index.get(event.subject.as_str()).copied();
        match (event.kind.as_str(), member) {
            ("leader", Some(i)) => {
                let Some((leader, term)) = parse_leader(what) else {
                    continue;
                };
                let role = if leader == 0 {
                    Role::NoLeader
                } else if leader == ids[i] {
                    Role::Leader
                } else {
                    Role::Follower
                };
                if let Some((from, role, term)) = reported[i].replace((at, role, term)) {
                    lanes[i].roles.push(role_span(from, at, role, term));
                }
                let newest = leader_changes.last().map_or(0, |c| c.term);
                if leader != 0 && term > newest {
                    let name = ids
                        .iter()
                        .position(|&id| id == leader)
                        .map_or(format!("{leader:x}"), |i| members[i].0.clone());
                    leader_changes.push(LeaderChange {
                        at_ms: at,
                        term,
                        leader: name,
                    });
                }
            }
            ("node", Some(i)) => {
                if what.starts_with("start") {
                    close(&mut lanes[i], &mut open[i], "down", at);
                } else if what.starts_with("crashed at failpoint") {
                    mark(&mut lanes[i], at, "crash", what);
                } else {
                    open_down(&mut open[i], at, what);
                }
            }
            ("fault", Some(i)) => {
                if let Some((kind, _, _)) =
                    HELD.iter().find(|(_, start, _)| what.starts_with(start))
                {
                    open[i].push((kind.to_string(), at, what.to_string()));
                    continue;
                }
                if what.contains("power loss") || what.starts_with("kill") {
                    open_down(&mut open[i], at, what);
                }
                if let Some(id) = added_id(what) {
                    ids[i] = id;
                }
                mark(&mut lanes[i], at, mark_kind(what), what);
            }
            ("heal", Some(i)) => {
                for (kind, _, end) in HELD {
                    if what == *end {
                        close(&mut lanes[i], &mut open[i], kind, at);
                    }
                }
            }
            ("fault", None) => {
                if let Some(sides) = what.strip_prefix("partition ") {
                    let named: Vec<usize> = index
                        .iter()
                        .filter(|(name, _)| mentions(sides, name))
                        .map(|(_, &i)| i)
                        .collect();
                    shared_open.push(("partition".into(), at, what.to_string(), named));
                } else if what.starts_with("network:") {
                    let all = (0..members.len()).collect();
                    shared_open.push(("network".into(), at, what.to_string(), all));
                } else if let Some(names) = what
                    .strip_prefix("power loss of ")
                    .and_then(|rest| rest.strip_suffix(" at once"))
                {
                    for name in names.split(',') {
                        if let Some(&i) = index.get(name) {
                            open_down(&mut open[i], at, what);
                        }
                    }
                }
            }
            // Heal ends every fault still holding (cut short when the workload finished); a
            // member still down stays so until it starts.
            ("heal", None) if what == "healed everything" => {
                for (i, lane) in lanes.iter_mut().enumerate() {
                    let (down, held) = std::mem::take(&mut open[i])
                        .into_iter()
                        .partition(|(kind, _, _)| kind == "down");
                    open[i] = down;
                    for (kind, from_ms, label) in held {
                        lane.spans.push(Span {
                            from_ms,
                            to_ms: at,
                            kind,
                            label,
                        });
                    }
                }
                for (kind, from_ms, label, on) in shared_open.drain(..) {
                    for i in on {
                        lanes[i].spans.push(Span {
                            from_ms,
                            to_ms: at,
                            kind: kind.clone(),
                            label: label.clone(),
                        });
                    }
                }
            }
            ("heal", None) => {
                let kind = match what {
                    "partition healed" => Some("partition"),
                    w if w.starts_with("network:") => Some("network"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    if let Some(p) = shared_open.iter().rposition(|(k, ..)| k == kind) {
                        let (kind, from_ms, label, on) = shared_open.remove(p);
                        for i in on {
                            lanes[i].spans.push(Span {
                                from_ms,
                                to_ms: at,
                                kind: kind.clone(),
                                label: label.clone(),
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // What still holds at the end of the trace holds to its end.
    for (i, lane) in lanes.iter_mut().enumerate() {
        for (kind, from_ms, label) in open[i].drain(..) {
            lane.spans.push(Span {
                from_ms,
                to_ms: end_ms,
                kind,
                label,
            });
        }
        if let Some((from, role, term)) = reported[i] {
            lane.roles.push(role_span(from, end_ms, role, term));
        }
    }
    for (kind, from_ms, label, on) in shared_open {
        for i in on {
            lanes[i].spans.push(Span {
                from_ms,
                to_ms: end_ms,
                kind: kind.clone(),
                label: label.clone(),
            });
        }
    }
    Lanes {
        members: lanes,
        leader_changes,
        end_ms,
    }
}

/// A member goes down (unless it is already).
fn open_down(open: &mut Vec<(String, u64, String)>, at: u64, what: &str) {
    if !open.iter().any(|(kind, _, _)| kind == "down") {
        open.push(("down".into(), at, what.to_string()));
    }
}

fn role_span(from_ms: u64, to_ms: u64, role: Role, term: u64) -> Span {
    Span {
        from_ms,
        to_ms,
        kind: role.name().to_string(),
        label: format!("{} in term {term}", role.name()),
    }
}

fn mark(lane: &mut Lane, at_ms: u64, kind: &str, what: &str) {
    lane.marks.push(Mark {
        at_ms,
        kind: kind.to_string(),
        label: what.to_string(),
    });
}

fn mark_kind(what: &str) -> &'static str {
    if what.starts_with("arm failpoint") {
        "failpoint"
    } else if what.contains("fsync") || what.contains("read") {
        "disk"
    } else if what.contains("flip bit") || what.contains("misdirected") {
        "damage"
    } else if what.contains("ctrl-c") {
        "interrupt"
    } else if what.contains("member") || what.contains("replace") || what.contains("added as") {
        "membership"
    } else if what.contains("power loss") {
        "crash"
    } else {
        "fault"
    }
}

/// `leader 7898ed51d1a72cba term 2` → the leader id and the term.
fn parse_leader(what: &str) -> Option<(u64, u64)> {
    let rest = what.strip_prefix("leader ")?;
    let (leader, term) = rest.split_once(" term ")?;
    Some((u64::from_str_radix(leader, 16).ok()?, term.parse().ok()?))
}

/// `added as voter 1a2b (attempt 1)` → the member's new id.
fn added_id(what: &str) -> Option<u64> {
    let rest = what
        .strip_prefix("added as voter ")
        .or_else(|| what.strip_prefix("added as learner "))?;
    u64::from_str_radix(rest.split_whitespace().next()?, 16).ok()
}

/// Whether a partition line `{n1} <-/-> {n2,n3}` names `name`.
fn mentions(sides: &str, name: &str) -> bool {
    sides
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t_ms: u64, kind: &str, subject: &str, what: &str) -> Event {
        Event {
            t_ms,
            kind: kind.into(),
            subject: subject.into(),
            what: what.into(),
        }
    }

    #[test]
    fn roles_spans_and_leader_changes_come_from_the_trace() {
        let members = vec![("n1".to_string(), 0xa), ("n2".to_string(), 0xb)];
        let events = vec![
            event(10, "leader", "n1", "leader 0 term 1"),
            event(500, "leader", "n1", "leader a term 2"),
            event(510, "leader", "n2", "leader a term 2"),
            event(700, "fault", "", "partition {n1} <-/-> {n2}"),
            event(
                900,
                "fault",
                "n2",
                "power loss (kill, unsynced writes lost)",
            ),
            event(1200, "node", "n2", "start #2"),
            event(1500, "heal", "", "partition healed"),
            event(1600, "fault", "n1", "fail the next 2 fsyncs"),
        ];
        let lanes = read(&events, &members, 2000);
        let n1 = &lanes.members[0];
        assert_eq!(
            n1.roles.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
            vec!["no-leader", "leader"]
        );
        assert!(n1
            .spans
            .iter()
            .any(|s| s.kind == "partition" && s.to_ms == 1500));
        assert_eq!(n1.marks[0].kind, "disk");
        let n2 = &lanes.members[1];
        assert_eq!(n2.roles[0].kind, "follower");
        assert!(n2
            .spans
            .iter()
            .any(|s| s.kind == "down" && (s.from_ms, s.to_ms) == (900, 1200)));
        assert_eq!(
            lanes.leader_changes,
            vec![LeaderChange {
                at_ms: 500,
                term: 2,
                leader: "n1".into()
            }]
        );
    }
}
