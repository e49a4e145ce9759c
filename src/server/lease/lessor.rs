//! The lessor (etcd's `lease.lessor`): which leases exist, which keys each one holds, and, on
//! the leader only, when each one expires.
//!
//! Two kinds of state live here and must not be mixed up:
//! - **replicated**: leases, their granted TTL, their last checkpointed remaining TTL and their
//!   attached keys. Only applied raft entries change it (grant, revoke, checkpoint, and the KV
//!   writes seen through [`Lessor::track_writes`]), so every member holds the same, and a restart
//!   rebuilds it by re-applying the log.
//! - **primary-only**: expiry times and checkpoint schedules. Keep-alives are not replicated, so
//!   only the leader knows when a lease really expires. A member that is not the promoted leader
//!   holds every lease "forever"; [`Lessor::promote`] gives each lease its remaining TTL plus an
//!   election timeout, so that a leader change never expires a lease early.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::io::Clock;
use crate::pb::detcdpb::LeaseSnapshot;
use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::response_op::Response;
use crate::pb::etcdserverpb::{
    DeleteRangeRequest, LeaseCheckpoint, RangeRequest, RequestOp, TxnRequest,
};
use crate::pb::mvccpb::event::EventType;
use crate::server::ServerError;
use crate::storage::mvcc::KvStore;

/// etcd's `MaxLeaseTTL`: larger TTLs are refused with `etcdserver: too large lease TTL`.
pub const LEASE_TTL_SECONDS_MAX: i64 = 9_000_000_000;

/// etcd's `expiredLeaseRetryInterval`: an expired lease whose revoke has not been applied this
/// long after it was proposed is proposed again.
pub const EXPIRED_LEASE_RETRY_INTERVAL: Duration = Duration::from_secs(3);

/// What a TimeToLive shows for a lease that never expires here (etcd's `math.MaxInt64`
/// nanoseconds, in seconds).
const FOREVER_SECONDS: i64 = i64::MAX / 1_000_000_000;

/// The smallest TTL a lease is granted (etcd's `minLeaseTTL`): a lease must outlive the 1.5
/// election timeouts a leader change can take, or it could expire while nobody can renew it.
pub fn min_ttl_seconds(heartbeat_interval: Duration, election_ticks: usize) -> i64 {
    let min_ttl = heartbeat_interval * (3 * election_ticks as u32 / 2);
    min_ttl.as_secs_f64().ceil() as i64
}

#[derive(Debug)]
struct Lease {
    /// Granted TTL, after raising it to the minimum.
    ttl_seconds: i64,
    /// The last checkpointed remaining TTL; 0 when none.
    remaining_ttl_seconds: i64,
    keys: BTreeSet<Vec<u8>>,
    /// Primary only: when the lease expires; `None` means never (not primary).
    expiry: Option<Instant>,
    /// Primary only: when to checkpoint the remaining TTL next.
    next_checkpoint: Option<Instant>,
    /// Primary only: a checkpoint of this lease is proposed and has not applied yet. A renewal
    /// meanwhile must clear it after it applies, though no remaining TTL is recorded yet
    /// (seed 0x5f5ed34: the checkpoint applied after the keep-alive, and the next leader let the
    /// lease live only the checkpointed second).
    checkpoint_in_flight: bool,
    /// Primary only: when a revoke proposed for this expired lease may be proposed again.
    revoke_retry_at: Option<Instant>,
}

impl Lease {
    /// etcd's `Lease.RemainingTTL`: the checkpointed TTL if there is one, else the granted one.
    fn remaining_or_granted_seconds(&self) -> i64 {
        if self.remaining_ttl_seconds > 0 {
            self.remaining_ttl_seconds
        } else {
            self.ttl_seconds
        }
    }
}

/// A renewal's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    pub ttl_seconds: i64,
    /// The lease carried a checkpointed remaining TTL, or one is on its way: propose a checkpoint
    /// of 0 to clear it (after it, in the log), so the next leader starts it from the full TTL.
    pub clear_checkpoint: bool,
}

