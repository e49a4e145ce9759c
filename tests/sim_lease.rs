//! Leases inside madsim: expiry runs on the Clock seam, so virtual time decides it and a seed
//! replays it. A kept-alive lease outlives its TTL, an abandoned one takes its keys with it, and a
//! restart (log replay) brings back the leases that were alive.
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" MADSIM_TEST_CHECK_DETERMINISM=1
//! cargo test --test sim_lease`.
#![cfg(madsim)]

mod sim_common;

use sim_common::start_node;

use std::time::Duration;

use detcd::io::SimDisk;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::lease_client::LeaseClient;
use detcd::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseTimeToLiveRequest,
    PutRequest, RangeRequest,
};
use madsim::runtime::Handle;
use madsim::time::sleep;
use tonic::transport::Channel;

/// Connects once the node accepts connections and has a leader.
async fn channel() -> Channel {
    for _ in 0..100 {
        if let Ok(channel) = tonic::transport::Endpoint::from_static("http://10.0.0.1:2379")
            .connect()
            .await
        {
            let mut leases = LeaseClient::new(channel.clone());
            if leases.lease_leases(LeaseLeasesRequest {}).await.is_ok() {
                return channel;
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("the node never served");
}

async fn keep_alive(leases: &mut LeaseClient<Channel>, id: i64) -> i64 {
    let requests = futures::stream::iter(vec![LeaseKeepAliveRequest { id }]);
    let mut answers = leases
        .lease_keep_alive(requests)
        .await
        .unwrap()
        .into_inner();
    answers.message().await.unwrap().unwrap().ttl
}

async fn exists(kv: &mut KvClient<Channel>, key: &str) -> bool {
    let request = RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    !kv.range(request).await.unwrap().into_inner().kvs.is_empty()
}

#[madsim::test]
async fn kept_alive_leases_live_abandoned_ones_expire_and_a_restart_keeps_the_living() {
    let handle = Handle::current();
    let node = start_node(&handle, SimDisk::new(handle.seed()), |_| {});
    let client = handle
        .create_node()
        .name("client")
        .ip("10.0.0.100".parse().unwrap())
        .build();

    let (kept, abandoned) = client
        .spawn(async move {
            let channel = channel().await;
            let (mut leases, mut kv) = (LeaseClient::new(channel.clone()), KvClient::new(channel));
            let grant = |ttl| {
                let request = LeaseGrantRequest { ttl, id: 0 };
                let mut leases = leases.clone();
                async move { leases.lease_grant(request).await.unwrap().into_inner().id }
            };
            let (kept, abandoned) = (grant(2).await, grant(2).await);
            for (key, lease) in [("kept", kept), ("abandoned", abandoned)] {
                let put = PutRequest {
                    key: key.into(),
                    lease,
                    ..Default::default()
                };
                kv.put(put).await.unwrap();
            }
            for _ in 0..10 {
                sleep(Duration::from_millis(500)).await;
                assert_eq!(keep_alive(&mut leases, kept).await, 2);
            }
            assert!(exists(&mut kv, "kept").await);
            assert!(!exists(&mut kv, "abandoned").await);
            assert_eq!(keep_alive(&mut leases, abandoned).await, 0);
            (kept, abandoned)
        })
        .await
        .unwrap();

    handle.send_ctrl_c(node.id());
    while !handle.is_exit(node.id()) {
        sleep(Duration::from_millis(100)).await;
    }
    handle.restart(node.id());

    client
        .spawn(async move {
            let channel = channel().await;
            let (mut leases, mut kv) = (LeaseClient::new(channel.clone()), KvClient::new(channel));
            let alive = |id| LeaseTimeToLiveRequest { id, keys: true };
            let kept_ttl = leases.lease_time_to_live(alive(kept)).await.unwrap();
            assert_eq!(kept_ttl.into_inner().keys, [b"kept".to_vec()]);
            let gone = leases.lease_time_to_live(alive(abandoned)).await.unwrap();
            assert_eq!(gone.into_inner().ttl, -1);
            // Not kept alive any more: TTL plus an election timeout after the restart, it expires.
            sleep(Duration::from_secs(5)).await;
            assert!(!exists(&mut kv, "kept").await);
        })
        .await
        .unwrap();
}
