//! Quota, alarms, defragment and hashes through etcdctl. The expected texts are what etcd 3.4
//! prints for the same commands (checked against `etcd --quota-backend-bytes` that is already
//! over quota: the first put raises NOSPACE, `alarm list` prints `memberID:<id> alarm:NOSPACE `,
//! `alarm disarm` prints the alarms it cleared, `defrag` prints "Finished defragmenting ...").
#![cfg(not(madsim))]

mod common;

use common::{json_u64, stdout, Node};

#[test]
fn writes_over_quota_raise_nospace_until_compacted_and_disarmed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n1"), &["--quota-backend-bytes=300"]);
    let value = "x".repeat(80);
    let mut refused = None;
    for _ in 0..10 {
        let output = node.etcdctl(&["put", "k", &value]);
        if !output.status.success() {
            refused = Some(String::from_utf8_lossy(&output.stderr).into_owned());
            break;
        }
    }
    let refused = refused.expect("a put over quota is refused");
    assert!(refused.contains("Error: etcdserver: mvcc: database space exceeded"));
    assert!(refused.contains("code = ResourceExhausted"), "{refused}");

    let status = stdout(&node.etcdctl(&["endpoint", "status", "-w", "json"]));
    let member_id = json_u64(&status, "\"member_id\":").unwrap();
    let alarm = format!("memberID:{member_id} alarm:NOSPACE \n");
    assert_eq!(stdout(&node.etcdctl(&["alarm", "list"])), alarm);
    assert!(status.contains(&format!(
        "\"errors\":[\"memberID:{member_id} alarm:NOSPACE \"]"
    )));

    let grant = node.etcdctl(&["lease", "grant", "100"]);
    assert!(String::from_utf8_lossy(&grant.stderr)
        .contains("Error: failed to grant lease (etcdserver: mvcc: database space exceeded)"));
    let txn = common::etcdctl_with_stdin(&node.endpoint(), &["txn"], "\n\nput t v\n\n\n");
    assert!(
        !txn.status.success(),
        "a writing txn is refused under NOSPACE"
    );

    // What the operator does: compact, defragment, disarm.
    let db_size_before = json_u64(&status, "\"dbSize\":").unwrap();
    let revision = json_u64(&status, "\"revision\":").unwrap().to_string();
    stdout(&node.etcdctl(&["compact", &revision]));
    assert_eq!(
        stdout(&node.etcdctl(&["defrag"])),
        format!("Finished defragmenting etcd member[{}]\n", node.endpoint())
    );
    let status = stdout(&node.etcdctl(&["endpoint", "status", "-w", "json"]));
    assert!(json_u64(&status, "\"dbSize\":").unwrap() < db_size_before);
    assert_eq!(stdout(&node.etcdctl(&["alarm", "disarm"])), alarm);
    assert_eq!(stdout(&node.etcdctl(&["alarm", "list"])), "");
    assert_eq!(stdout(&node.etcdctl(&["put", "k", "small"])), "OK\n");
}

#[test]
fn endpoint_hashkv_is_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("n1");
    let mut node = Node::start(&data_dir, &[]);
    stdout(&node.etcdctl(&["put", "a", "1"]));
    let hashkv = stdout(&node.etcdctl(&["endpoint", "hashkv"]));
    assert!(
        hashkv.starts_with(&format!("{}, ", node.endpoint())),
        "{hashkv}"
    );
    let hash = |node: &Node| hashkv_number(&stdout(&node.etcdctl(&["endpoint", "hashkv"])));
    let before = hash(&node);
    node.signal_and_wait("INT");
    let node = Node::start(&data_dir, &[]);
    assert_eq!(hash(&node), before);
}

fn hashkv_number(line: &str) -> u64 {
    line.trim_end()
        .rsplit(", ")
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
