//! The real detcd server on the simulated seams, inside madsim: one node started through
//! `etcdmain::run_member` (so through `embed::start`), driven over the simulated network by a gRPC
//! client, stopped with ctrl-c, restarted over the same simulated disk, and read back.
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test --test sim_single_node`,
//! with `MADSIM_TEST_NUM=N` for more seeds and `MADSIM_TEST_CHECK_DETERMINISM=1` to run each seed
//! twice and require the same execution.
#![cfg(madsim)]

mod sim_common;

use sim_common::{start_node, NODE_ADDR};

use std::time::Duration;

use detcd::io::SimDisk;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::{PutRequest, RangeRequest};
use madsim::runtime::{Handle, NodeHandle};

/// Connects, retrying while the node is still starting.
async fn client() -> KvClient<tonic::transport::Channel> {
    for _ in 0..100 {
        if let Ok(client) = KvClient::connect(format!("http://{NODE_ADDR}")).await {
            return client;
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the node never accepted a connection");
}

async fn get(
    client: &mut KvClient<tonic::transport::Channel>,
    key: &str,
) -> Option<(Vec<u8>, i64)> {
    for _ in 0..100 {
        match client
            .range(RangeRequest {
                key: key.into(),
                ..Default::default()
            })
            .await
        {
            Ok(response) => {
                let response = response.into_inner();
                return response
                    .kvs
                    .first()
                    .map(|kv| (kv.value.clone(), kv.mod_revision));
            }
            // Unavailable while the restarted node replays its log and elects itself.
            Err(status) if status.code() == tonic::Code::Unavailable => {
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("range failed: {status}"),
        }
    }
    panic!("the node never served a read");
}

/// Sends ctrl-c and waits (10 s at most) for the node to stop.
async fn stop_with_ctrl_c(handle: &Handle, node: &NodeHandle) {
    handle.send_ctrl_c(node.id());
    for _ in 0..100 {
        if handle.is_exit(node.id()) {
            break;
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(handle.is_exit(node.id()), "ctrl-c must stop the node");
}

#[madsim::test]
async fn a_node_serves_its_writes_after_ctrl_c_and_restart() {
    let handle = Handle::current();
    let disk = SimDisk::new(handle.seed());
    let node = start_node(&handle, disk.clone(), |_| {});
    let client_node = handle
        .create_node()
        .name("client")
        .ip("10.0.0.100".parse().unwrap())
        .build();

    let written = client_node
        .spawn(async move {
            let mut client = client().await;
            let mut revisions = Vec::new();
            for i in 0..20 {
                let response = loop {
                    match client
                        .put(PutRequest {
                            key: format!("key{}", i % 5).into_bytes(),
                            value: format!("value{i}").into_bytes(),
                            ..Default::default()
                        })
                        .await
                    {
                        Ok(response) => break response.into_inner(),
                        Err(status) if status.code() == tonic::Code::Unavailable => {
                            madsim::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => panic!("put failed: {status}"),
                    }
                };
                revisions.push(response.header.unwrap().revision);
            }
            assert_eq!(
                revisions,
                (2..22).collect::<Vec<i64>>(),
                "one revision per put, no holes"
            );
            get(&mut client, "key4").await
        })
        .await
        .unwrap();
    assert_eq!(written, Some((b"value19".to_vec(), 21)));

    stop_with_ctrl_c(&handle, &node).await;

    handle.restart(node.id());
    let read_back = client_node
        .spawn(async move {
            let mut client = client().await;
            let mut values = Vec::new();
            for key in 0..5 {
                values.push(get(&mut client, &format!("key{key}")).await);
            }
            values
        })
        .await
        .unwrap();
    let expected: Vec<Option<(Vec<u8>, i64)>> = (15..20)
        .map(|i| Some((format!("value{i}").into_bytes(), i + 2)))
        .collect();
    assert_eq!(read_back, expected);
}

/// etcd's `Close` bounds how long it waits for client connections. A connection that never sends
/// a request (its client vanished mid-handshake) used to keep the simulated listener, and the
/// port, after the member had stopped; now `close` drops the listener once the drain time is up.
#[madsim::test]
async fn ctrl_c_releases_the_client_port_despite_a_half_open_connection() {
    let handle = Handle::current();
    let node = start_node(&handle, SimDisk::new(handle.seed()), |_| {});
    let client_node = handle
        .create_node()
        .name("client")
        .ip("10.0.0.100".parse().unwrap())
        .build();
    let addr: std::net::SocketAddr = NODE_ADDR.parse().unwrap();
    let half_open = client_node
        .spawn(async move {
            drop(client().await);
            let endpoint = madsim::net::Endpoint::bind("0.0.0.0:0").await.unwrap();
            let connection = endpoint.connect1(addr).await.unwrap();
            (endpoint, connection)
        })
        .await
        .unwrap();

    stop_with_ctrl_c(&handle, &node).await;
    let refused = client_node
        .spawn(async move {
            let endpoint = madsim::net::Endpoint::bind("0.0.0.0:0").await.unwrap();
            endpoint.connect1(addr).await.is_err()
        })
        .await
        .unwrap();
    assert!(refused, "the stopped member must not hold its client port");
    drop(half_open);
}
