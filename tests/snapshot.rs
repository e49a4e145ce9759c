//! Backups end to end: `etcdctl snapshot save` from a running detcd, `detcd snapshot status`
//! and `detcd snapshot restore`, then a member started over the restored data dir serves the
//! same keys at the same revisions, and the leases.
#![cfg(not(madsim))]

mod common;

use std::process::Command;

use common::{stdout, MemberSpec, Node, Server};

fn detcd_snapshot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_detcd"))
        .arg("snapshot")
        .args(args)
        .output()
        .unwrap()
}

/// The `kvs` part of a `get -w json`, without the header (whose member id differs).
fn kvs(json: &str) -> String {
    json[json.find("\"kvs\"").expect("keys in the answer")..].to_string()
}

#[test]
fn a_saved_snapshot_restores_into_a_member_serving_the_same_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let source = Node::start(&dir.path().join("source"), &[]);
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")] {
        stdout(&source.etcdctl(&["put", key, value]));
    }
    stdout(&source.etcdctl(&["compact", "3"]));
    let lease = stdout(&source.etcdctl(&["lease", "grant", "600"]));
    let lease_id = lease.split_whitespace().nth(1).unwrap().to_string();
    stdout(&source.etcdctl(&["put", "d", "5", "--lease", &lease_id]));
    let before = stdout(&source.etcdctl(&["get", "", "--prefix", "-w", "json"]));
    let before_at_4 = stdout(&source.etcdctl(&["get", "a", "--rev", "4", "-w", "json"]));

    let file = dir.path().join("backup.db");
    let saved = stdout(&source.etcdctl(&["snapshot", "save", file.to_str().unwrap()]));
    assert_eq!(saved, format!("Snapshot saved at {}\n", file.display()));
    drop(source);

    let status = stdout(&detcd_snapshot(&["status", file.to_str().unwrap()]));
    let fields: Vec<&str> = status.trim_end().split(", ").collect();
    assert_eq!(fields[1], "6", "revision in {status}");

    let spec = MemberSpec::new(dir.path(), "n1");
    let peer_url = spec.peer_url();
    let data_dir = spec.data_dir.clone();
    let restore = |data_dir: &std::path::Path| {
        detcd_snapshot(&[
            "restore",
            file.to_str().unwrap(),
            "--name=n1",
            &format!("--data-dir={}", data_dir.display()),
            &format!("--initial-cluster=n1={peer_url}"),
            "--initial-cluster-token=restored",
            &format!("--initial-advertise-peer-urls={peer_url}"),
        ])
    };
    stdout(&restore(&data_dir));
    let again = restore(&data_dir);
    assert!(!again.status.success(), "restoring over an existing dir");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let mut restored = spec.spawn(Server::Detcd, std::slice::from_ref(&spec), "new", &[]);
    restored.wait_healthy();
    let after = stdout(&restored.etcdctl(&["get", "", "--prefix", "-w", "json"]));
    assert_eq!(kvs(&after), kvs(&before));
    let after_at_4 = stdout(&restored.etcdctl(&["get", "a", "--rev", "4", "-w", "json"]));
    assert_eq!(kvs(&after_at_4), kvs(&before_at_4));
    let compacted = restored.etcdctl(&["get", "a", "--rev", "2"]);
    assert!(String::from_utf8_lossy(&compacted.stderr).contains("compacted"));
    let ttl = stdout(&restored.etcdctl(&["lease", "timetolive", &lease_id, "--keys"]));
    assert!(ttl.contains("attached keys([d])"), "{ttl}");
    let put = stdout(&restored.etcdctl(&["put", "e", "6", "-w", "json"]));
    assert!(put.contains("\"revision\":7"), "{put}");
}

#[test]
fn a_damaged_backup_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junk.db");
    std::fs::write(&file, b"not a backup").unwrap();
    let output = detcd_snapshot(&["status", file.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a bbolt database"));
}
