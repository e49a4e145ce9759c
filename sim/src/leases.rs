//! The `lease` workload: one client node grants leases (TTL 2–5 s, some 10–30 s), puts keys under
//! `lease/` with them, and then keeps some alive for a while, revokes some (then keeps them alive
//! through other members, at once and later), and lets the rest expire. After heal, once every lease must have
//! run out, one linearizable read of `lease/` shows which keys outlived their lease
//! (`lease_safety`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::lease_client::LeaseClient;
use detcd::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    PutRequest, RangeRequest,
};
use futures::StreamExt;
use madsim::runtime::{Handle, NodeHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::client::REQUEST_TIMEOUT;
use crate::history::{LeaseHistory, LeaseRecord};
use crate::options::SwarmOptions;
use crate::recorded::Recorded;
use crate::trace::{now_ns, Trace};

/// Every lease key starts with this; the kv workload and the watchers never touch it.
pub const LEASE_PREFIX: &str = "lease/";
const LEASE_PREFIX_END: &str = "lease0";

/// Beyond TTL + election timeout, how long a lease may outlive its last keep-alive (heal, a late
/// election, the leader's expiry tick and the revoke's round through raft).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// One revoke loop per entry, each granting ids from it up (`lease_loop` grants from 0x1000),
/// with TTLs (s) from its range: the long ones outlive lease checkpoint intervals (swarm option
/// `lease_checkpoint_interval_ms`), so a new leader restores their checkpointed remaining TTL.
const REVOKE_LOOPS: [(i64, (i64, i64)); 3] = [
    (0x10_0000, (2, 5)),
    (0x20_0000, (2, 5)),
    (0x30_0000, (10, 30)),
];

/// How often a revoke loop tries one revoke.
const REVOKE_TRIES_MAX: usize = 5;

/// How often a [`TtlPoller`] asks at most, and how many "not found" answers end it.
const TTL_POLLS_MAX: usize = 60;
const TTL_POLLS_AFTER_GONE: usize = 2;

/// The lease client's records.
pub type LeaseRecorder = Recorded<LeaseRecord>;

pub fn start(
    options: &SwarmOptions,
    member_urls: &[String],
    recorder: &LeaseRecorder,
    trace: &Trace,
) -> NodeHandle {
    let node = Handle::current()
        .create_node()
        .name("leaser")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 4, 1)))
        .build();
    let (seed, urls) = (options.seed, member_urls.to_vec());
    let (recorder, trace) = (recorder.clone(), trace.clone());
    for (first_id, ttls) in REVOKE_LOOPS {
        node.spawn(revoke_loop(
            seed,
            first_id,
            ttls,
            urls.clone(),
            recorder.clone(),
            trace.clone(),
        ));
    }
    node.spawn(lease_loop(seed, urls, recorder, trace));
    node
}

async fn within<T>(
    future: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match madsim::time::timeout(REQUEST_TIMEOUT, future).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status.to_string()),
        Err(_) => Err("client timeout".to_string()),
    }
}

async fn connect(url: &str) -> Result<Connection, String> {
    let lease = madsim::time::timeout(REQUEST_TIMEOUT, LeaseClient::connect(url.to_string()))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let kv = madsim::time::timeout(REQUEST_TIMEOUT, KvClient::connect(url.to_string()))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((lease, kv))
}

/// One keep-alive on a fresh stream: the TTL the server answered (0: no such lease).
async fn keep_alive(
    lease: &mut LeaseClient<tonic::transport::Channel>,
    id: i64,
) -> Result<i64, String> {
    let requests =
        futures::stream::iter([LeaseKeepAliveRequest { id }]).chain(futures::stream::pending());
    let mut answers = within(lease.lease_keep_alive(requests)).await?;
    match madsim::time::timeout(REQUEST_TIMEOUT, answers.next()).await {
        Ok(Some(Ok(answer))) => Ok(answer.ttl),
        Ok(Some(Err(status))) => Err(status.to_string()),
        Ok(None) => Err("keep-alive stream ended".to_string()),
        Err(_) => Err("client timeout".to_string()),
    }
}

