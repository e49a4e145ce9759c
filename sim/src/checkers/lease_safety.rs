//! No key outlives its lease: after heal, once every lease has had no keep-alive (and the cluster
//! no new leader, which restarts every lease) for longer than its TTL + an election timeout + a
//! margin, a linearizable read of `lease/` must find none of its
//! keys, and a revoked lease's keys are gone as soon as the revoke was acknowledged. And a
//! keep-alive sent after a revoke was acknowledged must never find the lease alive.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Violation;
use crate::history::LeaseHistory;
use crate::leases::EXPIRY_MARGIN;

const NAME: &str = "lease_safety";

pub fn check(history: &LeaseHistory) -> Vec<Violation> {
    let mut violations = Vec::new();
    let by_id: BTreeMap<i64, _> = history.leases.iter().map(|l| (l.id, l)).collect();
    for lease in &history.leases {
        let Some((_, revoked_ns, true)) = lease.revoke else {
            continue;
        };
        for &(invoke_ns, _, ttl) in &lease.keep_alives {
            if invoke_ns > revoked_ns && ttl > 0 {
                violations.push(Violation::correctness(
                    NAME,
                    format!(
                        "lease {:x}: a keep-alive sent at {invoke_ns} ns answered TTL {ttl} after \
                         its revoke was acknowledged at {revoked_ns} ns",
                        lease.id
                    ),
                    Vec::new(),
                ));
            }
        }
    }
    let Some(read_ns) = history.read_ns else {
        return violations;
    };
    for (key, value, lease_id) in &history.live_keys {
        let Some(lease) = by_id.get(lease_id) else {
            violations.push(Violation::correctness(
                NAME,
                format!("{key}={value} is alive with lease {lease_id:x}, which the workload never granted"),
                Vec::new(),
            ));
            continue;
        };
        if let Some((_, revoked_ns, true)) = lease.revoke {
            violations.push(Violation::correctness(
                NAME,
                format!(
                    "{key}={value} outlived lease {lease_id:x}: its revoke was acknowledged at \
                     {revoked_ns} ns, a read at {read_ns} ns still returns it"
                ),
                Vec::new(),
            ));
            continue;
        }
        let last_ns = lease
            .keep_alives
            .iter()
            .filter(|k| k.2 > 0)
            .map(|k| k.1)
            .chain([
                lease.grant_complete_ns,
                history.heal_ns,
                history.leader_change_ns,
            ])
            .max()
            .unwrap_or(0);
        let ttl = lease
            .granted_ttl_s
            .unwrap_or(lease.requested_ttl_s)
            .max(lease.requested_ttl_s);
        let expired_by = Duration::from_nanos(last_ns)
            + Duration::from_secs(ttl as u64)
            + Duration::from_millis(history.election_timeout_ms)
            + EXPIRY_MARGIN;
        if Duration::from_nanos(read_ns) > expired_by {
            violations.push(Violation::correctness(
                NAME,
                format!(
                    "{key}={value} outlived lease {lease_id:x} (TTL {ttl} s): no keep-alive after \
                     {last_ns} ns, so it should have expired by {} ns; a read at {read_ns} ns \
                     still returns it",
                    expired_by.as_nanos()
                ),
                Vec::new(),
            ));
        }
    }
    violations
}
