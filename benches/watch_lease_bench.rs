//! Watch fan-out and lease keep-alive throughput of detcd against the real etcd 3.4 (1 member),
//! measured in one run so that the ratio means something on a noisy machine.
//!
//! `cargo bench --bench watch_lease_bench` (optionally `BENCH_SECONDS=N` for the keep-alive
//! window).
//! - Watch fan-out: 1,000 watches on one prefix, 100 per stream over 10 connections; a writer
//!   puts 200 keys under the prefix; events/s is every watch's events over the time from the
//!   first put to the last event, and "last event" is when the slowest watch saw the last put.
//! - Keep-alive: 64 leases, one keep-alive stream each over 4 connections, each stream sending
//!   its next keep-alive as soon as the previous one is answered.

#[cfg(not(madsim))]
#[path = "../tests/common/mod.rs"]
mod common;
#[cfg(not(madsim))]
mod support;

#[cfg(madsim)]
fn main() {
    println!("watch_lease_bench starts real etcd and detcd processes: run it without --cfg madsim");
}

#[cfg(not(madsim))]
fn main() {
    real::main();
}

#[cfg(not(madsim))]
mod real {
    use std::time::{Duration, Instant};

    use etcd_client::{Client, WatchOptions};

    use crate::common::Server;
    use crate::support::{self, millis, Target};

    const WATCH_STREAMS: usize = 10;
    const WATCHES_PER_STREAM: usize = 100;
    const PUTS: usize = 200;
    /// Puts in flight at once while the watchers listen.
    const WRITERS: usize = 8;
    /// A fan-out that has not delivered everything by then has stalled: fail loudly.
    const FANOUT_TIMEOUT: Duration = Duration::from_secs(120);
    const PREFIX: &str = "fan/";

    const LEASES: usize = 64;
    const LEASE_CONNECTIONS: usize = 4;
    const LEASE_TTL_SECONDS: i64 = 60;

    struct Fanout {
        events_per_second: f64,
        /// First put sent → the slowest watch saw the last put.
        last_event: Duration,
        /// First put sent → the last put acknowledged.
        puts_done: Duration,
    }

    pub fn main() {
        let runtime = support::runtime();
        let window = support::measure_window();
        println!("load average before: {}", support::load_average());
        let mut fanouts = Vec::new();
        let mut keep_alives = Vec::new();
        for server in [Server::Detcd, Server::Etcd] {
            let target = Target::start(server, 1);
            fanouts.push(runtime.block_on(watch_fanout(&target.leader_url)));
            keep_alives.push(runtime.block_on(keep_alive_load(&target.leader_url, window)));
        }
        println!(
            "watch fan-out: {} watches ({WATCH_STREAMS} streams), {PUTS} puts",
            WATCH_STREAMS * WATCHES_PER_STREAM
        );
        println!(
            "{:<6} {:>10} {:>14} {:>13}",
            "server", "events/s", "last event ms", "puts done ms"
        );
        for (server, fanout) in [Server::Detcd, Server::Etcd].iter().zip(&fanouts) {
            println!(
                "{:<6} {:>10.0} {:>14.1} {:>13.1}",
                support::server_name(*server),
                fanout.events_per_second,
                millis(fanout.last_event),
                millis(fanout.puts_done),
            );
        }
        println!(
            "detcd/etcd: events/s {:.2}, last event {:.2}",
            fanouts[0].events_per_second / fanouts[1].events_per_second,
            millis(fanouts[0].last_event) / millis(fanouts[1].last_event),
        );
        println!("lease keep-alive: {LEASES} leases, {LEASE_CONNECTIONS} connections");
        println!("{:<6} {:>14}", "server", "keep-alives/s");
        for (server, rate) in [Server::Detcd, Server::Etcd].iter().zip(&keep_alives) {
            println!("{:<6} {:>14.0}", support::server_name(*server), rate);
        }
        println!(
            "detcd/etcd: keep-alives/s {:.2}",
            keep_alives[0] / keep_alives[1]
        );
        println!("load average after: {}", support::load_average());
    }

    async fn watch_fanout(url: &str) -> Fanout {
        let mut listeners = Vec::new();
        for _ in 0..WATCH_STREAMS {
            let mut client = Client::connect([url], None).await.unwrap();
            let options = || Some(WatchOptions::new().with_prefix());
            // The first watch's creation is awaited by `watch` itself; the others' below.
            let (mut watcher, mut stream) = client.watch(PREFIX, options()).await.unwrap();
            for _ in 1..WATCHES_PER_STREAM {
                watcher.watch(PREFIX, options()).await.unwrap();
            }
            let mut created = 1;
            while created < WATCHES_PER_STREAM {
                let response = stream.message().await.unwrap().expect("watch stream open");
                assert!(response.created(), "no events before the first put");
                created += 1;
            }
            // The watcher holds the request side of the stream open.
            listeners.push((client, watcher, stream));
        }
        let start = Instant::now();
        let receivers: Vec<_> = listeners
            .into_iter()
            .map(|(client, watcher, mut stream)| {
                tokio::spawn(async move {
                    let expected = PUTS * WATCHES_PER_STREAM;
                    let mut seen = 0;
                    while seen < expected {
                        let response = stream.message().await.unwrap().expect("stream open");
                        seen += response.events().len();
                    }
                    drop((client, watcher));
                    start.elapsed()
                })
            })
            .collect();
        let client = Client::connect([url], None).await.unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let mut kv = client.kv_client();
                tokio::spawn(async move {
                    for put in (writer..PUTS).step_by(WRITERS) {
                        kv.put(format!("{PREFIX}{put:06}"), vec![b'v'; 128], None)
                            .await
                            .expect("put");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        let puts_done = start.elapsed();
        let mut last_event = Duration::ZERO;
        for receiver in receivers {
            let seen_all = tokio::time::timeout(FANOUT_TIMEOUT, receiver)
                .await
                .expect("every watch sees every put in time")
                .unwrap();
            last_event = last_event.max(seen_all);
        }
        Fanout {
            events_per_second: (PUTS * WATCH_STREAMS * WATCHES_PER_STREAM) as f64
                / last_event.as_secs_f64(),
            last_event,
            puts_done,
        }
    }

    /// Keep-alives answered per second over the window, after a warm-up.
    async fn keep_alive_load(url: &str, window: Duration) -> f64 {
        let mut connections = Vec::new();
        for _ in 0..LEASE_CONNECTIONS {
            connections.push(Client::connect([url], None).await.unwrap());
        }
        let mut leases = Vec::new();
        for lease in 0..LEASES {
            let mut client = connections[lease % LEASE_CONNECTIONS].lease_client();
            let grant = client.grant(LEASE_TTL_SECONDS, None).await.expect("grant");
            leases.push((client, grant.id()));
        }
        let window_start = Instant::now() + support::WARMUP;
        let window_end = window_start + window;
        let mut tasks = Vec::new();
        for (mut client, id) in leases {
            tasks.push(tokio::spawn(async move {
                let (mut keeper, mut stream) = client.keep_alive(id).await.expect("keep-alive");
                let mut answered = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= window_end {
                        return answered;
                    }
                    keeper.keep_alive().await.expect("send keep-alive");
                    let response = stream.message().await.unwrap().expect("stream open");
                    assert!(response.ttl() > 0, "lease {id} expired");
                    if sent >= window_start {
                        answered += 1;
                    }
                }
            }));
        }
        let mut answered = 0;
        for task in tasks {
            answered += task.await.unwrap();
        }
        answered as f64 / window.as_secs_f64()
    }
}
