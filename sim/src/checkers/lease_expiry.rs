//! No lease expires before its TTL after its last acknowledged keep-alive (or its grant): an
//! answer that shows the lease expired or gone (a keep-alive answering TTL 0, a TimeToLive
//! answering "not found" or a negative TTL) must not come before the deadline that any earlier
//! answer promised, unless a revoke had been sent by then. The server renews at some instant
//! after the request was sent, and its clock may run up to [`DRIFT_MAX`] fast, so a TTL of `t`
//! promises `t / (1 + DRIFT_MAX)` of true time from the request on. A new leader only extends
//! leases (by their TTL, or their checkpointed remaining TTL, plus an election timeout).

use std::time::Duration;

use super::Violation;
use crate::history::{LeaseHistory, LeaseRecord};

const NAME: &str = "lease_expiry";

/// The largest clock drift the clock fault draws (`faults.rs`, ±20%).
pub const DRIFT_MAX: f64 = 0.2;

/// Beyond drift: rounding of simulated instants.
const SLACK: Duration = Duration::from_millis(50);

/// An answer that says the lease lives for `ttl_s` more seconds from when it was asked.
#[derive(Debug, Clone, Copy)]
pub struct Promise {
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub ttl_s: i64,
    pub what: &'static str,
}

impl Promise {
    /// Until when (true ns) the lease must live at least.
    fn deadline_ns(&self) -> u64 {
        let lives = Duration::from_secs(self.ttl_s.max(0) as u64).as_secs_f64() / (1.0 + DRIFT_MAX);
        (Duration::from_nanos(self.invoke_ns) + Duration::from_secs_f64(lives))
            .saturating_sub(SLACK)
            .as_nanos() as u64
    }
}

/// An answer that showed the lease expired or gone: (invoke ns, complete ns, what).
fn expiries(lease: &LeaseRecord) -> Vec<(u64, u64, &'static str)> {
    let keep_alives = lease
        .keep_alives
        .iter()
        .filter(|k| k.2 <= 0)
        .map(|k| (k.0, k.1, "a keep-alive answered TTL 0"));
    let polls = lease
        .time_to_lives
        .iter()
        .filter(|p| p.3 == 0 || p.2 < 0)
        .map(|p| (p.0, p.1, "TimeToLive answered expired or not found"));
    keep_alives.chain(polls).collect()
}

/// Violations of `promises` by the lease's expiry answers, checked as `checker`.
pub fn broken_promises(checker: &str, lease: &LeaseRecord, promises: &[Promise]) -> Vec<Violation> {
    let revoke_sent_ns = lease.revoke.map(|r| r.0);
    let mut violations = Vec::new();
    for (invoke_ns, complete_ns, what) in expiries(lease) {
        if revoke_sent_ns.is_some_and(|sent| sent < complete_ns) {
            continue;
        }
        let broken = promises
            .iter()
            .filter(|p| p.complete_ns < invoke_ns)
            .max_by_key(|p| p.deadline_ns())
            .filter(|p| complete_ns < p.deadline_ns());
        if let Some(promise) = broken {
            violations.push(Violation::correctness(
                checker,
                format!(
                    "lease {:x} expired early: {what} at {invoke_ns}..{complete_ns} ns, but {} \
                     asked at {} ns (answered by {} ns) gave it {} s, so it had to live until \
                     {} ns",
                    lease.id,
                    promise.what,
                    promise.invoke_ns,
                    promise.complete_ns,
                    promise.ttl_s,
                    promise.deadline_ns()
                ),
                Vec::new(),
            ));
        }
    }
    violations
}

pub fn check(history: &LeaseHistory) -> Vec<Violation> {
    let mut violations = Vec::new();
    for lease in &history.leases {
        let Some(granted_ttl_s) = lease.granted_ttl_s else {
            continue;
        };
        let grant = Promise {
            invoke_ns: lease.grant_invoke_ns,
            complete_ns: lease.grant_complete_ns,
            ttl_s: granted_ttl_s,
            what: "the grant",
        };
        let keep_alives = lease
            .keep_alives
            .iter()
            .filter(|k| k.2 > 0)
            .map(|k| Promise {
                invoke_ns: k.0,
                complete_ns: k.1,
                ttl_s: k.2,
                what: "a keep-alive",
            });
        let promises: Vec<Promise> = [grant].into_iter().chain(keep_alives).collect();
        violations.extend(broken_promises(NAME, lease, &promises));
    }
    violations
}
