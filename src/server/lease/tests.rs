//! The lessor on a manual clock: expiry only on the primary, promotion extends, keys follow
//! their writes, a revoke deletes its keys in one revision, checkpoints carry remaining TTLs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::io::clock::Sleep;
use crate::io::Clock;
use crate::pb::etcdserverpb::{DeleteRangeRequest, LeaseCheckpoint, PutRequest, RangeRequest};
use crate::server::ServerError;
use crate::storage::mvcc::KvStore;

use super::lessor::{TimeToLive, EXPIRED_LEASE_RETRY_INTERVAL};
use super::Lessor;

const MIN_TTL_SECONDS: i64 = 2;
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// The term the tests' member leads in once promoted.
const TERM: u64 = 3;

/// Time moves only when the test says so.
#[derive(Debug)]
struct ManualClock {
    start: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed.lock().unwrap()
    }

    fn wall_ms(&self) -> u64 {
        self.elapsed.lock().unwrap().as_millis() as u64
    }

    fn sleep(&self, _duration: Duration) -> Sleep {
        unreachable!("the lessor reads time, it never sleeps")
    }
}

fn lessor() -> (Lessor, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock {
        start: Instant::now(),
        elapsed: Mutex::new(Duration::ZERO),
    });
    let lessor = Lessor::new(clock.clone(), MIN_TTL_SECONDS, Some(CHECKPOINT_INTERVAL));
    (lessor, clock)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// A put applied as the applier does it: lease check, then key tracking.
fn put(lessor: &mut Lessor, kv: &mut KvStore, key: &str, lease: i64, ignore_lease: bool) {
    let revision = kv.current_revision() + 1;
    let request = PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        lease,
        ignore_lease,
        ..Default::default()
    };
    kv.put(&request, &|id| lessor.exists(id)).unwrap();
    lessor.track_writes(kv, revision);
}

fn delete(lessor: &mut Lessor, kv: &mut KvStore, key: &str) {
    let revision = kv.current_revision() + 1;
    let request = DeleteRangeRequest {
        key: key.into(),
        ..Default::default()
    };
    kv.delete_range(&request).unwrap();
    lessor.track_writes(kv, revision);
}

fn keys(lessor: &Lessor, id: i64) -> Vec<String> {
    let found = lessor.time_to_live(id, true).expect("lease exists");
    found
        .keys
        .into_iter()
        .map(|key| String::from_utf8(key).unwrap())
        .collect()
}

fn live_keys(kv: &KvStore) -> Vec<String> {
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    kv.range(&all)
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect()
}

#[test]
fn grant_raises_the_ttl_to_the_minimum_and_refuses_duplicates_and_huge_ttls() {
    let (mut lessor, _) = lessor();
    assert_eq!(lessor.grant(1, 1), Ok(MIN_TTL_SECONDS));
    assert_eq!(lessor.grant(2, -5), Ok(MIN_TTL_SECONDS));
    assert_eq!(lessor.grant(3, 30), Ok(30));
    assert_eq!(lessor.grant(3, 30), Err(ServerError::LeaseExists));
    assert_eq!(
        lessor.grant(4, 9_000_000_001),
        Err(ServerError::LeaseTtlTooLarge)
    );
    assert_eq!(lessor.grant(0, 30), Err(ServerError::LeaseNotFound));
    assert_eq!(lessor.leases(), vec![1, 2, 3]);
}

#[test]
fn leases_never_expire_on_a_member_that_is_not_the_promoted_leader() {
    let (mut lessor, clock) = lessor();
    lessor.grant(1, 5).unwrap();
    clock.advance(secs(3600));
    assert!(lessor.expired_leases(10).is_empty());
    assert_eq!(lessor.renew(1), Err(ServerError::NotLeader));
}

#[test]
fn a_promoted_lease_expires_after_its_ttl_plus_the_election_timeout() {
    let (mut lessor, clock) = lessor();
    lessor.grant(1, 5).unwrap();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    assert_eq!(lessor.time_to_live(1, false).unwrap().remaining_seconds, 6);
    clock.advance(secs(5));
    assert!(lessor.expired_leases(10).is_empty());
    clock.advance(ELECTION_TIMEOUT);
    assert_eq!(lessor.expired_leases(10), vec![1]);
    // Its revoke is on the way: not offered again until the retry interval has passed.
    assert!(lessor.expired_leases(10).is_empty());
    clock.advance(EXPIRED_LEASE_RETRY_INTERVAL);
    assert_eq!(lessor.expired_leases(10), vec![1]);
}

