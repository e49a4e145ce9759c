//! `Maintenance.Snapshot` inside madsim: the real member streams its backup over the simulated
//! network in etcd's format, the stream reads back to the keys written, and two backups of the
//! same state are the same bytes (the stream is a pure function of the state, as the simulator's
//! determinism needs).
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test --test sim_backup`.
#![cfg(madsim)]

mod sim_common;

use std::time::Duration;

use sim_common::{start_node, NODE_ADDR};

use detcd::io::SimDisk;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::pb::etcdserverpb::{PutRequest, SnapshotRequest};
use madsim::runtime::Handle;

async fn backup(client: &mut MaintenanceClient<tonic::transport::Channel>) -> Vec<u8> {
    let mut stream = client
        .snapshot(SnapshotRequest {})
        .await
        .expect("snapshot")
        .into_inner();
    let mut file = Vec::new();
    while let Some(chunk) = stream.message().await.expect("snapshot chunk") {
        file.extend_from_slice(&chunk.blob);
        if chunk.remaining_bytes == 0 {
            break;
        }
    }
    file
}

#[madsim::test]
async fn a_backup_streams_in_etcds_format_and_the_same_state_gives_the_same_bytes() {
    let handle = Handle::current();
    let _node = start_node(&handle, SimDisk::new(handle.seed()), |_| {});
    let client_node = handle
        .create_node()
        .name("client")
        .ip("10.0.0.100".parse().unwrap())
        .build();
    let (first, second) = client_node
        .spawn(async move {
            let url = format!("http://{NODE_ADDR}");
            let mut kv = loop {
                match KvClient::connect(url.clone()).await {
                    Ok(client) => break client,
                    Err(_) => madsim::time::sleep(Duration::from_millis(100)).await,
                }
            };
            for i in 0..50 {
                let put = PutRequest {
                    key: format!("key{}", i % 10).into_bytes(),
                    value: vec![b'v'; 300],
                    ..Default::default()
                };
                // Unavailable while the member elects itself.
                while kv.put(put.clone()).await.is_err() {
                    madsim::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let mut maintenance = MaintenanceClient::connect(url).await.unwrap();
            (
                backup(&mut maintenance).await,
                backup(&mut maintenance).await,
            )
        })
        .await
        .unwrap();
    assert_eq!(first, second, "a backup is a function of the state");
    let read = detcd::backup::decode(&first, false).expect("the stream is a whole backup");
    assert_eq!(read.status.revision, 51);
    let changes = read.data.kv.unwrap().changes;
    assert_eq!(changes.len(), 50, "every revision, none compacted");
    assert!(changes
        .iter()
        .all(|change| change.kv.as_ref().unwrap().value.len() == 300));
}
