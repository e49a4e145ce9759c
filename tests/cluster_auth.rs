//! Auth state is replicated: three real detcd members agree on users, roles and permissions,
//! and keep agreeing after a restart and after a member catches up from a snapshot; a watch
//! whose read permission is revoked stops delivering.
#![cfg(not(madsim))]

mod common;

use std::time::Duration;

use common::{answer, etcdctl, Cluster, Node, Server};
use etcd_client::{Client, ConnectOptions};

/// Fast elections; snapshots (and log compaction) every 20 entries, so a member that misses a
/// few dozen writes must catch up from a snapshot.
const EXTRA: &[&str] = &[
    "--heartbeat-interval=50",
    "--election-timeout=500",
    "--snapshot-count=20",
    // Every `etcdctl --user` call authenticates, a bcrypt check on the member: the cheapest cost
    // keeps the same code path without a CPU-heavy step per call on a loaded 2-core machine.
    "--bcrypt-cost=4",
];

/// What each member answers about the auth state, read on that member alone.
fn auth_view(endpoint: &str) -> Vec<String> {
    vec![
        answer(endpoint, &["--user", "root:rootpw", "user", "list"]),
        answer(
            endpoint,
            &["--user", "root:rootpw", "role", "get", "reader"],
        ),
        answer(endpoint, &["--user", "root:rootpw", "user", "get", "alice"]),
        answer(endpoint, &["--user", "alice:alicepw", "get", "/a"]),
        answer(endpoint, &["--user", "alice:alicepw", "put", "/a", "x"]),
        answer(endpoint, &["get", "/a"]),
    ]
}

fn assert_all_members_see(cluster: &Cluster, expected: &[&str]) {
    for spec in &cluster.specs {
        assert_eq!(
            auth_view(&spec.endpoint()),
            expected,
            "member {}",
            spec.name
        );
    }
}

#[test]
fn auth_state_agrees_on_every_member_across_restarts_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(Server::Detcd, dir.path(), 3, EXTRA);
    let first = cluster.specs[0].endpoint();
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "alice:alicepw"],
        &["role", "add", "reader"],
        &["role", "grant-permission", "reader", "read", "/a"],
        &["user", "grant-role", "alice", "reader"],
        &["put", "/a", "v1"],
        &["auth", "enable"],
    ] {
        assert!(etcdctl(&first, args).status.success(), "etcdctl {args:?}");
    }
    // A follower other than the one the requests go to misses what follows, then catches up.
    // Not the leader: the election after killing it could outlast etcdctl's 5 s timeout for the
    // next step on a loaded machine (seen as "context deadline exceeded" on the revoke).
    let leader = cluster.leader();
    let stopped = (1..3)
        .find(|&i| Some(i) != leader)
        .expect("two members besides the first");
    cluster.nodes[stopped] = None;
    let root = ["--user", "root:rootpw"];
    let revoke = [&root[..], &["role", "revoke-permission", "reader", "/a"]].concat();
    assert!(etcdctl(&first, &revoke).status.success());
    let grant = [
        &root[..],
        &[
            "role",
            "grant-permission",
            "reader",
            "readwrite",
            "/p",
            "--prefix",
        ],
    ]
    .concat();
    assert!(etcdctl(&first, &grant).status.success());
    for i in 0..60 {
        let key = format!("/filler/{i}");
        let put = [&root[..], &["put", &key, "x"]].concat();
        assert!(etcdctl(&first, &put).status.success());
    }
    cluster.restart(stopped);
    let expected = [
        "alice\nroot",
        "Role reader\nKV Read:\n\t[/p, /q) (prefix /p)\nKV Write:\n\t[/p, /q) (prefix /p)",
        "User: alice\nRoles: reader",
        "Error: etcdserver: permission denied",
        "Error: etcdserver: permission denied",
        "Error: etcdserver: user name is empty",
    ];
    assert_all_members_see(&cluster, &expected);
    let log = cluster.nodes[stopped].as_ref().unwrap().log_text();
    assert!(
        log.contains("installing snapshot from leader"),
        "member {stopped} caught up without a snapshot:\n{log}"
    );

    // Every member restarted over its data dir keeps the same users, roles and permissions.
    for i in 0..3 {
        cluster.nodes[i] = None;
        cluster.restart(i);
    }
    assert_all_members_see(&cluster, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stops_delivering_once_its_read_permission_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    common::enable_auth_with_a_reader(&node.endpoint(), "/w");
    let as_user =
        |name: &str, password: &str| Some(ConnectOptions::new().with_user(name, password));
    let mut root = Client::connect([node.url()], as_user("root", "rootpw"))
        .await
        .unwrap();
    let mut alice = Client::connect([node.url()], as_user("alice", "alicepw"))
        .await
        .unwrap();

    // (A watch refused at creation is in the etcdctl transcript of `tests/etcdctl_compat.rs`.)
    let watch = etcd_client::WatchOptions::new().with_prefix();
    // etcd-client's `watch` takes the created response itself.
    let (_watcher, mut events) = alice.watch("/w", Some(watch)).await.unwrap();
    root.put("/w/1", "seen", None).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("the event arrives")
        .unwrap()
        .unwrap();
    assert_eq!(response.events()[0].kv().unwrap().value(), b"seen");

    let revoke = node.etcdctl(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "reader",
        "/w",
        "--prefix",
    ]);
    assert!(revoke.status.success());
    root.put("/w/2", "secret", None).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("the watch answers")
        .unwrap()
        .unwrap();
    assert!(response.canceled(), "{response:?}");
    assert!(
        response.events().is_empty(),
        "no event after the revoke: {response:?}"
    );
    assert!(response
        .cancel_reason()
        .contains("etcdserver: permission denied"));
}

/// `--auth-token jwt,...`: with the same key pair on every member, authenticated requests work
/// on each of them, and a wrong password is refused.
#[test]
fn jwt_tokens_work_on_every_member_with_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/src/auth/testdata");
    let jwt = format!(
        "--auth-token=jwt,pub-key={keys}/es256.pub,priv-key={keys}/es256.key,sign-method=ES256,ttl=10m"
    );
    let extra = [EXTRA, &[jwt.as_str()][..]].concat();
    let cluster = Cluster::start(Server::Detcd, dir.path(), 3, &extra);
    let first = cluster.specs[0].endpoint();
    for args in [&["user", "add", "root:rootpw"][..], &["auth", "enable"]] {
        assert!(etcdctl(&first, args).status.success(), "etcdctl {args:?}");
    }
    let all = cluster.endpoints();
    let root = ["--user", "root:rootpw"];
    assert_eq!(
        answer(&all, &[&root[..], &["put", "/k", "v"]].concat()),
        "OK"
    );
    for spec in &cluster.specs {
        let get = [&root[..], &["get", "/k", "--print-value-only"]].concat();
        assert_eq!(answer(&spec.endpoint(), &get), "v", "member {}", spec.name);
    }
    assert_eq!(
        answer(&all, &["--user", "root:wrong", "get", "/k"]),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
}
