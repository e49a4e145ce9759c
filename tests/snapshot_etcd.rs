//! Backups between etcd 3.4 and detcd, both ways, with the real etcd and etcdctl: a snapshot
//! saved from etcd restores into detcd (`detcd snapshot restore`), and one saved from detcd
//! restores into etcd (`etcdctl snapshot restore`), each serving what the source served — keys,
//! create/mod revisions, versions, the compaction, leases and their keys, users, roles and
//! whether auth is on. Damaged files are refused before anything is written.
#![cfg(not(madsim))]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{
    answer, drop_client_logs, etcdctl_with_stdin, json_u64, stdout, MemberSpec, Node, Server,
};

fn detcd_snapshot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detcd"))
        .arg("snapshot")
        .args(args)
        .output()
        .unwrap()
}

/// etcdctl's offline `snapshot` commands (no endpoint).
fn etcdctl_snapshot(args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("snapshot")
        .args(args)
        .output()
        .expect("etcdctl is installed (apt-get install etcd-client)")
}

/// The flags that restore `file` into `spec`'s data dir, for either tool.
fn restore_args(file: &Path, spec: &MemberSpec) -> Vec<String> {
    vec![
        "restore".into(),
        file.display().to_string(),
        format!("--name={}", spec.name),
        format!("--data-dir={}", spec.data_dir.display()),
        format!("--initial-cluster={}={}", spec.name, spec.peer_url()),
        "--initial-cluster-token=restored".into(),
        format!("--initial-advertise-peer-urls={}", spec.peer_url()),
    ]
}

/// `snapshot status -w json` of `file`, as etcdctl answers it; detcd must answer the same.
fn status_both_tools_agree_on(file: &Path) -> String {
    let file = file.to_str().unwrap();
    let etcd_status = stdout(&etcdctl_snapshot(&["status", file, "-w", "json"]));
    let detcd_status = stdout(&detcd_snapshot(&["status", file, "-w", "json"]));
    assert_eq!(detcd_status, etcd_status);
    etcd_status
}

/// Restores `file` with `server`'s own tool into a one-member data dir under `root`, and starts
/// `server` on it.
fn restore_and_start(server: Server, file: &Path, root: &Path) -> Node {
    let spec = MemberSpec::new(root, "n1");
    let args = restore_args(file, &spec);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let restore = match server {
        Server::Detcd => detcd_snapshot,
        Server::Etcd => etcdctl_snapshot,
    };
    stdout(&restore(&args));
    let mut node = spec.spawn(server, std::slice::from_ref(&spec), "new", &[]);
    node.wait_healthy();
    node
}

/// Puts, overwrites, deletes, a compaction and leases (one with keys, one bare, one whose
/// key was deleted), so revisions, versions and lease ids all have something to show.
fn fill(node: &Node) {
    let lease = |ttl: &str| {
        let granted = stdout(&node.etcdctl(&["lease", "grant", ttl]));
        granted.split_whitespace().nth(1).unwrap().to_string()
    };
    let with_keys = lease("600");
    lease("900");
    let emptied = lease("700");
    let put = |args: &[&str]| stdout(&node.etcdctl(&[&["put"], args].concat()));
    for i in 0..30 {
        put(&[&format!("key{}", i % 7), &format!("value{i}")]);
    }
    put(&["leased", "x", "--lease", &with_keys]);
    put(&["leased2", "y", "--lease", &with_keys]);
    put(&["gone", "z", "--lease", &emptied]);
    stdout(&node.etcdctl(&["del", "gone"]));
    stdout(&node.etcdctl(&["del", "key3"]));
    stdout(&node.etcdctl(&["compact", "20"]));
    put(&["key1", "after the compaction"]);
    stdout(&node.etcdctl(&["del", "key5"]));
    put(&["key5", "again"]);
    // Enough to fill many leaf pages under a branch page in the key bucket, in transactions of
    // many puts (one revision, many sub-revisions), and a value that spans pages.
    for txn in 0..3 {
        let puts: String = (0..100)
            .map(|i| format!("put bulk{txn}-{i:03} {}\n", "v".repeat(200)))
            .collect();
        stdout(&etcdctl_with_stdin(
            &node.endpoint(),
            &["txn"],
            &format!("\n{puts}\n\n"),
        ));
    }
    stdout(&etcdctl_with_stdin(
        &node.endpoint(),
        &["put", "big"],
        &"b".repeat(10_000),
    ));
}