/// A member other than `current`, when there is one.
fn other_member(rng: &mut StdRng, members: usize, current: usize) -> usize {
    if members == 1 {
        return current;
    }
    (current + rng.random_range(1..members)) % members
}

/// Another client that holds a lease the workload just revoked: for a second or few it keeps
/// the lease alive through any member, first through one other than the revoker, as a client
/// that has not heard of the revoke would. Every answer must be "no such lease" (`lease_safety`),
/// also from a member that was cut off (and still believes it leads), or that restarted or took
/// over meanwhile.
struct HolderAfterRevoke {
    urls: Vec<String>,
    first: usize,
    index: usize,
    recorder: LeaseRecorder,
    rng: StdRng,
}

impl HolderAfterRevoke {
    async fn keep_alive_for_a_while(mut self) {
        let id = self.recorder.get(self.index).id;
        let mut member = self.first;
        for _ in 0..self.rng.random_range(1..=20) {
            let invoke = now_ns();
            let answer = match connect(&self.urls[member]).await {
                Ok((mut lease, _)) => keep_alive(&mut lease, id).await,
                Err(error) => Err(error),
            };
            if let Ok(ttl) = answer {
                self.recorder
                    .update(self.index, |r| r.keep_alives.push((invoke, now_ns(), ttl)));
            }
            madsim::time::sleep(Duration::from_millis(self.rng.random_range(20..300))).await;
            member = self.rng.random_range(0..self.urls.len());
        }
    }
}

/// Asks TimeToLive of one granted lease through any member, every few hundred ms, until it has
/// answered "not found" a few times: the answers show when the lease expired (`lease_expiry`)
/// and whether they are consistent with each other and the keep-alives (`lease_time_to_live`).
struct TtlPoller {
    urls: Vec<String>,
    index: usize,
    recorder: LeaseRecorder,
    rng: StdRng,
}

impl TtlPoller {
    async fn poll_until_gone(mut self) {
        let id = self.recorder.get(self.index).id;
        let mut gone = 0;
        for _ in 0..TTL_POLLS_MAX {
            madsim::time::sleep(Duration::from_millis(self.rng.random_range(200..800))).await;
            let member = self.rng.random_range(0..self.urls.len());
            let invoke = now_ns();
            let answer = match connect(&self.urls[member]).await {
                Ok((mut lease, _)) => {
                    within(lease.lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false }))
                        .await
                }
                Err(error) => Err(error),
            };
            let Ok(answer) = answer else {
                continue;
            };
            let poll = (invoke, now_ns(), answer.ttl, answer.granted_ttl);
            self.recorder
                .update(self.index, |r| r.time_to_lives.push(poll));
            if answer.granted_ttl == 0 {
                gone += 1;
                if gone == TTL_POLLS_AFTER_GONE {
                    break;
                }
            }
        }
    }
}

