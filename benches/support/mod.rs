//! What the benches share: a cluster of either server on loopback, a tokio runtime for the load,
//! latency percentiles and the load average, which says how much to trust a run's numbers.
#![allow(dead_code)] // each bench binary uses its own subset

use std::time::Duration;

use crate::common::{Cluster, Server};

/// Both servers run with detcd's (and etcd's) default raft timing, spelled out so the comparison
/// stays fair if either default moves.
pub const RAFT_TIMING: &[&str] = &["--heartbeat-interval=100", "--election-timeout=1000"];

/// Load before the measured window starts, discarded: connections, allocator, first fsyncs.
pub const WARMUP: Duration = Duration::from_secs(1);

/// The measured window; `BENCH_SECONDS` overrides it (the machine is shared, so short runs).
pub fn measure_window() -> Duration {
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(seconds)
}

/// A running cluster and the directory its data lives in (removed after the cluster stops:
/// fields drop in order).
pub struct Target {
    pub server: Server,
    pub cluster: Cluster,
    root: tempfile::TempDir,
    /// The leader's client URL: all load goes there, so a run measures replication, not which
    /// member a client happened to pick and the follower's forwarding hop.
    pub leader_url: String,
}

impl Target {
    pub fn start(server: Server, members: usize) -> Target {
        let root = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(server, root.path(), members, RAFT_TIMING);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let leader = loop {
            if let Some(leader) = cluster.leader() {
                break leader;
            }
            assert!(std::time::Instant::now() < deadline, "no leader elected");
            std::thread::sleep(Duration::from_millis(100));
        };
        let leader_url = format!("http://{}", cluster.specs[leader].endpoint());
        Target {
            server,
            cluster,
            root,
            leader_url,
        }
    }
}

pub fn server_name(server: Server) -> &'static str {
    match server {
        Server::Detcd => "detcd",
        Server::Etcd => "etcd",
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The `fraction` percentile (0.5, 0.99) of latencies sorted ascending.
pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    assert!(!sorted.is_empty());
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The 1, 5 and 15 minute load averages: on a shared 2-core machine, the context every number
/// here needs.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