/// What a client sees of the whole store: every key with its revisions, versions and lease,
/// the store revision, an old revision's view, the compaction, and each lease's TTL and keys.
fn state(node: &Node) -> Vec<String> {
    let get = stdout(&node.etcdctl(&["get", "", "--prefix", "-w", "json"]));
    let revision = json_u64(&get, "\"revision\":").unwrap();
    let kvs = get[get.find("\"kvs\"").expect("keys")..].to_string();
    let old = stdout(&node.etcdctl(&["get", "", "--prefix", "--rev", "25", "-w", "json"]));
    let old = old[old.find("\"kvs\"").expect("keys at 25")..].to_string();
    let compacted = node.etcdctl(&["get", "key1", "--rev", "19"]);
    let compacted = drop_client_logs(&String::from_utf8_lossy(&compacted.stderr));
    let mut leases: Vec<String> = stdout(&node.etcdctl(&["lease", "list"]))
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    leases.sort();
    let lease_details = leases.iter().map(|id| {
        let ttl = stdout(&node.etcdctl(&["lease", "timetolive", id, "--keys"]));
        // The remaining TTL ticks; the granted TTL and the keys must match. etcd lists the
        // keys from a Go map, in any order.
        let granted = &ttl[..ttl.find(", remaining(").expect("a live lease")];
        let keys = ttl
            .split_once("attached keys([")
            .map_or("", |(_, keys)| keys);
        let mut keys: Vec<&str> = keys.trim_end().trim_end_matches("])").split(' ').collect();
        keys.sort();
        format!("{granted}, keys {keys:?}")
    });
    [format!("revision {revision}"), kvs, old, compacted]
        .into_iter()
        .chain(leases.iter().map(|id| format!("lease {id}")))
        .chain(lease_details)
        .collect()
}

fn assert_same_state(expected: &[String], actual: &[String]) {
    assert_eq!(expected.len(), actual.len(), "{expected:#?}\n{actual:#?}");
    for (expected, actual) in expected.iter().zip(actual) {
        assert_eq!(expected, actual);
    }
}

#[test]
fn an_etcd_snapshot_restores_into_detcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Node::start_real_etcd(&dir.path().join("etcd"));
    fill(&etcd);
    let expected = state(&etcd);
    let file = dir.path().join("etcd.db");
    stdout(&etcd.etcdctl(&["snapshot", "save", file.to_str().unwrap()]));
    drop(etcd);

    // detcd reads etcd's file as etcdctl does: the same hash, revision, key count and size.
    status_both_tools_agree_on(&file);

    let detcd = restore_and_start(Server::Detcd, &file, dir.path());
    assert_same_state(&expected, &state(&detcd));
}

#[test]
fn a_detcd_snapshot_restores_into_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let detcd = Node::start(&dir.path().join("detcd"), &[]);
    fill(&detcd);
    let expected = state(&detcd);
    let file = dir.path().join("detcd.db");
    let saved = stdout(&detcd.etcdctl(&["snapshot", "save", file.to_str().unwrap()]));
    assert_eq!(saved, format!("Snapshot saved at {}\n", file.display()));
    drop(detcd);

    let etcd_status = status_both_tools_agree_on(&file);
    // The newest revision left in the key bucket is the store's (its last write is a put), and
    // etcd counts 300 bulk keys among the rest.
    assert_eq!(
        json_u64(&etcd_status, "\"revision\":"),
        json_u64(&expected[0], "revision ")
    );
    assert!(json_u64(&etcd_status, "\"totalKey\":").unwrap() > 300);

    let etcd = restore_and_start(Server::Etcd, &file, dir.path());
    assert_same_state(&expected, &state(&etcd));
}

/// A root user, `alice` with a role that may read and write `/app/` and nothing else, keys
/// inside and outside it, then auth on.
fn fill_auth(node: &Node) {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "alice:alicepw"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "app",
            "readwrite",
            "/app/",
            "--prefix",
        ],
        &["user", "grant-role", "alice", "app"],
        &["put", "/app/x", "1"],
        &["put", "/other", "2"],
        // etcdctl adds the root role and grants it to root.
        &["auth", "enable"],
    ] {
        stdout(&node.etcdctl(args));
    }
}