/// Grants lease `id` through `lease` and puts `keys` keys with it; its record's index, and
/// whether every request succeeded. A granted lease gets a [`TtlPoller`] (its draws from
/// `poll_seed`, apart from the caller's).
#[allow(clippy::too_many_arguments)]
async fn grant_with_keys(
    (lease, kv): &mut Connection,
    urls: &[String],
    poll_seed: u64,
    id: i64,
    ttl: i64,
    keys: usize,
    recorder: &LeaseRecorder,
    trace: &Trace,
) -> (usize, bool) {
    let invoke = now_ns();
    let granted = within(lease.lease_grant(LeaseGrantRequest { ttl, id })).await;
    let index = recorder.push(LeaseRecord {
        id,
        requested_ttl_s: ttl,
        granted_ttl_s: granted.as_ref().ok().map(|g| g.ttl),
        grant_invoke_ns: invoke,
        grant_complete_ns: now_ns(),
        puts: Vec::new(),
        keep_alives: Vec::new(),
        revoke: None,
        time_to_lives: Vec::new(),
    });
    trace.record(
        "lease",
        "leaser",
        format!("grant {id:x} ttl {ttl}s → {granted:?}"),
    );
    let mut ok = granted.is_ok();
    if ok {
        let poller = TtlPoller {
            urls: urls.to_vec(),
            index,
            recorder: recorder.clone(),
            rng: StdRng::seed_from_u64(poll_seed ^ 0x0771_0a11 ^ id as u64),
        };
        madsim::task::spawn(poller.poll_until_gone());
        for j in 0..keys {
            let key = format!("{LEASE_PREFIX}{id:x}/{j}");
            let value = format!("l{id:x}-{j}");
            let put = PutRequest {
                key: key.clone().into_bytes(),
                value: value.clone().into_bytes(),
                lease: id,
                ..Default::default()
            };
            let put = within(kv.put(put)).await;
            ok &= put.is_ok();
            recorder.update(index, |r| r.puts.push((key, value, put.is_ok())));
        }
    }
    (index, ok)
}

/// One keep-alive of the lease at `index`, recorded if answered; whether it was.
async fn keep_alive_recorded(
    lease: &mut LeaseClient<tonic::transport::Channel>,
    index: usize,
    recorder: &LeaseRecorder,
) -> bool {
    let invoke = now_ns();
    let answer = keep_alive(lease, recorder.get(index).id).await;
    if let Ok(ttl) = answer {
        recorder.update(index, |r| r.keep_alives.push((invoke, now_ns(), ttl)));
    }
    answer.is_ok()
}

/// Revokes the lease at `index`, recorded; whether it was acknowledged.
async fn revoke_recorded(
    lease: &mut LeaseClient<tonic::transport::Channel>,
    index: usize,
    recorder: &LeaseRecorder,
    trace: &Trace,
) -> bool {
    let id = recorder.get(index).id;
    let invoke = now_ns();
    recorder.update(index, |r| r.revoke = Some((invoke, invoke, false)));
    let revoked = within(lease.lease_revoke(LeaseRevokeRequest { id })).await;
    trace.record("lease", "leaser", format!("revoke {id:x} → {revoked:?}"));
    let acknowledged = revoked.is_ok();
    recorder.update(index, |r| r.revoke = Some((invoke, now_ns(), acknowledged)));
    acknowledged
}

/// Revokes the lease at `index` as a client that retries would: through member `first`, then
/// through others, until a member acknowledges the revoke or answers that the lease is gone (an
/// earlier try went through, or it expired). Recorded as acknowledged then, from the first try's
/// invoke to that answer; returns the member that answered.
async fn revoke_until_done(
    urls: &[String],
    first: usize,
    index: usize,
    recorder: &LeaseRecorder,
    trace: &Trace,
    rng: &mut StdRng,
) -> Option<usize> {
    let id = recorder.get(index).id;
    let invoke = now_ns();
    // Sent from now on, though not acknowledged (yet): the lease may be gone at any time.
    recorder.update(index, |r| r.revoke = Some((invoke, invoke, false)));
    let mut member = first;
    let mut revoker = None;
    for _ in 0..REVOKE_TRIES_MAX {
        let revoked = match connect(&urls[member]).await {
            Ok((mut lease, _)) => within(lease.lease_revoke(LeaseRevokeRequest { id })).await,
            Err(error) => Err(error),
        };
        trace.record("lease", "leaser", format!("revoke {id:x} → {revoked:?}"));
        let gone = revoked
            .as_ref()
            .is_err_and(|error| error.contains("requested lease not found"));
        if revoked.is_ok() || gone {
            revoker = Some(member);
            break;
        }
        madsim::time::sleep(Duration::from_millis(rng.random_range(100..1_000))).await;
        member = rng.random_range(0..urls.len());
    }
    recorder.update(index, |r| {
        r.revoke = Some((invoke, now_ns(), revoker.is_some()))
    });
    revoker
}