/// What LeaseTimeToLive reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeToLive {
    pub remaining_seconds: i64,
    pub granted_seconds: i64,
    pub keys: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct Lessor {
    clock: Arc<dyn Clock>,
    min_ttl_seconds: i64,
    /// `None`: checkpoints are off (etcd 3.4's default, `--experimental-enable-lease-checkpoint`).
    checkpoint_interval: Option<Duration>,
    leases: BTreeMap<i64, Lease>,
    /// Which lease each attached key belongs to: the reverse of `Lease::keys`.
    attached: BTreeMap<Vec<u8>, i64>,
    /// The term this member leads in, once it has promoted its leases: only then do leases
    /// expire here. Its duties' proposals carry it, so that they apply only in that term.
    primary_term: Option<u64>,
}

impl Lessor {
    pub fn new(
        clock: Arc<dyn Clock>,
        min_ttl_seconds: i64,
        checkpoint_interval: Option<Duration>,
    ) -> Self {
        assert!(min_ttl_seconds > 0, "a lease needs a positive minimum TTL");
        assert!(checkpoint_interval.is_none_or(|interval| !interval.is_zero()));
        Lessor {
            clock,
            min_ttl_seconds,
            checkpoint_interval,
            leases: BTreeMap::new(),
            attached: BTreeMap::new(),
            primary_term: None,
        }
    }

