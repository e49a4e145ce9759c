//! Memory of detcd against the real etcd 3.4 (1 member), and how long each takes to come back
//! with that much data: measured in one run on the same machine.
//!
//! `cargo bench --bench memory_bench`. For each key count (`MEMORY_BENCH_KEYS`, a comma list,
//! default `100000,1000000`) and each server (`MEMORY_BENCH_SERVERS`, default `detcd,etcd`), it
//! starts a fresh member, puts that many distinct 8-byte keys with 256-byte values (64 clients
//! over 4 connections), waits for the member to settle, and reads the server's `VmRSS` (resident
//! now) and `VmHWM` (the peak) from `/proc/<pid>/status`. Then it stops the member with SIGTERM,
//! starts it again over the same data and times spawn → `/health` answering 200, and reads RSS
//! once more. The last line per key count gives the detcd/etcd ratios.

#[cfg(not(madsim))]
#[path = "../tests/common/mod.rs"]
mod common;
#[cfg(not(madsim))]
mod support;

#[cfg(madsim)]
fn main() {
    println!("memory_bench starts real etcd and detcd processes: run it without --cfg madsim");
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
    use crate::support::{self, millis, Target};

    const VALUE_BYTES: usize = 256;
    const CLIENTS: usize = 64;
    const CONNECTIONS: usize = 4;
    /// After the last put: time for a snapshot the fill triggered (both servers snapshot every
    /// 100,000 entries by default) to finish, so the figure is the settled one.
    const SETTLE: Duration = Duration::from_secs(3);

    /// One server's figures for one key count.
    struct Measured {
        idle: Memory,
        filled: Memory,
        fill: Duration,
        restart: Duration,
        restarted: Memory,
    }

    /// From `/proc/<pid>/status`, in KiB.
    #[derive(Clone, Copy)]
    struct Memory {
        rss_kib: u64,
        hwm_kib: u64,
    }

    impl Memory {
        fn of(pid: i32) -> Memory {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .expect("the server process is running");
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|kib| kib.parse().ok())
                    .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            };
            Memory {
                rss_kib: field("VmRSS:"),
                hwm_kib: field("VmHWM:"),
            }
        }
    }

    fn mib(kib: u64) -> f64 {
        kib as f64 / 1024.0
    }

    fn list_from_env<T>(name: &str, default: &str, parse: impl Fn(&str) -> T) -> Vec<T> {
        std::env::var(name)
            .unwrap_or_else(|_| default.to_string())
            .split(',')
            .map(|item| parse(item.trim()))
            .collect()
    }

    pub fn main() {
        let key_counts = list_from_env("MEMORY_BENCH_KEYS", "100000,1000000", |count| {
            count.parse::<usize>().expect("MEMORY_BENCH_KEYS: numbers")
        });
        let servers = list_from_env("MEMORY_BENCH_SERVERS", "detcd,etcd", |name| match name {
            "detcd" => Server::Detcd,
            "etcd" => Server::Etcd,
            other => panic!("MEMORY_BENCH_SERVERS: unknown server {other:?}"),
        });
        let runtime = support::runtime();
        println!("load average before: {}", support::load_average());
        println!(
            "{:<6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11} {:>13}",
            "server",
            "keys",
            "idle MiB",
            "RSS MiB",
            "HWM MiB",
            "fill s",
            "restart ms",
            "RSS restart",
            "HWM restart"
        );
        for keys in key_counts {
            let measured: Vec<(Server, Measured)> = servers
                .iter()
                .map(|server| (*server, measure(&runtime, *server, keys)))
                .collect();
            for (server, m) in &measured {
                println!(
                    "{:<6} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>11.1} {:>13.1}",
                    support::server_name(*server),
                    keys,
                    mib(m.idle.rss_kib),
                    mib(m.filled.rss_kib),
                    mib(m.filled.hwm_kib),
                    m.fill.as_secs_f64(),
                    millis(m.restart),
                    mib(m.restarted.rss_kib),
                    mib(m.restarted.hwm_kib),
                );
            }
            let of = |wanted: Server| measured.iter().find(|(s, _)| *s == wanted).map(|(_, m)| m);
            if let (Some(detcd), Some(etcd)) = (of(Server::Detcd), of(Server::Etcd)) {
                println!(
                    "detcd/etcd at {keys} keys: RSS {:.2}, HWM {:.2}, restart {:.2}, RSS after restart {:.2}",
                    detcd.filled.rss_kib as f64 / etcd.filled.rss_kib as f64,
                    detcd.filled.hwm_kib as f64 / etcd.filled.hwm_kib as f64,
                    detcd.restart.as_secs_f64() / etcd.restart.as_secs_f64(),
                    detcd.restarted.rss_kib as f64 / etcd.restarted.rss_kib as f64,
                );
            }
        }
        println!("load average after: {}", support::load_average());
    }

    fn measure(runtime: &tokio::runtime::Runtime, server: Server, keys: usize) -> Measured {
        let mut target = Target::start(server, 1);
        let pid = |target: &Target| target.cluster.nodes[0].as_ref().expect("running").pid();
        let idle = Memory::of(pid(&target));
        let started = Instant::now();
        runtime.block_on(fill(&target.leader_url, keys));
        let fill = started.elapsed();
        std::thread::sleep(SETTLE);
        let filled = Memory::of(pid(&target));

        let mut node = target.cluster.nodes[0].take().expect("running");
        assert!(node.signal_and_wait("TERM").success() || server == Server::Etcd);
        let started = Instant::now();
        target.cluster.restart(0);
        let restart = started.elapsed();
        let restarted = Memory::of(pid(&target));
        runtime.block_on(check_last_key(&target.leader_url, keys));
        Measured {
            idle,
            filled,
            fill,
            restart,
            restarted,
        }
    }

    /// The `index`th key: 8 bytes, distinct for the counts measured here.
    fn key(index: usize) -> String {
        assert!(index < 100_000_000, "keys are 8 decimal digits");
        format!("{index:08}")
    }

    /// `keys` puts of distinct keys from [`CLIENTS`] tasks, each with one put in flight.
    async fn fill(url: &str, keys: usize) {
        let mut connections = Vec::new();
        for _ in 0..CONNECTIONS {
            connections.push(Client::connect([url], None).await.unwrap());
        }
        let value: Arc<[u8]> = vec![b'v'; VALUE_BYTES].into();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let mut kv = connections[client % CONNECTIONS].kv_client();
                let value = value.clone();
                tokio::spawn(async move {
                    for index in (client..keys).step_by(CLIENTS) {
                        kv.put(key(index), value.to_vec(), None).await.expect("put");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// The restarted member still has the data: the last key reads back whole.
    async fn check_last_key(url: &str, keys: usize) {
        let mut client = Client::connect([url], None).await.unwrap();
        let response = client.get(key(keys - 1), None).await.unwrap();
        let value = response.kvs().first().map(|kv| kv.value().len());
        assert_eq!(
            value,
            Some(VALUE_BYTES),
            "the last key survived the restart"
        );
    }
}
