//! Leases end to end, on the real binary: etcdctl's lease commands print the same for detcd as for
//! etcd 3.4; keys on a lease vanish when it expires or is revoked (all in one revision); leases
//! and their keys survive a restart; and the lock pattern clients build on leases gives mutual
//! exclusion and frees the lock of a holder that crashed.
#![cfg(not(madsim))]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    assert_same_session, drop_client_logs, etcdctl, mask_ids, mask_numbers_after, stdout, Node,
};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaseTimeToLiveOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse,
};

/// One etcdctl call of the session. `{1}`, `{2}`, ... stand for the hex id of the first, second,
/// ... lease the session granted.
type Step = &'static [&'static str];

const SESSION: &[Step] = &[
    &["lease", "grant", "1000"],
    &["put", "--lease={1}", "foo", "bar"],
    &["put", "--lease={1}", "foo2", "bar2"],
    &["put", "foo3", "bar3"],
    &["lease", "timetolive", "{1}"],
    &["lease", "timetolive", "--keys", "{1}"],
    &["lease", "timetolive", "--keys", "{1}", "-w", "json"],
    &["lease", "keep-alive", "--once", "{1}"],
    &["lease", "list"],
    &["lease", "grant", "2000", "-w", "json"],
    &["lease", "list"],
    &["put", "--lease={2}", "foo2", "moved"],
    &["put", "foo", "detached"],
    &["lease", "timetolive", "--keys", "{1}"],
    &["put", "--lease={2}", "foo3", "x"],
    &["put", "--ignore-lease", "foo3", "y"],
    &["get", "foo", "--prefix", "-w", "json"],
    &["put", "--lease={2}", "foo4", "z"],
    &["del", "foo4"],
    &["lease", "timetolive", "--keys", "{2}"],
    &["lease", "revoke", "{2}"],
    &["get", "foo", "--prefix", "-w", "json"],
    &["lease", "revoke", "{2}"],
    &["lease", "timetolive", "{2}"],
    &["lease", "timetolive", "{2}", "-w", "json"],
    &["lease", "keep-alive", "--once", "{2}"],
    &["put", "--lease={2}", "foo", "nope"],
    &["put", "--lease=123", "foo", "nope"],
    &["lease", "grant", "9000000001"],
    &["lease", "revoke", "{1}"],
    &["lease", "list"],
    // Last: a TTL below the minimum is raised to it (2 s with the default election timeout).
    &["lease", "grant", "1", "-w", "json"],
];

