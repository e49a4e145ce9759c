//! TimeToLive answers are consistent: the granted TTL is the one the grant gave; the remaining
//! TTL is never more than that plus the election timeout a new leader extends leases by; a lease
//! answered "not found" never answers again as alive (to TimeToLive or a keep-alive); and a
//! remaining TTL is a promise: the lease must not expire before it (drift allowed, as
//! `lease_expiry` checks the keep-alives' promises).

use super::lease_expiry::{broken_promises, Promise};
use super::Violation;
use crate::history::{LeaseHistory, LeaseRecord};

const NAME: &str = "lease_time_to_live";

fn gone_then_alive(lease: &LeaseRecord) -> Option<String> {
    let gone_ns = lease
        .time_to_lives
        .iter()
        .filter(|p| p.3 == 0)
        .map(|p| p.1)
        .min()?;
    let polls = lease
        .time_to_lives
        .iter()
        .filter(|p| p.3 > 0)
        .map(|p| (p.0, p.2, "TimeToLive"));
    let keep_alives = lease
        .keep_alives
        .iter()
        .filter(|k| k.2 > 0)
        .map(|k| (k.0, k.2, "a keep-alive"));
    let (invoke_ns, ttl, what) = polls
        .chain(keep_alives)
        .filter(|answer| answer.0 > gone_ns)
        .min_by_key(|answer| answer.0)?;
    Some(format!(
        "lease {:x} was answered not found by {gone_ns} ns, but {what} asked at {invoke_ns} ns \
         answered TTL {ttl}",
        lease.id
    ))
}

fn violation(message: String) -> Violation {
    Violation::correctness(NAME, message, Vec::new())
}

pub fn check(history: &LeaseHistory) -> Vec<Violation> {
    let mut violations = Vec::new();
    for lease in &history.leases {
        let Some(granted_ttl_s) = lease.granted_ttl_s else {
            continue;
        };
        for &(invoke_ns, _, remaining, granted) in &lease.time_to_lives {
            if granted == 0 {
                continue;
            }
            if granted != granted_ttl_s {
                violations.push(violation(format!(
                    "lease {:x}: TimeToLive asked at {invoke_ns} ns answered granted TTL \
                     {granted}, the grant gave {granted_ttl_s}",
                    lease.id
                )));
            }
            if remaining * 1000 > granted_ttl_s * 1000 + history.election_timeout_ms as i64 {
                violations.push(violation(format!(
                    "lease {:x}: TimeToLive asked at {invoke_ns} ns answered remaining TTL \
                     {remaining} s, more than its TTL {granted_ttl_s} s + an election timeout",
                    lease.id
                )));
            }
        }
        if let Some(message) = gone_then_alive(lease) {
            violations.push(violation(message));
        }
        let promises: Vec<Promise> = lease
            .time_to_lives
            .iter()
            .filter(|p| p.3 > 0 && p.2 > 0)
            .map(|p| Promise {
                invoke_ns: p.0,
                complete_ns: p.1,
                ttl_s: p.2.min(granted_ttl_s),
                what: "TimeToLive",
            })
            .collect();
        violations.extend(broken_promises(NAME, lease, &promises));
    }
    violations
}
