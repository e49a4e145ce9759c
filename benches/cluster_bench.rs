//! Put throughput and latency of detcd against the real etcd 3.4, measured in one run on the same
//! machine, so that the ratio means something even when the absolute numbers are noisy.
//!
//! `cargo bench --bench cluster_bench` (optionally `BENCH_SECONDS=N`). For 1 and 3 members and
//! for 1 and 64 concurrent clients, it puts small values (16-byte keys over a 10k key space,
//! 128-byte values) to the leader for a warm-up second and then a fixed window, and prints
//! ops/s, p50 and p99 per server and the detcd/etcd ratios.

#[cfg(not(madsim))]
#[path = "../tests/common/mod.rs"]
mod common;
#[cfg(not(madsim))]
mod support;

#[cfg(madsim)]
fn main() {
    println!("cluster_bench starts real etcd and detcd processes: run it without --cfg madsim");
}

#[cfg(not(madsim))]
fn main() {
    real::main();
}

#[cfg(not(madsim))]
mod real {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use etcd_client::Client;

    use crate::common::Server;
    use crate::support::{self, millis, percentile, Target};

    const KEY_SPACE: u32 = 10_000;
    const VALUE_BYTES: usize = 128;
    const CLIENT_COUNTS: [usize; 2] = [1, 64];
    /// Concurrent clients share this many connections, as etcd's own `benchmark` tool does.
    const CONNECTIONS_MAX: usize = 4;

    struct Measured {
        ops_per_second: f64,
        p50: Duration,
        p99: Duration,
    }

    pub fn main() {
        let runtime = support::runtime();
        let window = support::measure_window();
        println!("load average before: {}", support::load_average());
        println!(
            "{:<6} {:>7} {:>7} {:>10} {:>9} {:>9}   detcd/etcd: ops/s  p50   p99",
            "server", "members", "clients", "ops/s", "p50 ms", "p99 ms"
        );
        for members in [1, 3] {
            // Servers alternate inside each cluster size, so a burst of load from elsewhere on
            // the machine is less likely to land on one side only.
            let detcd = measure_server(&runtime, Server::Detcd, members, window);
            let etcd = measure_server(&runtime, Server::Etcd, members, window);
            for (index, clients) in CLIENT_COUNTS.iter().enumerate() {
                print_row(Server::Detcd, members, *clients, &detcd[index], None);
                print_row(
                    Server::Etcd,
                    members,
                    *clients,
                    &etcd[index],
                    Some(&detcd[index]),
                );
            }
        }
        println!("load average after: {}", support::load_average());
    }

    /// One cluster, measured once per client count.
    fn measure_server(
        runtime: &tokio::runtime::Runtime,
        server: Server,
        members: usize,
        window: Duration,
    ) -> Vec<Measured> {
        let target = Target::start(server, members);
        CLIENT_COUNTS
            .iter()
            .map(|clients| runtime.block_on(put_load(&target.leader_url, *clients, window)))
            .collect()
    }

    /// `clients` tasks, each with one put in flight at a time, until the window closes.
    async fn put_load(url: &str, clients: usize, window: Duration) -> Measured {
        let mut connections = Vec::new();
        for _ in 0..clients.min(CONNECTIONS_MAX) {
            connections.push(Client::connect([url], None).await.unwrap());
        }
        let window_start = Instant::now() + support::WARMUP;
        let window_end = window_start + window;
        let value: Arc<[u8]> = vec![b'v'; VALUE_BYTES].into();
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let mut kv = connections[client % connections.len()].kv_client();
                let value = value.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    loop {
                        let sent = Instant::now();
                        if sent >= window_end {
                            return latencies;
                        }
                        let key = format!("bench-key-{:06}", rand::random_range(0..KEY_SPACE));
                        kv.put(key, value.to_vec(), None).await.expect("put");
                        if sent >= window_start {
                            latencies.push(sent.elapsed());
                        }
                    }
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        latencies.sort_unstable();
        Measured {
            ops_per_second: latencies.len() as f64 / window.as_secs_f64(),
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
        }
    }

    /// A row; etcd's row also carries the detcd/etcd ratios for its configuration.
    fn print_row(
        server: Server,
        members: usize,
        clients: usize,
        measured: &Measured,
        detcd: Option<&Measured>,
    ) {
        let ratios = detcd.map_or(String::new(), |detcd| {
            format!(
                "   {:>16.2} {:>5.2} {:>5.2}",
                detcd.ops_per_second / measured.ops_per_second,
                millis(detcd.p50) / millis(measured.p50),
                millis(detcd.p99) / millis(measured.p99),
            )
        });
        println!(
            "{:<6} {:>7} {:>7} {:>10.0} {:>9.2} {:>9.2}{ratios}",
            support::server_name(server),
            members,
            clients,
            measured.ops_per_second,
            millis(measured.p50),
            millis(measured.p99),
        );
    }
}