#[test]
fn a_lease_granted_on_the_primary_expires_after_exactly_its_ttl() {
    let (mut lessor, clock) = lessor();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    lessor.grant(1, 5).unwrap();
    clock.advance(secs(5) - Duration::from_millis(1));
    assert!(lessor.expired_leases(10).is_empty());
    clock.advance(Duration::from_millis(1));
    assert_eq!(lessor.expired_leases(10), vec![1]);
}

#[test]
fn a_keep_alive_restarts_the_full_ttl_and_an_expired_lease_cannot_be_kept_alive() {
    let (mut lessor, clock) = lessor();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    lessor.grant(1, 5).unwrap();
    clock.advance(secs(4));
    assert_eq!(lessor.renew(1).unwrap().ttl_seconds, 5);
    clock.advance(secs(4));
    assert!(lessor.expired_leases(10).is_empty());
    assert_eq!(lessor.time_to_live(1, false).unwrap().remaining_seconds, 1);
    clock.advance(secs(1));
    assert_eq!(lessor.renew(1), Err(ServerError::LeaseNotFound));
    assert_eq!(lessor.renew(2), Err(ServerError::LeaseNotFound));
}

#[test]
fn a_new_leader_refreshes_every_lease_so_a_leader_change_never_expires_one_early() {
    let (mut lessor, clock) = lessor();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    lessor.grant(1, 5).unwrap();
    clock.advance(secs(4));
    lessor.demote();
    assert_eq!(lessor.renew(1), Err(ServerError::NotLeader));
    // Another member led for a while; keep-alives it took were never replicated.
    clock.advance(secs(30));
    assert!(lessor.expired_leases(10).is_empty());
    lessor.promote(ELECTION_TIMEOUT, TERM);
    clock.advance(secs(5));
    assert!(lessor.expired_leases(10).is_empty());
    clock.advance(ELECTION_TIMEOUT);
    assert_eq!(lessor.expired_leases(10), vec![1]);
}

#[test]
fn keys_attach_on_put_stay_with_ignore_lease_and_detach_on_a_plain_put_or_delete() {
    let (mut lessor, _) = lessor();
    let mut kv = KvStore::new();
    lessor.grant(1, 10).unwrap();
    lessor.grant(2, 10).unwrap();
    put(&mut lessor, &mut kv, "a", 1, false);
    put(&mut lessor, &mut kv, "b", 1, false);
    put(&mut lessor, &mut kv, "c", 1, false);
    put(&mut lessor, &mut kv, "d", 1, false);
    assert_eq!(keys(&lessor, 1), ["a", "b", "c", "d"]);
    put(&mut lessor, &mut kv, "a", 0, true);
    put(&mut lessor, &mut kv, "b", 0, false);
    put(&mut lessor, &mut kv, "c", 2, false);
    delete(&mut lessor, &mut kv, "d");
    assert_eq!(keys(&lessor, 1), ["a"]);
    assert_eq!(keys(&lessor, 2), ["c"]);
}

#[test]
fn a_put_with_a_lease_that_does_not_exist_is_refused() {
    let (lessor, _) = lessor();
    let mut kv = KvStore::new();
    let request = PutRequest {
        key: b"a".to_vec(),
        lease: 7,
        ..Default::default()
    };
    assert!(kv.put(&request, &|id| lessor.exists(id)).is_err());
}

#[test]
fn a_revoke_deletes_only_the_keys_still_attached_all_in_one_revision() {
    let (mut lessor, _) = lessor();
    let mut kv = KvStore::new();
    lessor.grant(1, 10).unwrap();
    for key in ["a", "b", "c", "d"] {
        put(&mut lessor, &mut kv, key, 1, false);
    }
    put(&mut lessor, &mut kv, "b", 0, false);
    put(&mut lessor, &mut kv, "z", 0, false);
    let revision_before = kv.current_revision();
    lessor.revoke(1, &mut kv).unwrap();
    assert_eq!(kv.current_revision(), revision_before + 1);
    assert_eq!(live_keys(&kv), ["b", "z"]);
    assert!(!lessor.exists(1));
    assert_eq!(lessor.revoke(1, &mut kv), Err(ServerError::LeaseNotFound));
    // The deleted keys no longer point at the revoked lease: a new lease may take them.
    lessor.grant(2, 10).unwrap();
    put(&mut lessor, &mut kv, "a", 2, false);
    assert_eq!(keys(&lessor, 2), ["a"]);
}

