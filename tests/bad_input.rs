//! Bad input gets a clear error and loses nothing: wrong flags, bad URLs, an unusable data dir,
//! a corrupt WAL, oversized requests.
#![cfg(not(madsim))]

mod common;

use std::time::Duration;

use common::{detcd_command, etcdctl_with_stdin, free_port, stdout, Node};

fn run_to_exit(args: &[&str], data_dir: &std::path::Path) -> (Option<i32>, String) {
    let output = detcd_command(data_dir, free_port(), args).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_flag_exits_2_naming_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("n1.etcd");
    let (code, stderr) = run_to_exit(&["--no-such-flag=1"], &data_dir);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    assert!(
        !data_dir.exists(),
        "a rejected start must not create the data dir"
    );
}

#[test]
fn a_bad_value_exits_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("n1.etcd");
    let (code, stderr) = run_to_exit(&["--heartbeat-interval=soon"], &data_dir);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--heartbeat-interval"), "{stderr}");
    assert!(!data_dir.exists());
}

#[test]
fn a_bad_url_exits_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("n1.etcd");
    let (code, stderr) = run_to_exit(&["--listen-metrics-urls=not-a-url"], &data_dir);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--listen-metrics-urls") && stderr.contains("not-a-url"),
        "{stderr}"
    );
    assert!(!data_dir.exists());
}

#[test]
fn an_unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // Tests run as root, where permission bits do not stop writes: a data dir below a regular
    // file is unusable for everyone.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let (code, stderr) = run_to_exit(&[], &file.join("n1.etcd"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot access data directory"), "{stderr}");
}

#[test]
fn a_corrupt_wal_record_refuses_to_start_and_keeps_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("n1.etcd");
    let mut node = Node::start(&data_dir, &[]);
    for i in 0..20 {
        stdout(&node.etcdctl(&["put", &format!("key{i}"), &"x".repeat(100)]));
    }
    assert_eq!(node.signal_and_wait("TERM").code(), Some(0));

    let wal_dir = data_dir.join("member").join("wal");
    let segment = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .expect("a WAL segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();

    let (code, stderr) = run_to_exit(&[], &data_dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains("corrupt"), "{stderr}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "a refused start must not rewrite the WAL"
    );
}

#[test]
fn oversized_requests_get_etcds_errors_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n1.etcd"), &[]);
    stdout(&node.etcdctl(&["put", "keep", "me"]));

    // Over --max-request-bytes (1.5 MiB) but within gRPC's limit: etcd's own error.
    let value = "v".repeat(1536 * 1024 + 10);
    let output = etcdctl_with_stdin(&node.endpoint(), &["put", "big"], &value);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("etcdserver: request is too large"),
        "{stderr}"
    );

    // Over gRPC's receive limit: refused before it reaches the server.
    let value = "v".repeat(3 * 1024 * 1024);
    let output = etcdctl_with_stdin(&node.endpoint(), &["put", "bigger"], &value);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("larger than max") || stderr.contains("ResourceExhausted"),
        "{stderr}"
    );

    std::thread::sleep(Duration::from_millis(100));
    let got = stdout(&node.etcdctl(&["get", "keep", "--print-value-only"]));
    assert_eq!(got, "me\n");
    let got = stdout(&node.etcdctl(&["get", "big", "-w", "fields"]));
    assert!(got.contains("\"Count\" : 0"), "{got}");
}

#[test]
fn an_empty_key_is_etcds_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n1.etcd"), &[]);
    let output = node.etcdctl(&["put", "", "v"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("etcdserver: key is not provided"),
        "{stderr}"
    );
}