    pub fn exists(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn is_primary(&self) -> bool {
        self.primary_term.is_some()
    }

    pub fn primary_term(&self) -> Option<u64> {
        self.primary_term
    }

    // Replicated state: called by the applier only, in log order.

    /// Grants lease `id`; returns the TTL granted (raised to the minimum).
    pub fn grant(&mut self, id: i64, ttl_seconds: i64) -> Result<i64, ServerError> {
        if id == 0 {
            return Err(ServerError::LeaseNotFound);
        }
        if ttl_seconds > LEASE_TTL_SECONDS_MAX {
            return Err(ServerError::LeaseTtlTooLarge);
        }
        if self.exists(id) {
            return Err(ServerError::LeaseExists);
        }
        let ttl_seconds = ttl_seconds.max(self.min_ttl_seconds);
        let now = self.clock.now();
        let mut lease = Lease {
            ttl_seconds,
            remaining_ttl_seconds: 0,
            keys: BTreeSet::new(),
            expiry: None,
            next_checkpoint: None,
            checkpoint_in_flight: false,
            revoke_retry_at: None,
        };
        if self.is_primary() {
            lease.expiry = Some(now + seconds(ttl_seconds));
            schedule_checkpoint(&mut lease, now, self.checkpoint_interval);
        }
        self.leases.insert(id, lease);
        Ok(ttl_seconds)
    }

    /// Revokes lease `id`, deleting every key still attached to it in one revision (sorted, so
    /// every member deletes in the same order).
    pub fn revoke(&mut self, id: i64, kv: &mut KvStore) -> Result<(), ServerError> {
        let lease = self.leases.remove(&id).ok_or(ServerError::LeaseNotFound)?;
        let deletes = TxnRequest {
            success: lease
                .keys
                .iter()
                .map(|key| RequestOp {
                    request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    })),
                })
                .collect(),
            ..Default::default()
        };
        let revision_before = kv.current_revision();
        let response = kv
            .txn(&deletes, &|_| false)
            .expect("deleting distinct existing keys cannot fail");
        for op in &response.responses {
            let Some(Response::ResponseDeleteRange(deleted)) = &op.response else {
                unreachable!("a revoke txn only deletes");
            };
            assert_eq!(deleted.deleted, 1, "an attached key is a live key");
        }
        let expected_revision = revision_before + i64::from(!lease.keys.is_empty());
        assert_eq!(kv.current_revision(), expected_revision);
        for key in &lease.keys {
            assert_eq!(self.attached.remove(key), Some(id), "attached index agrees");
        }
        if crate::planted_bug!(FollowerKeepsRevokedLease) && !self.is_primary() {
            let keys = BTreeSet::new();
            self.leases.insert(id, Lease { keys, ..lease });
        }
        Ok(())
    }

    /// Records checkpointed remaining TTLs (etcd's `Checkpoint`); they take effect on the next
    /// promotion.
    pub fn checkpoint(&mut self, checkpoints: &[LeaseCheckpoint]) {
        let now = self.clock.now();
        let (primary, interval) = (self.is_primary(), self.checkpoint_interval);
        for checkpoint in checkpoints {
            if let Some(lease) = self.leases.get_mut(&checkpoint.id) {
                lease.remaining_ttl_seconds = checkpoint.remaining_ttl;
                lease.checkpoint_in_flight = false;
                if primary {
                    schedule_checkpoint(lease, now, interval);
                }
            }
        }
    }

    /// The replicated part of every lease, for a raft snapshot. (Attached keys are not in it:
    /// they are the keys carrying the lease in the KV store, and `restore` finds them there.)
    pub fn to_snapshot(&self) -> Vec<LeaseSnapshot> {
        self.leases
            .iter()
            .map(|(id, lease)| LeaseSnapshot {
                id: *id,
                ttl_seconds: lease.ttl_seconds,
                remaining_ttl_seconds: lease.remaining_ttl_seconds,
            })
            .collect()
    }

    /// Replaces every lease with a snapshot's, attaching the keys that carry them in `kv`.
    pub fn restore(&mut self, leases: &[LeaseSnapshot], kv: &KvStore) {
        assert!(!self.is_primary(), "a leader never installs a snapshot");
        self.leases = leases
            .iter()
            .map(|lease| {
                let restored = Lease {
                    ttl_seconds: lease.ttl_seconds,
                    remaining_ttl_seconds: lease.remaining_ttl_seconds,
                    keys: BTreeSet::new(),
                    expiry: None,
                    next_checkpoint: None,
                    checkpoint_in_flight: false,
                    revoke_retry_at: None,
                };
                (lease.id, restored)
            })
            .collect();
        self.attached.clear();
        let everything = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        let live = kv
            .range(&everything)
            .expect("the current revision is readable");
        for key_value in live.kvs.into_iter().filter(|kv| kv.lease != 0) {
            self.attach(key_value.key, key_value.lease);
        }
    }

    /// Attaches and detaches keys as the writes of `revision` (just applied) did: a put attaches
    /// its key to its lease (or detaches it, with no lease), a delete detaches.
    pub fn track_writes(&mut self, kv: &KvStore, revision: i64) {
        let events = kv
            .events_since(revision)
            .expect("the revision just written is not compacted");
        for event in events {
            let key_value = event.kv.expect("an event carries its key");
            let lease = if event.r#type == EventType::Put as i32 {
                key_value.lease
            } else {
                0
            };
            self.attach(key_value.key, lease);
        }
    }

    fn attach(&mut self, key: Vec<u8>, lease: i64) {
        let lease = lease * i64::from(!crate::planted_bug!(RevokeKeepsKeys));
        let previous = self.attached.get(&key).copied().unwrap_or(0);
        if previous == lease {
            return;
        }
        if previous != 0 {
            let holder = self
                .leases
                .get_mut(&previous)
                .expect("a revoked lease has no keys left");
            assert!(holder.keys.remove(&key), "attached index agrees");
            self.attached.remove(&key);
        }
        if lease != 0 {
            let holder = self
                .leases
                .get_mut(&lease)
                .expect("puts check that their lease exists");
            holder.keys.insert(key.clone());
            self.attached.insert(key, lease);
        }
    }

    // Primary-only state: the leader's duties and keep-alives.

    /// This member became leader and applied everything before its term: leases start to
    /// expire here, each after its remaining TTL plus `extend` (an election timeout), since
    /// keep-alives sent to the old leader were never replicated.
    pub fn promote(&mut self, extend: Duration, term: u64) {
        let now = self.clock.now();
        self.primary_term = Some(term);
        let interval = self.checkpoint_interval;
        for lease in self.leases.values_mut() {
            lease.expiry = Some(now + extend + seconds(lease.remaining_or_granted_seconds()));
            lease.revoke_retry_at = None;
            lease.checkpoint_in_flight = false;
            schedule_checkpoint(lease, now, interval);
        }
    }

    /// This member no longer leads: no lease expires here any more.
    pub fn demote(&mut self) {
        self.primary_term = None;
        for lease in self.leases.values_mut() {
            lease.expiry = None;
            lease.next_checkpoint = None;
            lease.checkpoint_in_flight = false;
            lease.revoke_retry_at = None;
        }
    }

    /// A keep-alive: the lease lives a full TTL from now. An expired lease is as good as gone
    /// (its revoke is on the way), so it answers not found.
    pub fn renew(&mut self, id: i64) -> Result<Renewed, ServerError> {
        if !self.is_primary() {
            return Err(ServerError::NotLeader);
        }
        let now = self.clock.now();
        let lease = self.leases.get_mut(&id).ok_or(ServerError::LeaseNotFound)?;
        let expiry = lease.expiry.expect("a primary's leases expire");
        if expiry <= now {
            return Err(ServerError::LeaseNotFound);
        }
        let mut ttl = seconds(lease.ttl_seconds);
        if crate::planted_bug!(ExpireEarly) {
            ttl /= 2;
        }
        lease.expiry = Some(now + ttl);
        let in_flight =
            lease.checkpoint_in_flight && !crate::planted_bug!(RenewIgnoresCheckpointInFlight);
        Ok(Renewed {
            ttl_seconds: lease.ttl_seconds,
            clear_checkpoint: lease.remaining_ttl_seconds > 0 || in_flight,
        })
    }

    /// Expired leases to revoke now, at most `count_max`; each is offered again only after
    /// [`EXPIRED_LEASE_RETRY_INTERVAL`], in case its revoke got lost.
    pub fn expired_leases(&mut self, count_max: usize) -> Vec<i64> {
        if !self.is_primary() {
            return Vec::new();
        }
        let now = self.clock.now();
        let mut expired = Vec::new();
        for (&id, lease) in &mut self.leases {
            if expired.len() == count_max {
                break;
            }
            let is_expired = lease.expiry.is_some_and(|expiry| expiry <= now);
            let retry_due = lease.revoke_retry_at.is_none_or(|at| at <= now);
            if is_expired && retry_due {
                lease.revoke_retry_at = Some(now + EXPIRED_LEASE_RETRY_INTERVAL);
                tracing::debug!(lease = format_args!("{id:x}"), "lease expired");
                expired.push(id);
            }
        }
        expired
    }

    /// Remaining TTLs due for a checkpoint, at most `count_max` (etcd's
    /// `findDueScheduledCheckpoints`). Applying them schedules the next ones.
    pub fn due_checkpoints(&mut self, count_max: usize) -> Vec<LeaseCheckpoint> {
        if !self.is_primary() {
            return Vec::new();
        }
        let now = self.clock.now();
        let mut due = Vec::new();
        for (&id, lease) in &mut self.leases {
            if due.len() == count_max {
                break;
            }
            if lease.next_checkpoint.is_none_or(|at| at > now) {
                continue;
            }
            lease.next_checkpoint = None;
            let expiry = lease.expiry.expect("a primary's leases expire");
            if expiry <= now {
                continue;
            }
            let remaining_seconds = (expiry - now).as_secs_f64().ceil() as i64;
            if remaining_seconds < lease.ttl_seconds {
                lease.checkpoint_in_flight = true;
                due.push(LeaseCheckpoint {
                    id,
                    remaining_ttl: remaining_seconds,
                });
            }
        }
        due
    }

    // Reads.

    pub fn time_to_live(&self, id: i64, with_keys: bool) -> Option<TimeToLive> {
        let lease = self.leases.get(&id)?;
        let remaining_seconds = match lease.expiry {
            None => FOREVER_SECONDS,
            Some(expiry) => {
                let now = self.clock.now();
                // Truncated toward zero, as etcd's int64(Remaining().Seconds()).
                if expiry >= now {
                    (expiry - now).as_secs() as i64
                } else {
                    -((now - expiry).as_secs() as i64)
                }
            }
        };
        Some(TimeToLive {
            remaining_seconds,
            granted_seconds: lease.ttl_seconds,
            keys: if with_keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Every lease id, soonest expiry first (etcd's `leasesByExpiry`; leases that never expire
    /// here come first), ties by id.
    pub fn leases(&self) -> Vec<i64> {
        let mut leases: Vec<(Option<Instant>, i64)> = self
            .leases
            .iter()
            .map(|(&id, lease)| (lease.expiry, id))
            .collect();
        leases.sort();
        leases.into_iter().map(|(_, id)| id).collect()
    }
}

/// etcd's `scheduleCheckpointIfNeeded`: only leases that outlive a checkpoint interval need one.
fn schedule_checkpoint(lease: &mut Lease, now: Instant, interval: Option<Duration>) {
    let Some(interval) = interval else {
        return;
    };
    if lease.remaining_or_granted_seconds() > interval.as_secs() as i64 {
        lease.next_checkpoint = Some(now + interval);
    }
}

fn seconds(seconds: i64) -> Duration {
    Duration::from_secs(seconds.max(0) as u64)
}
