//! The node's life cycle, run as an operator would: graceful stops on SIGINT and SIGTERM, a hard
//! SIGKILL in the middle of a write stream, and restarts over the same data dir.
#![cfg(not(madsim))]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{stdout, Node};
use etcd_client::{Client, GetOptions};

fn graceful_stop_then_restart_serves_acknowledged_data(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("n1.etcd");
    let mut node = Node::start(&data_dir, &[]);
    stdout(&node.etcdctl(&["put", "greeting", "hello"]));
    stdout(&node.etcdctl(&["put", "greeting", "hello again"]));
    let status = node.signal_and_wait(signal);
    assert_eq!(
        status.code(),
        Some(0),
        "{signal} must stop detcd with exit 0: {}",
        node.log_text()
    );
    assert!(
        node.log_text().contains("member closed"),
        "{}",
        node.log_text()
    );

    let node = Node::start(&data_dir, &[]);
    let got = stdout(&node.etcdctl(&["get", "greeting", "-w", "fields"]));
    assert!(got.contains("\"Value\" : \"hello again\""), "{got}");
    assert!(got.contains("\"Version\" : 2"), "{got}");
    assert!(got.contains("\"ModRevision\" : 3"), "{got}");
}

#[test]
fn sigint_stops_gracefully_and_a_restart_serves_every_write() {
    graceful_stop_then_restart_serves_acknowledged_data("INT");
}

#[test]
fn sigterm_stops_gracefully_and_a_restart_serves_every_write() {
    graceful_stop_then_restart_serves_acknowledged_data("TERM");
}

#[test]
fn etcd_environment_variables_configure_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (common::free_port(), common::free_port());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_detcd"));
    command
        .env("ETCD_NAME", "from-env")
        .env("ETCD_DATA_DIR", dir.path().join("env.etcd"))
        .env(
            "ETCD_LISTEN_CLIENT_URLS",
            format!("http://127.0.0.1:{client_port}"),
        )
        .env(
            "ETCD_ADVERTISE_CLIENT_URLS",
            format!("http://127.0.0.1:{client_port}"),
        )
        .env(
            "ETCD_LISTEN_PEER_URLS",
            format!("http://127.0.0.1:{peer_port}"),
        )
        .env(
            "ETCD_INITIAL_ADVERTISE_PEER_URLS",
            format!("http://127.0.0.1:{peer_port}"),
        );
    let node = Node::spawn(command, &dir.path().join("env.etcd"), client_port);
    let members = stdout(&node.etcdctl(&["member", "list"]));
    assert!(members.contains(", from-env, "), "{members}");
    assert!(dir
        .path()
        .join("env.etcd")
        .join("member")
        .join("wal")
        .exists());
}

/// Puts distinct keys from several clients until the process is SIGKILLed under them, restarts,
/// and checks that every acknowledged put is there at the revision it was acknowledged with, and
/// that revisions 2..=current are each used by exactly one key (no holes, no duplicates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_put() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("n1.etcd");
    let mut node = Node::start(&data_dir, &[]);
    let url = node.url();
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for writer in 0..4 {
        let (url, acknowledged, killed) = (url.clone(), acknowledged.clone(), killed.clone());
        writers.push(tokio::spawn(async move {
            let mut client = Client::connect([url], None).await.unwrap();
            for i in 0.. {
                let key = format!("w{writer}-{i:06}");
                match client.put(key.as_str(), format!("value-{i}"), None).await {
                    Ok(response) => {
                        let revision = response.header().unwrap().revision();
                        acknowledged.lock().unwrap().push((key, revision));
                    }
                    Err(_) if killed.load(Ordering::SeqCst) => return,
                    Err(error) => panic!("put failed before the kill: {error}"),
                }
            }
        }));
    }
    // Let the stream run, then pull the plug while puts are in flight.
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    killed.store(true, Ordering::SeqCst);
    node.signal_and_wait("KILL");
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let node = Node::start(&data_dir, &[]);
    let mut client = Client::connect([node.url()], None).await.unwrap();
    let all = client
        .get("w", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let current = all.header().unwrap().revision();
    let stored: Vec<(String, i64)> = all
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.mod_revision()))
        .collect();
    for (key, revision) in &acknowledged {
        assert!(
            stored.contains(&(key.clone(), *revision)),
            "acknowledged put {key}@{revision} is missing after the crash"
        );
    }
    let revisions: BTreeSet<i64> = stored.iter().map(|(_, revision)| *revision).collect();
    assert_eq!(revisions.len(), stored.len(), "two keys share a revision");
    assert_eq!(
        revisions,
        (2..=current).collect::<BTreeSet<i64>>(),
        "revisions must run 2..={current} without holes"
    );
    assert!(stored.len() >= acknowledged.len());
}
