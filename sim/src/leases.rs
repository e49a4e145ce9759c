//! The `lease` workload: one client node grants short leases (TTL 2–5 s), puts keys under
//! `lease/` with them, and then keeps some alive for a while, revokes some (and sometimes tries a
//! keep-alive after the revoke), and lets the rest expire. After heal, once every lease must have
//! run out, one linearizable read of `lease/` shows which keys outlived their lease
//! (`lease_safety`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::lease_client::LeaseClient;
use detcd::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
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

/// The lease client's records.
pub type LeaseRecorder = Recorded<LeaseRecord>;

pub fn start(
    options: &SwarmOptions,
    member_urls: &[String],
    recorder: &LeaseRecorder,
    trace: &Trace,
) -> (NodeHandle, madsim::task::JoinHandle<()>) {
    let node = Handle::current()
        .create_node()
        .name("leaser")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 4, 1)))
        .build();
    let task = node.spawn(lease_loop(
        options.seed,
        member_urls.to_vec(),
        recorder.clone(),
        trace.clone(),
    ));
    (node, task)
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

async fn connect(
    url: &str,
) -> Result<
    (
        LeaseClient<tonic::transport::Channel>,
        KvClient<tonic::transport::Channel>,
    ),
    String,
> {
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

async fn lease_loop(seed: u64, member_urls: Vec<String>, recorder: LeaseRecorder, trace: Trace) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x1ea5e);
    let mut connection = None;
    // Indexes of leases still in play, with how many keep-alives each has left.
    let mut active: Vec<(usize, u32)> = Vec::new();
    let mut next_id = 0x1000;
    loop {
        madsim::time::sleep(Duration::from_millis(rng.random_range(100..800))).await;
        if connection.is_none() {
            let url = &member_urls[rng.random_range(0..member_urls.len())];
            connection = connect(url).await.ok();
        }
        let Some((lease, kv)) = connection.as_mut() else {
            continue;
        };
        let ok = if active.len() < 3 && rng.random_bool(0.4) {
            // Grant a lease and put one or two keys with it.
            let id = next_id;
            next_id += 1;
            let ttl = rng.random_range(2..=5);
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
            });
            trace.record(
                "lease",
                "leaser",
                format!("grant {id:x} ttl {ttl}s → {granted:?}"),
            );
            let mut ok = granted.is_ok();
            if ok {
                for j in 0..rng.random_range(1..=2) {
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
                active.push((index, rng.random_range(0..6)));
            }
            ok
        } else if !active.is_empty() {
            let slot = rng.random_range(0..active.len());
            let (index, keep_alives_left) = active[slot];
            let id = recorder.get(index).id;
            if keep_alives_left > 0 {
                active[slot].1 -= 1;
                let invoke = now_ns();
                let answer = keep_alive(lease, id).await;
                if let Ok(ttl) = answer {
                    recorder.update(index, |r| r.keep_alives.push((invoke, now_ns(), ttl)));
                }
                answer.is_ok()
            } else {
                active.swap_remove(slot);
                if rng.random_bool(0.6) {
                    let invoke = now_ns();
                    let revoked = within(lease.lease_revoke(LeaseRevokeRequest { id })).await;
                    trace.record("lease", "leaser", format!("revoke {id:x} → {revoked:?}"));
                    let acknowledged = revoked.is_ok();
                    recorder.update(index, |r| r.revoke = Some((invoke, now_ns(), acknowledged)));
                    if acknowledged && rng.random_bool(0.5) {
                        // A keep-alive after an acknowledged revoke must find no lease.
                        let invoke = now_ns();
                        if let Ok(ttl) = keep_alive(lease, id).await {
                            recorder.update(index, |r| r.keep_alives.push((invoke, now_ns(), ttl)));
                        }
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
    let ttl_max = leases
        .iter()
        .map(|l| l.granted_ttl_s.unwrap_or(0).max(l.requested_ttl_s))
        .max()
        .unwrap_or(0);
    let expired_by = Duration::from_nanos(last_activity_ns)
        + Duration::from_secs(ttl_max as u64)
        + Duration::from_millis(election_timeout_ms)
        + EXPIRY_MARGIN;
    let wait = expired_by.saturating_sub(Duration::from_nanos(now_ns()));
    madsim::time::sleep(wait + Duration::from_millis(100)).await;
    let mut history = LeaseHistory {
        leases,
        heal_ns,
        election_timeout_ms,
        ..LeaseHistory::default()
    };
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