type Connection = (
    LeaseClient<tonic::transport::Channel>,
    KvClient<tonic::transport::Channel>,
);

/// Starts a [`HolderAfterRevoke`] of the lease at `index`, first through member `first`.
fn spawn_holder(
    urls: &[String],
    first: usize,
    index: usize,
    recorder: &LeaseRecorder,
    rng: &mut StdRng,
) {
    let holder = HolderAfterRevoke {
        urls: urls.to_vec(),
        first,
        index,
        recorder: recorder.clone(),
        rng: StdRng::seed_from_u64(rng.random()),
    };
    madsim::task::spawn(holder.keep_alive_for_a_while());
}

async fn lease_loop(seed: u64, member_urls: Vec<String>, recorder: LeaseRecorder, trace: Trace) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x1ea5e);
    let mut connection = None;
    // Indexes of leases still in play, with how many keep-alives each has left.
    let mut active: Vec<(usize, u32)> = Vec::new();
    let mut next_id = 0x1000;
    // Apart from `rng`, so that this loop's own draws stay what they were for every seed.
    let mut holder_rng = StdRng::seed_from_u64(seed ^ 0x0001_ea5e_401d);
    loop {
        madsim::time::sleep(Duration::from_millis(rng.random_range(100..800))).await;
        if connection.is_none() {
            let url = &member_urls[rng.random_range(0..member_urls.len())];
            connection = connect(url).await.ok();
        }
        let Some(connected) = connection.as_mut() else {
            continue;
        };
        let ok = if active.len() < 3 && rng.random_bool(0.4) {
            // Grant a lease and put one or two keys with it.
            let id = next_id;
            next_id += 1;
            let ttl = rng.random_range(2..=5);
            let keys = rng.random_range(1..=2);
            let (index, ok) = grant_with_keys(
                connected,
                &member_urls,
                seed,
                id,
                ttl,
                keys,
                &recorder,
                &trace,
            )
            .await;
            if ok {
                active.push((index, rng.random_range(0..6)));
            }
            ok
        } else if !active.is_empty() {
            let slot = rng.random_range(0..active.len());
            let (index, keep_alives_left) = active[slot];
            if keep_alives_left > 0 {
                active[slot].1 -= 1;
                keep_alive_recorded(&mut connected.0, index, &recorder).await
            } else {
                active.swap_remove(slot);
                if rng.random_bool(0.6) {
                    let acknowledged =
                        revoke_recorded(&mut connected.0, index, &recorder, &trace).await;
                    if acknowledged && rng.random_bool(0.5) {
                        // A keep-alive after an acknowledged revoke must find no lease.
                        keep_alive_recorded(&mut connected.0, index, &recorder).await;
                    }
                    if acknowledged {
                        let first = holder_rng.random_range(0..member_urls.len());
                        spawn_holder(&member_urls, first, index, &recorder, &mut holder_rng);
                    }
                    acknowledged
                } else {
                    true // left to expire
                }
            }
        } else {
            true
        };
        if !ok {
            connection = None;
        }
    }
}

