//! Closed-loop KV load (puts, ranges, txns: each client has one request in flight) and the fill
//! that writes a key space once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp};

use super::measure::{Measured, Window};
use super::proc_stats::CpuMeter;
use super::{connect, CONNECTIONS_MAX};

/// Keys the steady workloads pick from at random; preloaded so that every range finds its key.
pub const KEY_SPACE: usize = 10_000;
pub const VALUE_BYTES: usize = 256;
/// Clients of a fill, and of the preload.
const FILL_CLIENTS: usize = 64;

/// 8 bytes: `k` and seven digits, enough for 10M distinct keys.
pub fn key_name(index: usize) -> String {
    debug_assert!(index < 10_000_000);
    format!("k{index:07}")
}

/// One kind of request.
#[derive(Debug, Clone, Copy)]
pub enum KvOp {
    Put,
    /// A one-key range; linearizable (a read index round) unless serializable.
    Range {
        serializable: bool,
    },
    /// A txn whose compare always holds (a key's version is never negative) and whose success
    /// branch puts the key: the shape of a compare-and-set.
    TxnPut,
}

impl KvOp {
    async fn send(self, kv: &mut KvClient, key: String, value: &[u8]) {
        match self {
            KvOp::Put => {
                kv.put(key, value, None).await.expect("put");
            }
            KvOp::Range { serializable } => {
                let options = serializable.then(|| GetOptions::new().with_serializable());
                let response = kv.get(key, options).await.expect("range");
                assert_eq!(response.kvs().len(), 1, "a preloaded key is missing");
            }
            KvOp::TxnPut => {
                let txn = Txn::new()
                    .when([Compare::version(key.clone(), CompareOp::Greater, -1)])
                    .and_then([TxnOp::put(key, value, None)]);
                let response = kv.txn(txn).await.expect("txn");
                assert!(response.succeeded(), "the compare always holds");
            }
        }
    }
}

/// `clients` tasks over random keys of the key space, until the window closes.
pub async fn closed_loop(
    url: &str,
    clients: usize,
    op: KvOp,
    length: Duration,
    pids: &[i32],
) -> Measured {
    let connections = connect(url, clients.min(CONNECTIONS_MAX)).await;
    let window = Window::after_warmup(length);
    let value: Arc<[u8]> = vec![b'v'; VALUE_BYTES].into();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let mut kv = connections[client % connections.len()].kv_client();
            let value = value.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while let Some(sent) = window.next_send() {
                    let key = key_name(rand::random_range(0..KEY_SPACE));
                    op.send(&mut kv, key, &value).await;
                    window.record(sent, &mut latencies);
                }
                latencies
            })
        })
        .collect();
    window.measure(tasks, pids).await
}

/// Writes keys `0..keys` once, `puts_per_request` to a request (a plain put for 1, else a txn of
/// that many puts), from 64 clients. Every put is an operation; latency is per request.
pub async fn fill(url: &str, keys: usize, puts_per_request: usize, pids: &[i32]) -> Measured {
    let connections = connect(url, CONNECTIONS_MAX).await;
    let next = Arc::new(AtomicUsize::new(0));
    let value: Arc<[u8]> = vec![b'v'; VALUE_BYTES].into();
    let started = Instant::now();
    let meter = CpuMeter::start(pids);
    let tasks: Vec<_> = (0..FILL_CLIENTS)
        .map(|client| {
            let mut kv = connections[client % connections.len()].kv_client();
            let (next, value) = (next.clone(), value.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let first = next.fetch_add(puts_per_request, Ordering::Relaxed);
                    if first >= keys {
                        return latencies;
                    }
                    let last = (first + puts_per_request).min(keys);
                    let sent = Instant::now();
                    if puts_per_request == 1 {
                        kv.put(key_name(first), &*value, None).await.expect("put");
                    } else {
                        let puts: Vec<TxnOp> = (first..last)
                            .map(|index| TxnOp::put(key_name(index), &*value, None))
                            .collect();
                        kv.txn(Txn::new().and_then(puts))
                            .await
                            .expect("txn of puts");
                    }
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Measured::new(keys as u64, latencies, started.elapsed(), meter.elapsed())
}