#[test]
fn revoking_a_lease_without_keys_writes_no_revision() {
    let (mut lessor, _) = lessor();
    let mut kv = KvStore::new();
    lessor.grant(1, 10).unwrap();
    lessor.revoke(1, &mut kv).unwrap();
    assert_eq!(kv.current_revision(), 1);
}

#[test]
fn long_leases_checkpoint_their_remaining_ttl_and_the_next_leader_starts_from_it() {
    let (mut lessor, clock) = lessor();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    lessor.grant(1, 600).unwrap();
    lessor.grant(2, 30).unwrap();
    clock.advance(CHECKPOINT_INTERVAL);
    let due = lessor.due_checkpoints(10);
    assert_eq!(
        due,
        vec![LeaseCheckpoint {
            id: 1,
            remaining_ttl: 540
        }]
    );
    assert!(
        lessor.due_checkpoints(10).is_empty(),
        "consumed until applied"
    );
    lessor.checkpoint(&due);
    // A leader change: the next leader counts from the checkpoint, not the full 600 s.
    lessor.demote();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    assert_eq!(
        lessor.time_to_live(1, false).unwrap().remaining_seconds,
        541
    );
    // A keep-alive restores the full TTL and asks for the checkpoint to be cleared.
    let renewed = lessor.renew(1).unwrap();
    assert!(renewed.clear_checkpoint);
    lessor.checkpoint(&[LeaseCheckpoint {
        id: 1,
        remaining_ttl: 0,
    }]);
    assert!(!lessor.renew(1).unwrap().clear_checkpoint);
}

/// Seed 0x5f5ed34: a keep-alive between a checkpoint's proposal and its apply found no remaining
/// TTL recorded yet, so it cleared nothing, and the checkpoint applied after it cut the lease
/// short at the next leader.
#[test]
fn a_keep_alive_clears_a_checkpoint_still_on_its_way() {
    let (mut lessor, clock) = lessor();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    lessor.grant(1, 600).unwrap();
    clock.advance(CHECKPOINT_INTERVAL);
    let due = lessor.due_checkpoints(10);
    assert_eq!(due.len(), 1);
    let renewed = lessor.renew(1).unwrap();
    assert!(renewed.clear_checkpoint, "a checkpoint is on its way");
    // In the log: the checkpoint, then the clearing the keep-alive proposed.
    lessor.checkpoint(&due);
    lessor.checkpoint(&[LeaseCheckpoint {
        id: 1,
        remaining_ttl: 0,
    }]);
    assert!(!lessor.renew(1).unwrap().clear_checkpoint);
    lessor.demote();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    assert_eq!(
        lessor.time_to_live(1, false).unwrap().remaining_seconds,
        601,
        "the next leader starts from the full TTL (and the election timeout)"
    );
}

#[test]
fn the_lease_list_is_ordered_by_expiry() {
    let (mut lessor, _) = lessor();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    lessor.grant(1, 50).unwrap();
    lessor.grant(2, 10).unwrap();
    lessor.grant(3, 30).unwrap();
    assert_eq!(lessor.leases(), vec![2, 3, 1]);
}

#[test]
fn time_to_live_reports_granted_ttl_remaining_ttl_and_keys() {
    let (mut lessor, clock) = lessor();
    let mut kv = KvStore::new();
    lessor.promote(ELECTION_TIMEOUT, TERM);
    lessor.grant(1, 10).unwrap();
    put(&mut lessor, &mut kv, "k", 1, false);
    clock.advance(Duration::from_millis(2500));
    assert_eq!(
        lessor.time_to_live(1, true),
        Some(TimeToLive {
            remaining_seconds: 7,
            granted_seconds: 10,
            keys: vec![b"k".to_vec()],
        })
    );
    assert_eq!(
        lessor.time_to_live(1, false).unwrap().keys,
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(lessor.time_to_live(9, false), None);
}

#[test]
fn the_minimum_ttl_is_one_and_a_half_election_timeouts_rounded_up_to_seconds() {
    use super::lessor::min_ttl_seconds;
    assert_eq!(min_ttl_seconds(Duration::from_millis(100), 10), 2);
    assert_eq!(min_ttl_seconds(Duration::from_millis(100), 50), 8);
    assert_eq!(min_ttl_seconds(Duration::from_millis(10), 5), 1);
}
