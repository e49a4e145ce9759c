//! Watch fan-out: one writer puts under a prefix, one put at a time, while many watches on that
//! prefix receive every event. An operation is one event delivered to one watch; its latency is
//! from the put's send to the event's arrival (the send time rides in the value).

use std::time::{Duration, Instant};

use etcd_client::{Client, WatchOptions};

use super::connect;
use super::kv::VALUE_BYTES;
use super::measure::{Measured, Window};
use super::proc_stats::CpuMeter;

pub const STREAMS: usize = 10;
pub const WATCHES_PER_STREAM: usize = 10;
const PREFIX: &str = "fan/";
/// Keys the writer cycles through (8 bytes each with the prefix).
const WRITER_KEYS: usize = 1000;
/// Put after the window; a stream is done when each of its watches has seen it.
const SENTINEL: &str = "fan/~end";
/// A fan-out that has not delivered everything by then has stalled: fail loudly.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn fanout(url: &str, length: Duration, pids: &[i32]) -> Measured {
    let epoch = Instant::now();
    let mut listeners = Vec::new();
    for client in connect(url, STREAMS).await {
        listeners.push(open_watches(client).await);
    }
    let window = Window::after_warmup(length);
    let receivers: Vec<_> = listeners
        .into_iter()
        .map(|(client, watcher, mut stream)| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut last_delivery = window.start;
                let mut ended = 0;
                while ended < WATCHES_PER_STREAM {
                    let response = stream.message().await.unwrap().expect("watch stream open");
                    let received = Instant::now();
                    for event in response.events() {
                        let kv = event.kv().expect("a put event has its key-value");
                        if kv.key() == SENTINEL.as_bytes() {
                            ended += 1;
                            continue;
                        }
                        let sent = epoch + Duration::from_nanos(send_time(kv.value()));
                        if window.contains(sent) {
                            latencies.push(received - sent);
                            last_delivery = received;
                        }
                    }
                }
                // The client and watcher hold the stream open until here.
                drop((client, watcher));
                (latencies, last_delivery)
            })
        })
        .collect();
    let mut kv = Client::connect([url], None).await.unwrap().kv_client();
    let writer = tokio::spawn(async move {
        for put in 0.. {
            let sent = Instant::now();
            if !window.is_open_at(sent) {
                break;
            }
            let mut value = vec![b'v'; VALUE_BYTES];
            value[..8].copy_from_slice(&((sent - epoch).as_nanos() as u64).to_le_bytes());
            let key = format!("{PREFIX}{:04}", put % WRITER_KEYS);
            kv.put(key, value, None).await.expect("put");
        }
        kv.put(SENTINEL, "", None).await.expect("put the sentinel");
    });
    tokio::time::sleep_until(window.start.into()).await;
    let meter = CpuMeter::start(pids);
    writer.await.unwrap();
    let mut latencies = Vec::new();
    let mut last_delivery = window.end;
    for receiver in receivers {
        let (seen, last) = tokio::time::timeout(DRAIN_TIMEOUT, receiver)
            .await
            .expect("every watch sees every put in time")
            .unwrap();
        latencies.extend(seen);
        last_delivery = last_delivery.max(last);
    }
    // Watches that fall behind deliver the window's events after it closes: the rate is over
    // the time until the last of them arrived, and the CPU over the same time.
    Measured::per_latency(latencies, last_delivery - window.start, meter.elapsed())
}

async fn open_watches(
    mut client: Client,
) -> (Client, etcd_client::Watcher, etcd_client::WatchStream) {
    let options = || Some(WatchOptions::new().with_prefix());
    // The first watch's creation is awaited by `watch` itself; the others' below.
    let (mut watcher, mut stream) = client.watch(PREFIX, options()).await.unwrap();
    for _ in 1..WATCHES_PER_STREAM {
        watcher.watch(PREFIX, options()).await.unwrap();
    }
    for _ in 1..WATCHES_PER_STREAM {
        let response = stream.message().await.unwrap().expect("watch stream open");
        assert!(response.created(), "no events before the first put");
    }
    (client, watcher, stream)
}

fn send_time(value: &[u8]) -> u64 {
    u64::from_le_bytes(
        value[..8]
            .try_into()
            .expect("the value carries its send time"),
    )
}
