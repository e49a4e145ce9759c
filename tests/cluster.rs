//! Three real detcd processes on loopback, started the way an operator starts an etcd cluster,
//! under the faults a cluster must survive: a leader SIGKILLed under load, membership changes
//! under load, and a member cut off from the majority.
#![cfg(not(madsim))]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{etcdctl, stdout, Cluster, MemberSpec, Server};
use etcd_client::{Client, GetOptions};

/// Fast elections so failover takes well under a second.
const FAST: &[&str] = &["--heartbeat-interval=50", "--election-timeout=500"];

type Acked = Arc<Mutex<Vec<(String, i64)>>>;

/// Starts one writer per endpoint putting distinct keys until `stop`; acknowledged puts (key,
/// revision) go to `acked`. Failed puts are indeterminate and are not retried.
fn start_writers(
    endpoints: Vec<String>,
    acked: Acked,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    endpoints
        .into_iter()
        .enumerate()
        .map(|(writer, endpoint)| {
            let (acked, stop) = (acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut client = None;
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if client.is_none() {
                        client = Client::connect([endpoint.clone()], None).await.ok();
                    }
                    let Some(c) = client.as_mut() else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let key = format!("w{writer}-{i:06}");
                    let put = tokio::time::timeout(
                        Duration::from_secs(3),
                        c.put(key.as_str(), "v", None),
                    )
                    .await;
                    match put {
                        Ok(Ok(response)) => {
                            let revision = response.header().unwrap().revision();
                            acked.lock().unwrap().push((key, revision));
                        }
                        _ => {
                            client = None;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

async fn wait_for_acks(acked: &Acked, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "writes stalled at {}",
            acked.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every running member reaches the same HashKV at the same revision, within 20 s.
async fn assert_converged(cluster: &Cluster) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = BTreeMap::new();
        for (spec, node) in cluster.specs.iter().zip(&cluster.nodes) {
            if node.is_none() {
                continue;
            }
            let Ok(mut client) = Client::connect([spec.endpoint()], None).await else {
                continue;
            };
            if let Ok(status) = client.hash_kv(0).await {
                let revision = status.header().unwrap().revision();
                seen.insert(spec.name.clone(), (revision, status.hash()));
            }
        }
        let running = cluster.nodes.iter().filter(|n| n.is_some()).count();
        let distinct: std::collections::BTreeSet<_> = seen.values().collect();
        if seen.len() == running && distinct.len() == 1 {
            return seen.values().next().unwrap().0;
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn assert_all_acked_present(endpoint: &str, acked: &[(String, i64)]) {
    let mut client = Client::connect([endpoint.to_string()], None).await.unwrap();
    let all = client
        .get("w", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let stored: BTreeMap<String, i64> = all
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.mod_revision()))
        .collect();
    for (key, revision) in acked {
        assert_eq!(
            stored.get(key),
            Some(revision),
            "acknowledged put {key}@{revision} is missing or moved"
        );
    }
}

/// Acceptance: writes through every member; SIGKILL of the leader mid-load gives a new leader
/// within a few election timeouts and loses no acknowledged write; the killed member restarts
/// and converges to the same HashKV at the same revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_leader_loses_no_acknowledged_write_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(Server::Detcd, dir.path(), 3, FAST);
    let endpoints: Vec<String> = cluster
        .specs
        .iter()
        .map(|s| format!("http://{}", s.endpoint()))
        .collect();
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(endpoints, acked.clone(), stop.clone());
    wait_for_acks(&acked, 300).await;
    let per_writer: std::collections::BTreeSet<String> = acked
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k[..2].to_string())
        .collect();
    assert_eq!(per_writer.len(), 3, "every member accepted writes");

    let leader = cluster.leader().expect("a leader");
    let killed_at = Instant::now();
    cluster.nodes[leader]
        .as_mut()
        .unwrap()
        .signal_and_wait("KILL");
    cluster.nodes[leader] = None;
    let new_leader = loop {
        if let Some(new_leader) = cluster.leader() {
            break new_leader;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(5),
            "no new leader 5 s after the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(new_leader, leader);
    let failover = killed_at.elapsed();
    let acked_before = acked.lock().unwrap().len();
    wait_for_acks(&acked, acked_before + 300).await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }

    cluster.restart(leader);
    let revision = assert_converged(&cluster).await;
    let acked = acked.lock().unwrap().clone();
    assert!(revision > acked.len() as i64);
    for spec in &cluster.specs {
        assert_all_acked_present(&spec.endpoint(), &acked).await;
    }
    eprintln!(
        "failover took {failover:?}; {} acknowledged writes all present",
        acked.len()
    );
}

/// Acceptance: a member is removed and a new one added while writes continue; with a small
/// --snapshot-count the new member catches up from a snapshot and converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_catches_up_from_a_snapshot_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--snapshot-count=50",
    ];
    let mut cluster = Cluster::start(Server::Detcd, dir.path(), 3, &extra);
    let leader = cluster.leader().expect("a leader");
    let removed = (leader + 1) % 3;
    let stayer = (leader + 2) % 3;
    let endpoints = vec![
        format!("http://{}", cluster.specs[leader].endpoint()),
        format!("http://{}", cluster.specs[stayer].endpoint()),
    ];
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(endpoints, acked.clone(), stop.clone());
    wait_for_acks(&acked, 200).await;

    let list = stdout(&etcdctl(
        &cluster.specs[leader].endpoint(),
        &["member", "list"],
    ));
    let removed_id = list
        .lines()
        .find(|line| line.contains(&format!(", {}, ", cluster.specs[removed].name)))
        .and_then(|line| line.split(',').next())
        .unwrap()
        .to_string();
    let out = stdout(&etcdctl(
        &cluster.specs[leader].endpoint(),
        &["member", "remove", &removed_id],
    ));
    assert!(
        // etcdctl pads ids to 16 characters with spaces.
        out.contains(&format!("{removed_id} removed from cluster")),
        "{out}"
    );
    let status = cluster.nodes[removed]
        .as_mut()
        .unwrap()
        .wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "a removed member stops with an error");
    cluster.nodes[removed] = None;

    let newcomer = MemberSpec::new(dir.path(), "n4");
    let out = stdout(&etcdctl(
        &cluster.specs[leader].endpoint(),
        &[
            "member",
            "add",
            "n4",
            &format!("--peer-urls={}", newcomer.peer_url()),
        ],
    ));
    assert!(
        out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{out}"
    );
    let so_far = acked.lock().unwrap().len();
    wait_for_acks(&acked, so_far + 200).await;
    let mut initial: Vec<MemberSpec> = cluster.specs.clone();
    initial.remove(removed);
    initial.push(newcomer.clone());
    let mut node = newcomer.spawn(Server::Detcd, &initial, "existing", &extra);
    node.wait_healthy();
    cluster.specs[removed] = newcomer;
    cluster.nodes[removed] = Some(node);
    let so_far = acked.lock().unwrap().len();
    wait_for_acks(&acked, so_far + 100).await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }

    assert_converged(&cluster).await;
    let log = cluster.nodes[removed].as_ref().unwrap().log_text();
    assert!(
        log.contains("installing snapshot from leader"),
        "the new member caught up without a snapshot:\n{log}"
    );
    let acked = acked.lock().unwrap().clone();
    assert_all_acked_present(&cluster.specs[removed].endpoint(), &acked).await;
}

/// Acceptance: a member cut off from the majority (its peers stopped) never answers a
/// linearizable read with stale data: it fails within the request timeout, while a serializable
/// read still answers from local state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_member_serves_no_stale_linearizable_read() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(Server::Detcd, dir.path(), 3, FAST);
    let leader = cluster.leader().expect("a leader");
    let isolated = (leader + 1) % 3;
    let endpoint = cluster.specs[leader].endpoint();
    stdout(&etcdctl(&endpoint, &["put", "k", "old"]));
    // Let the soon-isolated member see "old", then freeze it and write "new" through the rest.
    stdout(&etcdctl(&cluster.specs[isolated].endpoint(), &["get", "k"]));
    let signal = |node: &common::Node, signal: &str| {
        assert!(std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(node.pid().to_string())
            .status()
            .unwrap()
            .success());
    };
    signal(cluster.nodes[isolated].as_ref().unwrap(), "STOP");
    stdout(&etcdctl(&endpoint, &["put", "k", "new"]));
    // Now freeze the majority and wake the member that missed the write (as far as it has read).
    for i in 0..3 {
        if i != isolated {
            signal(cluster.nodes[i].as_ref().unwrap(), "STOP");
        }
    }
    signal(cluster.nodes[isolated].as_ref().unwrap(), "CONT");

    let started = Instant::now();
    let output = common::etcdctl_with_stdin(
        &cluster.specs[isolated].endpoint(),
        &["get", "k", "--print-value-only", "--command-timeout=15s"],
        "",
    );
    let took = started.elapsed();
    let stdout_text = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr_text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "a minority member answered a linearizable read: {stdout_text}"
    );
    assert!(
        !stdout_text.contains("old"),
        "stale read served: {stdout_text}"
    );
    assert!(
        stderr_text.contains("etcdserver: no leader")
            || stderr_text.contains("etcdserver: request timed out")
            || stderr_text.contains("etcdserver: leader changed"),
        "{stderr_text}"
    );
    // The request timeout is 5 s + 2 × the election timeout.
    assert!(
        took < Duration::from_secs(7),
        "the read took {took:?} to fail"
    );
    let serializable = stdout(&etcdctl(
        &cluster.specs[isolated].endpoint(),
        &["get", "k", "--print-value-only", "--consistency=s"],
    ));
    // Local state, without a leader: "old", or "new" if the leader's append and commit reached
    // the stopped member's socket before the leader stopped too (read once it woke).
    assert!(
        ["old\n", "new\n"].contains(&serializable.as_str()),
        "a serializable read answers from local state: {serializable:?}"
    );

    for i in 0..3 {
        if i != isolated {
            signal(cluster.nodes[i].as_ref().unwrap(), "CONT");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = etcdctl(
            &cluster.specs[isolated].endpoint(),
            &["get", "k", "--print-value-only"],
        );
        if output.status.success() {
            assert_eq!(String::from_utf8_lossy(&output.stdout), "new\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the healed member never served the read"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A member configured into the wrong cluster (another --initial-cluster-token) is refused by
/// the real cluster's members with a clear error, and the real cluster is unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_is_rejected_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(Server::Detcd, dir.path(), 3, FAST);
    let stranger = MemberSpec::new(dir.path(), "stranger");
    let mut initial = vec![stranger.clone()];
    initial.push(cluster.specs[0].clone());
    let mut command = stranger.command(Server::Detcd, &initial, "new", FAST);
    command.arg("--initial-cluster-token=some-other-cluster");
    let log = dir.path().join("stranger.log");
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _stranger = common::Node {
        child: Some(child),
        client_port: stranger.client_port,
        data_dir: stranger.data_dir.clone(),
        log: log.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("peer rejected this member") {
            assert!(text.contains("cluster ID mismatch"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no clear error in the stranger's log:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = stdout(&etcdctl(
        &cluster.specs[0].endpoint(),
        &["put", "still", "fine"],
    ));
    assert_eq!(out, "OK\n");
}

/// Keep-alives and time-to-live sent to a follower are answered by the leader (which alone holds
/// expiry times), as etcd forwards them.
#[test]
fn a_follower_forwards_lease_keep_alives_and_time_to_live_to_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(Server::Detcd, dir.path(), 3, FAST);
    let leader = cluster.leader().expect("a leader");
    let follower = cluster.specs[(leader + 1) % 3].endpoint();
    let granted = stdout(&etcdctl(
        &cluster.specs[leader].endpoint(),
        &["lease", "grant", "100"],
    ));
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    stdout(&etcdctl(
        &follower,
        &["put", "held", "v", &format!("--lease={id}")],
    ));

    let kept = stdout(&etcdctl(&follower, &["lease", "keep-alive", "--once", &id]));
    assert!(
        kept.contains(&format!("{id} keepalived with TTL(100)")),
        "{kept}"
    );
    let ttl = stdout(&etcdctl(&follower, &["lease", "timetolive", "--keys", &id]));
    assert!(
        ttl.contains("granted with TTL(100s)") && ttl.contains("attached keys([held])"),
        "{ttl}"
    );
}