/// What clients see of the auth state: the listings, the same passwords accepted, the wrong
/// one and no user refused, and alice's permissions held to her prefix.
fn auth_view(node: &Node) -> Vec<String> {
    let root = "root:rootpw";
    let alice = "alice:alicepw";
    let asks: [&[&str]; 11] = [
        &["--user", root, "user", "list"],
        &["--user", root, "role", "list"],
        &["--user", root, "role", "get", "app"],
        &["--user", root, "user", "get", "alice"],
        &["--user", root, "user", "get", "root"],
        &["--user", root, "get", "/other"],
        &["--user", alice, "get", "/app/x"],
        &["--user", alice, "put", "/app/y", "3"],
        &["--user", alice, "get", "/other"],
        &["--user", "alice:wrong", "get", "/app/x"],
        &["get", "/app/x"],
    ];
    let view: Vec<String> = asks
        .iter()
        .map(|args| answer(&node.endpoint(), args))
        .collect();
    // Both servers answer alike; that they answer what auth means is checked here.
    assert_eq!(view[0], "alice\nroot");
    assert_eq!(view[6], "/app/x\n1");
    assert_eq!(view[8], "Error: etcdserver: permission denied");
    assert!(view[9].contains("authentication failed"), "{}", view[9]);
    assert_eq!(view[10], "Error: etcdserver: user name is empty");
    view
}

#[test]
fn users_and_roles_of_an_etcd_snapshot_restore_into_detcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Node::start_real_etcd(&dir.path().join("etcd"));
    fill_auth(&etcd);
    let expected = auth_view(&etcd);
    let file = dir.path().join("etcd.db");
    let save = [
        "--user",
        "root:rootpw",
        "snapshot",
        "save",
        file.to_str().unwrap(),
    ];
    stdout(&etcd.etcdctl(&save));
    drop(etcd);

    let detcd = restore_and_start(Server::Detcd, &file, dir.path());
    assert_same_state(&expected, &auth_view(&detcd));
}

#[test]
fn users_and_roles_of_a_detcd_snapshot_restore_into_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let detcd = Node::start(&dir.path().join("detcd"), &[]);
    fill_auth(&detcd);
    let expected = auth_view(&detcd);
    let file = dir.path().join("detcd.db");
    let save = [
        "--user",
        "root:rootpw",
        "snapshot",
        "save",
        file.to_str().unwrap(),
    ];
    stdout(&detcd.etcdctl(&save));
    drop(detcd);

    // etcdctl reads the auth buckets as detcd does: the same hash and key count.
    status_both_tools_agree_on(&file);

    let etcd = restore_and_start(Server::Etcd, &file, dir.path());
    assert_same_state(&expected, &auth_view(&etcd));
}

#[test]
fn a_damaged_or_truncated_snapshot_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let detcd = Node::start(&dir.path().join("detcd"), &[]);
    fill(&detcd);
    let file = dir.path().join("good.db");
    stdout(&detcd.etcdctl(&["snapshot", "save", file.to_str().unwrap()]));
    drop(detcd);
    let good = std::fs::read(&file).unwrap();
    let db_len = good.len() - 32;

    let mut flipped = good.clone();
    flipped[db_len - 4096] ^= 0x01; // the id in the header of the last page, the root bucket's
    let cases: Vec<(&str, Vec<u8>, &[&str], &str)> = vec![
        ("flipped", flipped.clone(), &[], "expected sha256 "),
        (
            "flipped-unchecked",
            flipped,
            &["--skip-hash-check"],
            "snapshot file integrity check failed",
        ),
        (
            "cut",
            good[..good.len() - 700].to_vec(),
            &[],
            "snapshot missing hash but --skip-hash-check=false",
        ),
        (
            "cut-at-a-page",
            good[..db_len - 4096].to_vec(),
            &["--skip-hash-check"],
            "truncated",
        ),
        (
            "empty",
            Vec::new(),
            &["--skip-hash-check"],
            "not a bbolt database",
        ),
    ];
    for (name, bytes, extra, error) in cases {
        let damaged = dir.path().join(format!("{name}.db"));
        std::fs::write(&damaged, &bytes).unwrap();
        let spec = MemberSpec::new(&dir.path().join(name), "n1");
        let args = restore_args(&damaged, &spec);
        let args: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        let output = detcd_snapshot(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} restored");
        assert!(stderr.contains(error), "{name}: {stderr}");
        assert!(
            !spec.data_dir.exists(),
            "{name} left {}",
            spec.data_dir.display()
        );
    }
}
