//! What the comparison bench is made of: a cluster of either server on loopback, the measured
//! window, the server processes' CPU and memory read from /proc, the workloads and the report.
#![allow(dead_code)] // every bench binary includes this module and uses its own subset

pub mod fanout;
pub mod keep_alive;
pub mod kv;
pub mod measure;
pub mod proc_stats;
pub mod report;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use crate::common::{http_get, Cluster, Node, Server};

/// Both servers run with detcd's (and etcd's) default raft timing, spelled out so the comparison
/// stays fair if either default moves.
pub const RAFT_TIMING: &[&str] = &["--heartbeat-interval=100", "--election-timeout=1000"];

/// Concurrent clients share this many connections, as etcd's own `benchmark` tool does.
pub const CONNECTIONS_MAX: usize = 4;

const SIGTERM: i32 = 15;

/// A restart is polled this often, so the restart → healthy time is good to about this much.
const HEALTH_POLL: Duration = Duration::from_millis(10);
/// Longer than any restart we expect (1M keys included): past it, the bench fails loudly.
const RESTART_TIMEOUT: Duration = Duration::from_secs(300);

/// A running cluster and the directory its data lives in (removed after the cluster stops:
/// fields drop in order).
pub struct Target {
    pub cluster: Cluster,
    _root: tempfile::TempDir,
    /// The leader's client URL: all load goes there, so a run measures replication, not which
    /// member a client happened to pick and the follower's forwarding hop.
    pub leader_url: String,
}

impl Target {
    pub fn start(server: Server, members: usize) -> Target {
        let root = tempfile::tempdir().unwrap();
        let cluster = Cluster::start(server, root.path(), members, RAFT_TIMING);
        let deadline = Instant::now() + Duration::from_secs(20);
        let leader = loop {
            if let Some(leader) = cluster.leader() {
                break leader;
            }
            assert!(Instant::now() < deadline, "no leader elected");
            std::thread::sleep(Duration::from_millis(100));
        };
        let leader_url = format!("http://{}", cluster.specs[leader].endpoint());
        Target {
            cluster,
            _root: root,
            leader_url,
        }
    }

    /// Every member's process id: server CPU and memory are summed over all of them.
    pub fn pids(&self) -> Vec<i32> {
        self.cluster.nodes.iter().flatten().map(Node::pid).collect()
    }

    /// Stops a one-member cluster gracefully (SIGTERM), starts it again over its data and returns
    /// the time from the new process's start to its first healthy `/health` answer.
    pub fn restart_to_healthy(&mut self) -> Duration {
        assert_eq!(
            self.cluster.specs.len(),
            1,
            "restart is timed on one member"
        );
        let mut node = self.cluster.nodes[0].take().expect("member is running");
        let status = node.signal_and_wait("TERM");
        // detcd exits 0; etcd, once it has shut down, dies of the signal it caught, as Go
        // programs do.
        assert!(
            status.success() || status.signal() == Some(SIGTERM),
            "graceful stop failed: {status}: {}",
            node.log_text()
        );
        let extra = self.cluster.extra.clone();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let spec = &self.cluster.specs[0];
        let started = Instant::now();
        let mut node = spec.spawn(self.cluster.server, &self.cluster.specs, "new", &extra);
        let healthy = loop {
            if http_get(spec.client_port, "/health").is_some_and(|(code, _)| code == 200) {
                break started.elapsed();
            }
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("restart exited with {status}: {}", node.log_text());
            }
            assert!(
                started.elapsed() < RESTART_TIMEOUT,
                "not healthy {RESTART_TIMEOUT:?} after restart: {}",
                node.log_text()
            );
            std::thread::sleep(HEALTH_POLL);
        };
        self.cluster.nodes[0] = Some(node);
        healthy
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

/// `count` client connections to `url` (each its own HTTP/2 connection).
pub async fn connect(url: &str, count: usize) -> Vec<etcd_client::Client> {
    let mut connections = Vec::new();
    for _ in 0..count {
        connections.push(etcd_client::Client::connect([url], None).await.unwrap());
    }
    connections
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The 1, 5 and 15 minute load averages: on a shared machine, how much to trust a run.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