/// Grant, a keep-alive or two, revoke, again and again (apart from `lease_loop`, whose draws it
/// leaves alone): each revoked lease is then kept alive by a [`HolderAfterRevoke`], so keep-alives
/// after acknowledged revokes reach every member, across leader changes and restarts.
async fn revoke_loop(
    seed: u64,
    first_id: i64,
    (ttl_min, ttl_max): (i64, i64),
    member_urls: Vec<String>,
    recorder: LeaseRecorder,
    trace: Trace,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0001_ea5e_0b0e ^ first_id as u64);
    let mut next_id = first_id;
    loop {
        madsim::time::sleep(Duration::from_millis(rng.random_range(100..1_000))).await;
        let member = rng.random_range(0..member_urls.len());
        let Ok(mut connected) = connect(&member_urls[member]).await else {
            continue;
        };
        let id = next_id;
        next_id += 1;
        let ttl = rng.random_range(ttl_min..=ttl_max);
        let (index, ok) = grant_with_keys(
            &mut connected,
            &member_urls,
            seed,
            id,
            ttl,
            1,
            &recorder,
            &trace,
        )
        .await;
        if !ok {
            continue;
        }
        // Held for up to a few seconds, so that faults strike between grant and revoke.
        for _ in 0..rng.random_range(0..=8) {
            madsim::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
            keep_alive_recorded(&mut connected.0, index, &recorder).await;
        }
        if let Some(revoker) =
            revoke_until_done(&member_urls, member, index, &recorder, &trace, &mut rng).await
        {
            let first = other_member(&mut rng, member_urls.len(), revoker);
            spawn_holder(&member_urls, first, index, &recorder, &mut rng);
        }
    }
}

/// When a member last reported a new leader (the trace's `leader` lines), in simulated ns.
fn last_leader_change_ns(trace: &Trace) -> Option<u64> {
    trace
        .events()
        .iter()
        .filter(|event| event.kind == "leader")
        .map(|event| event.t_ms * 1_000_000)
        .max()
}

/// After heal: waits until every lease must have expired, then reads `lease/` linearizably.
pub async fn read_after_heal(
    urls: &[String],
    recorder: &LeaseRecorder,
    election_timeout_ms: u64,
    trace: &Trace,
) -> LeaseHistory {
    let leases = recorder.all();
    let heal_ns = now_ns();
    let last_activity_ns = leases
        .iter()
        .flat_map(|l| {
            [l.grant_complete_ns]
                .into_iter()
                .chain(l.keep_alives.iter().map(|k| k.1))
        })
        .max()
        .unwrap_or(0)
        .max(heal_ns);
    // A lease whose revoke was acknowledged is gone whatever its TTL.
    let ttl_max = leases
        .iter()
        .filter(|l| !l.revoke.is_some_and(|r| r.2))
        .map(|l| l.granted_ttl_s.unwrap_or(0).max(l.requested_ttl_s))
        .max()
        .unwrap_or(0);
    // A new leader restarts every lease it promotes (etcd: remaining TTL + an election
    // timeout), so a leader change after the last activity moves every expiry later: wait again
    // while the leaders the members report keep changing (a few times at most).
    let mut since_ns = last_activity_ns;
    for _ in 0..4 {
        let expired_by = Duration::from_nanos(since_ns)
            + Duration::from_secs(ttl_max as u64)
            + Duration::from_millis(election_timeout_ms)
            + EXPIRY_MARGIN;
        let wait = expired_by.saturating_sub(Duration::from_nanos(now_ns()));
        madsim::time::sleep(wait + Duration::from_millis(100)).await;
        match last_leader_change_ns(trace) {
            Some(changed_ns) if changed_ns > since_ns => since_ns = changed_ns,
            _ => break,
        }
    }
    let mut history = LeaseHistory {
        leases,
        heal_ns,
        election_timeout_ms,
        ..LeaseHistory::default()
    };
    history.leader_change_ns = last_leader_change_ns(trace).unwrap_or(0);
    for attempt in 0..20 {
        let url = &urls[attempt % urls.len()];
        let Ok((_, mut kv)) = connect(url).await else {
            continue;
        };
        let read = within(kv.range(RangeRequest {
            key: LEASE_PREFIX.into(),
            range_end: LEASE_PREFIX_END.into(),
            ..Default::default()
        }))
        .await;
        if let Ok(read) = read {
            history.read_ns = Some(now_ns());
            history.live_keys = read
                .kvs
                .iter()
                .map(|kv| {
                    (
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        String::from_utf8_lossy(&kv.value).into_owned(),
                        kv.lease,
                    )
                })
                .collect();
            trace.record(
                "check",
                "",
                format!("lease keys left after expiry: {}", history.live_keys.len()),
            );
            break;
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    history
}