/// Runs the session; each step's exit status, stdout and stderr, with lease and member ids
/// replaced by their role and remaining TTLs rounded (they depend on how fast etcdctl runs).
fn transcript(node: &Node) -> Vec<String> {
    let mut leases: Vec<i64> = Vec::new();
    let mut lines = Vec::new();
    for step in SESSION {
        let args: Vec<String> = step
            .iter()
            .map(|arg| {
                leases
                    .iter()
                    .enumerate()
                    .fold(arg.to_string(), |arg, (i, id)| {
                        arg.replace(&format!("{{{}}}", i + 1), &format!("{id:x}"))
                    })
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = etcdctl(&node.endpoint(), &args);
        let (out, err) = (
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        );
        if step[..2] == ["lease", "grant"] && output.status.success() {
            leases.push(granted_lease_id(&out));
        }
        let text = format!(
            "$ etcdctl {}\nexit: {:?}\n{out}{}",
            step.join(" "),
            output.status.code(),
            drop_client_logs(&err)
        );
        lines.push(sort_key_lists(&round_remaining_ttls(&mask(&text, &leases))));
    }
    lines
}

/// The id in `lease 694d7b7d8b2bc10a granted with TTL(60s)` or in `"ID":7587862...`.
fn granted_lease_id(out: &str) -> i64 {
    if let Some(hex) = out.strip_prefix("lease ") {
        let hex = hex.split_whitespace().next().unwrap();
        return i64::from_str_radix(hex, 16).unwrap();
    }
    let decimal = out.split("\"ID\":").nth(1).expect("grant prints an id");
    let digits: String = decimal.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// Lease ids (hex and decimal) become `<lease N>`; cluster and member ids `<id>`.
fn mask(text: &str, leases: &[i64]) -> String {
    let mut text = text.to_string();
    for (i, id) in leases.iter().enumerate() {
        text = text
            // etcdctl prints lease ids as %016x.
            .replace(&format!("{id:016x}"), &format!("<lease {}>", i + 1))
            .replace(&id.to_string(), &format!("<lease {}>", i + 1));
    }
    mask_ids(&text)
}

/// etcd lists a lease's keys in Go map order, which is random; detcd sorts them. Compare sets.
fn sort_key_lists(text: &str) -> String {
    let mut text = text.to_string();
    for (open, close, separator) in [("attached keys([", "])", " "), ("\"keys\":[", "]", ",")] {
        if let Some(start) = text.find(open).map(|i| i + open.len()) {
            let end = start + text[start..].find(close).unwrap();
            let mut keys: Vec<&str> = text[start..end].split(separator).collect();
            keys.sort();
            text = format!("{}{}{}", &text[..start], keys.join(separator), &text[end..]);
        }
    }
    text
}

/// `remaining(998s)` / `"ttl":998`: within 10 s of a round TTL is that TTL.
fn round_remaining_ttls(text: &str) -> String {
    mask_numbers_after(text, &["remaining(", "\"ttl\":"], |digits| {
        let Ok(n) = digits.parse::<i64>() else {
            return digits.to_string();
        };
        let rounded = (n + 9) / 10 * 10;
        if rounded - n <= 10 && n >= 100 {
            format!("~{rounded}")
        } else {
            n.to_string()
        }
    })
}

#[test]
fn etcdctl_lease_commands_print_the_same_for_detcd_as_for_etcd_3_4() {
    let dir = tempfile::tempdir().unwrap();
    assert_same_session(dir.path(), transcript);
}

#[test]
fn masking_keeps_everything_but_ids_and_jitter() {
    assert_eq!(
        mask(
            "lease 000000000000001f granted, {\"ID\":31,\"member_id\":45}",
            &[31]
        ),
        "lease <lease 1> granted, {\"ID\":<lease 1>,\"member_id\":<id>}"
    );
    assert_eq!(
        sort_key_lists("attached keys([b a]) {\"keys\":[\"Yg==\",\"YQ==\"]}"),
        "attached keys([a b]) {\"keys\":[\"YQ==\",\"Yg==\"]}"
    );
    assert_eq!(
        round_remaining_ttls("TTL(1000s), remaining(998s) {\"ttl\":1,\"ttl\":-1}"),
        "TTL(1000s), remaining(~1000s) {\"ttl\":1,\"ttl\":-1}"
    );
}

/// Polls `get key` until it finds nothing; returns how long that took.
fn wait_until_gone(node: &Node, key: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if stdout(&node.etcdctl(&["get", key])).is_empty() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{key} still there after {timeout:?}");
}

fn grant(node: &Node, ttl: &str) -> String {
    let out = stdout(&node.etcdctl(&["lease", "grant", ttl]));
    out.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn a_key_on_a_two_second_lease_disappears_when_the_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n1.etcd"), &[]);
    let lease = grant(&node, "2");
    let granted = Instant::now();
    stdout(&node.etcdctl(&["put", "--lease", &lease, "ephemeral", "v"]));
    stdout(&node.etcdctl(&["put", "durable", "v"]));
    wait_until_gone(&node, "ephemeral", Duration::from_secs(10));
    let lived = granted.elapsed();
    assert!(lived >= Duration::from_secs(2), "expired early: {lived:?}");
    // The leader looks for expired leases every 500 ms; the revoke takes one more round trip.
    assert!(lived < Duration::from_secs(4), "expired late: {lived:?}");
    assert_eq!(
        stdout(&node.etcdctl(&["get", "durable", "--print-value-only"])),
        "v\n"
    );
    assert_eq!(
        stdout(&node.etcdctl(&["lease", "timetolive", &lease])),
        format!("lease {lease} already expired\n")
    );
    assert_eq!(
        stdout(&node.etcdctl(&["lease", "list"])),
        "found 0 leases\n"
    );
}

#[test]
fn keep_alives_hold_a_lease_past_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n1.etcd"), &[]);
    let lease = grant(&node, "2");
    stdout(&node.etcdctl(&["put", "--lease", &lease, "k", "v"]));
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        let out = stdout(&node.etcdctl(&["lease", "keep-alive", "--once", &lease]));
        assert_eq!(out, format!("lease {lease} keepalived with TTL(2)\n"));
    }
    assert_eq!(
        stdout(&node.etcdctl(&["get", "k", "--print-value-only"])),
        "v\n"
    );
    wait_until_gone(&node, "k", Duration::from_secs(10));
}

/// The same checks on etcd 3.4 and on detcd: the revoke's deletes share one revision, keys moved
/// to another lease or off leases stay.
async fn revoke_deletes_attached_keys_in_one_revision(node: &Node) {
    let mut client = Client::connect([node.url()], None).await.unwrap();
    let lease = client.lease_grant(100, None).await.unwrap().id();
    let other = client.lease_grant(100, None).await.unwrap().id();
    for key in ["a", "b", "c", "d"] {
        let options = PutOptions::new().with_lease(lease);
        client.put(key, "v", Some(options)).await.unwrap();
    }
    client.put("b", "off-lease", None).await.unwrap();
    let options = PutOptions::new().with_lease(other);
    client.put("c", "other-lease", Some(options)).await.unwrap();
    let options = PutOptions::new().with_ignore_lease();
    client.put("d", "kept", Some(options)).await.unwrap();
    let ttl = client
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    // etcd lists a lease's keys in Go map order (random); detcd sorts them. Compare as sets.
    let mut keys = ttl.keys().to_vec();
    keys.sort();
    assert_eq!(keys, [b"a".to_vec(), b"d".to_vec()]);
    assert_eq!(ttl.granted_ttl(), 100);

    let before = client
        .get("a", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let revoked = client.lease_revoke(lease).await.unwrap();
    assert_eq!(revoked.header().unwrap().revision(), before + 1);
    let all = client
        .get("", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    let left: Vec<(&[u8], &[u8])> = all.kvs().iter().map(|kv| (kv.key(), kv.value())).collect();
    assert_eq!(
        left,
        [(&b"b"[..], &b"off-lease"[..]), (b"c", b"other-lease")]
    );
    let error = client.lease_revoke(lease).await.unwrap_err();
    assert_status(error, "NotFound", "etcdserver: requested lease not found");
    let ttl = client.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!((ttl.ttl(), ttl.granted_ttl()), (-1, 0));

    let options = etcd_client::LeaseGrantOptions::new().with_id(other);
    let error = client.lease_grant(100, Some(options)).await.unwrap_err();
    assert_status(
        error,
        "FailedPrecondition",
        "etcdserver: lease already exists",
    );
    let options = etcd_client::LeaseGrantOptions::new().with_id(4242);
    let granted = client.lease_grant(1, Some(options)).await.unwrap();
    assert_eq!((granted.id(), granted.ttl()), (4242, 2));
}

fn assert_status(error: etcd_client::Error, code: &str, message: &str) {
    let etcd_client::Error::GRpcStatus(status) = error else {
        panic!("not a gRPC status: {error:?}");
    };
    assert_eq!(
        (format!("{:?}", status.code()), status.message()),
        (code.to_string(), message)
    );
}

#[tokio::test]
async fn revoke_deletes_attached_keys_in_one_revision_on_etcd_and_detcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Node::start_real_etcd(&dir.path().join("etcd"));
    revoke_deletes_attached_keys_in_one_revision(&etcd).await;
    drop(etcd);
    let detcd = Node::start(&dir.path().join("detcd"), &[]);
    revoke_deletes_attached_keys_in_one_revision(&detcd).await;
}

fn restart(node: Node, signal: &str) -> Node {
    let mut node = node;
    node.signal_and_wait(signal);
    let (data_dir, port) = (node.data_dir.clone(), node.client_port);
    drop(node);
    Node::start_on(&data_dir, port, &[])
}

#[test]
fn leases_and_their_keys_survive_a_restart_and_still_expire_after() {
    for signal in ["INT", "KILL"] {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(&dir.path().join("n1.etcd"), &[]);
        let long = grant(&node, "100");
        let short = grant(&node, "3");
        let revoked = grant(&node, "100");
        stdout(&node.etcdctl(&["put", "--lease", &long, "long", "v"]));
        stdout(&node.etcdctl(&["put", "--lease", &short, "short", "v"]));
        stdout(&node.etcdctl(&["put", "--lease", &revoked, "revoked", "v"]));
        stdout(&node.etcdctl(&["lease", "revoke", &revoked]));

        let node = restart(node, signal);
        let restarted = Instant::now();
        let ttl = stdout(&node.etcdctl(&["lease", "timetolive", "--keys", &long]));
        assert!(
            ttl.starts_with(&format!(
                "lease {long} granted with TTL(100s), remaining(10"
            )) && ttl.ends_with("attached keys([long])\n"),
            "{signal}: {ttl}"
        );
        assert_eq!(stdout(&node.etcdctl(&["get", "revoked"])), "");
        assert_eq!(
            stdout(&node.etcdctl(&["get", "short", "--print-value-only"])),
            "v\n"
        );
        // A restart gives each lease its TTL again plus an election timeout (1 s), as a new
        // leader does, and then it expires as usual.
        wait_until_gone(&node, "short", Duration::from_secs(10));
        let lived = restarted.elapsed();
        assert!(
            lived >= Duration::from_secs(3),
            "{signal}: expired early: {lived:?}"
        );
        let list = stdout(&node.etcdctl(&["lease", "list"]));
        assert_eq!(list, format!("found 1 leases\n{long}\n"), "{signal}");
    }
}

/// Holder intervals of a lock, to check they never overlap.
type Intervals = Arc<Mutex<Vec<(Instant, Instant, i64)>>>;

const LOCK_PREFIX: &str = "lock/";

/// etcd's `concurrency.Mutex` without Watch: put our own key under the prefix if it is absent
/// (create_revision == 0), then wait until it has the lowest create_revision under the prefix.
async fn acquire(client: &mut Client, lease: i64) -> String {
    let key = format!("{LOCK_PREFIX}{lease:x}");
    let mine = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
    let put = TxnOp::put(key.clone(), "", Some(PutOptions::new().with_lease(lease)));
    let get = TxnOp::get(key.clone(), None);
    let created = client
        .txn(Txn::new().when([mine]).and_then([put]).or_else([get]))
        .await
        .unwrap();
    let my_revision = match &created.op_responses()[0] {
        TxnOpResponse::Put(put) => put.header().unwrap().revision(),
        TxnOpResponse::Get(get) => get.kvs()[0].create_revision(),
        other => panic!("unexpected {other:?}"),
    };
    loop {
        let first = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend)
            .with_limit(1);
        let oldest = client.get(LOCK_PREFIX, Some(first)).await.unwrap();
        let oldest = oldest.kvs()[0].create_revision();
        assert!(oldest <= my_revision, "our key is under the prefix");
        if oldest == my_revision {
            return key;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that takes the lock `rounds` times, each time incrementing a counter by read and
/// write (which loses updates unless the lock excludes), and keeps its lease alive meanwhile.
async fn contender(url: String, rounds: usize, intervals: Intervals) {
    let mut client = Client::connect([url], None).await.unwrap();
    let lease = client.lease_grant(2, None).await.unwrap().id();
    let (mut keeper, mut answers) = client.lease_keep_alive(lease).await.unwrap();
    let keep_alive = tokio::spawn(async move {
        loop {
            keeper.keep_alive().await.unwrap();
            answers.message().await.unwrap().unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    for _ in 0..rounds {
        let key = acquire(&mut client, lease).await;
        let start = Instant::now();
        let counter = client.get("counter", None).await.unwrap();
        let value: u64 = counter
            .kvs()
            .first()
            .map_or(0, |kv| kv.value_str().unwrap().parse().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
        client
            .put("counter", (value + 1).to_string(), None)
            .await
            .unwrap();
        let end = Instant::now();
        intervals.lock().unwrap().push((start, end, lease));
        client.delete(key, None).await.unwrap();
    }
    keep_alive.abort();
    client.lease_revoke(lease).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_based_lock_excludes_and_a_crashed_holders_lock_frees_on_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n1.etcd"), &[]);
    let intervals: Intervals = Arc::default();
    let (contenders, rounds) = (4, 5);
    let tasks: Vec<_> = (0..contenders)
        .map(|_| tokio::spawn(contender(node.url(), rounds, intervals.clone())))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut intervals = intervals.lock().unwrap().clone();
    assert_eq!(intervals.len(), contenders * rounds);
    intervals.sort();
    for pair in intervals.windows(2) {
        let ((_, end, holder), (start, _, next)) = (pair[0], pair[1]);
        assert!(
            end <= start,
            "lease {holder:x} and {next:x} held the lock at once"
        );
    }
    let mut client = Client::connect([node.url()], None).await.unwrap();
    let counter = client.get("counter", None).await.unwrap();
    assert_eq!(
        counter.kvs()[0].value_str().unwrap(),
        (contenders * rounds).to_string()
    );

    // A holder that crashes (stops renewing, never deletes its key) loses the lock when its
    // lease expires: the next contender gets it after about the TTL, not never.
    let crashed = client.lease_grant(2, None).await.unwrap().id();
    acquire(&mut client, crashed).await;
    let crashed_at = Instant::now();
    let waiter = client.lease_grant(30, None).await.unwrap().id();
    let key = tokio::time::timeout(Duration::from_secs(10), acquire(&mut client, waiter))
        .await
        .expect("the crashed holder's lock is released by its lease's expiry");
    let waited = crashed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "taken over too soon: {waited:?}"
    );
    let holders = client
        .get(LOCK_PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let holders: Vec<&[u8]> = holders.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(holders, [key.as_bytes()]);
}
