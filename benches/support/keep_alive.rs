//! Lease keep-alives: many leases, each kept alive on its own stream with one keep-alive in
//! flight (the next goes as soon as the previous is answered). An operation is one keep-alive
//! answered.

use std::time::Duration;

use super::connect;
use super::measure::{Measured, Window};

pub const LEASES: usize = 256;
/// 32 keep-alive streams per connection, well inside any server's concurrent-stream limit.
const CONNECTIONS: usize = 8;
const TTL_SECONDS: i64 = 60;

pub async fn keep_alive(url: &str, length: Duration, pids: &[i32]) -> Measured {
    let connections = connect(url, CONNECTIONS).await;
    let mut leases = Vec::new();
    for lease in 0..LEASES {
        let mut client = connections[lease % CONNECTIONS].lease_client();
        let grant = client.grant(TTL_SECONDS, None).await.expect("grant");
        leases.push((client, grant.id()));
    }
    let window = Window::after_warmup(length);
    let tasks: Vec<_> = leases
        .iter()
        .map(|(client, id)| {
            let (mut client, id) = (client.clone(), *id);
            tokio::spawn(async move {
                let (mut keeper, mut stream) = client.keep_alive(id).await.expect("keep-alive");
                let mut latencies = Vec::new();
                while let Some(sent) = window.next_send() {
                    keeper.keep_alive().await.expect("send keep-alive");
                    let response = stream.message().await.unwrap().expect("stream open");
                    assert!(response.ttl() > 0, "lease {id} expired");
                    window.record(sent, &mut latencies);
                }
                latencies
            })
        })
        .collect();
    let measured = window.measure(tasks, pids).await;
    // Left to expire, they would be revoked during whatever the cluster runs next.
    for (mut client, id) in leases {
        client.revoke(id).await.expect("revoke");
    }
    measured
}
