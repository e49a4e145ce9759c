//! The gRPC proxy (`detcd grpc-proxy start`, and a member binary with `--proxy=on|readonly`) in
//! front of a real 3-member detcd cluster on loopback, driven by etcdctl 3.4: the etcdctl
//! commands work through it, identical watches share one watch on the cluster, serializable
//! gets come from its cache, and SIGKILL of the member it uses breaks neither a client's watch
//! (no gap, no duplicate) nor its next request (at most one retry).
#![cfg(not(madsim))]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{etcdctl, free_port, http_get, json_u64, stdout, Cluster, Node, Server};

/// Fast elections so the cluster settles quickly after a member dies.
const FAST: &[&str] = &["--heartbeat-interval=50", "--election-timeout=500"];

fn start_proxy(dir: &Path, endpoints: &str, extra: &[&str]) -> Node {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_detcd"));
    command
        .args(["grpc-proxy", "start"])
        .arg(format!("--endpoints={endpoints}"))
        .arg(format!("--listen-addr=127.0.0.1:{port}"))
        .args(extra)
        .env_remove("RUST_LOG");
    Node::spawn(command, dir, port)
}

/// A value from the proxy's `/metrics`.
fn metric(proxy: &Node, name: &str) -> u64 {
    let (_, body) = http_get(proxy.client_port, "/metrics").expect("/metrics answers");
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `etcdctl watch` running in the background, printing to a file.
struct Watcher {
    child: Child,
    out: std::path::PathBuf,
}

impl Watcher {
    fn start(dir: &Path, name: &str, endpoint: &str, args: &[&str]) -> Watcher {
        let out = dir.join(format!("{name}.out"));
        let child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .arg("watch")
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("etcdctl is installed");
        Watcher { child, out }
    }

    /// The `PUT key value` events printed so far, as (key, value).
    fn events(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(3)
            .filter(|chunk| chunk.len() == 3)
            .map(|chunk| {
                assert_eq!(chunk[0], "PUT", "unexpected watch output: {text}");
                (chunk[1].to_string(), chunk[2].to_string())
            })
            .collect()
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A put through the proxy, tried at most twice: the second try must succeed.
fn put_within_one_retry(endpoint: &str, key: &str, value: &str) -> usize {
    for attempt in 1..=2 {
        if etcdctl(endpoint, &["put", key, value]).status.success() {
            return attempt;
        }
    }
    panic!("put {key} failed twice through the proxy");
}

#[test]
fn etcdctl_through_the_proxy_and_sigkill_of_its_member() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(Server::Detcd, root.path(), 3, FAST);
    // The proxy uses its first endpoint: make that a follower, so the member killed below is
    // the proxy's and no election delays the writes that follow.
    let leader = (0..30)
        .find_map(|_| {
            let leader = cluster.leader();
            if leader.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            leader
        })
        .expect("the cluster elects a leader");
    let victim = (leader + 1) % 3;
    let order = [victim, (victim + 1) % 3, (victim + 2) % 3];
    let endpoints: Vec<String> = order.iter().map(|&i| cluster.specs[i].endpoint()).collect();
    let proxy = start_proxy(root.path(), &endpoints.join(","), &[]);
    let via = proxy.endpoint();

    // KV, cache, cluster, lease, maintenance.
    assert_eq!(stdout(&etcdctl(&via, &["put", "a", "1"])), "OK\n");
    assert_eq!(stdout(&etcdctl(&via, &["get", "a"])), "a\n1\n");
    let hits = metric(&proxy, "etcd_grpc_proxy_cache_hits_total");
    assert_eq!(
        stdout(&etcdctl(&via, &["get", "a", "--consistency=s"])),
        "a\n1\n"
    );
    assert_eq!(metric(&proxy, "etcd_grpc_proxy_cache_hits_total"), hits + 1);
    // A write through the proxy drops the cached answer.
    stdout(&etcdctl(&via, &["put", "a", "2"]));
    assert_eq!(
        stdout(&etcdctl(&via, &["get", "a", "--consistency=s"])),
        "a\n2\n"
    );
    let members = stdout(&etcdctl(&via, &["member", "list"]));
    assert_eq!(members.lines().count(), 3, "{members}");
    for spec in &cluster.specs {
        assert!(members.contains(&spec.endpoint()), "{members}");
    }
    let granted = stdout(&etcdctl(&via, &["lease", "grant", "30"]));
    let lease = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    let kept = stdout(&etcdctl(&via, &["lease", "keep-alive", "--once", &lease]));
    assert!(kept.contains("keepalived with TTL(30)"), "{kept}");
    stdout(&etcdctl(
        &via,
        &["put", "leased", "x", &format!("--lease={lease}")],
    ));
    let ttl = stdout(&etcdctl(&via, &["lease", "timetolive", &lease, "--keys"]));
    assert!(ttl.contains("attached keys([leased])"), "{ttl}");
    let status = stdout(&etcdctl(&via, &["endpoint", "status", "-w", "json"]));
    let direct = stdout(&etcdctl(
        &endpoints[0],
        &["endpoint", "status", "-w", "json"],
    ));
    assert_eq!(
        json_u64(&status, "\"member_id\":"),
        json_u64(&direct, "\"member_id\":"),
        "the proxy uses its first endpoint"
    );

    // Two identical watches: one watch on the cluster.
    let mut watchers = [
        Watcher::start(root.path(), "w1", &via, &["--prefix", "k/"]),
        Watcher::start(root.path(), "w2", &via, &["--prefix", "k/"]),
    ];
    wait_until("two coalesced watches", Duration::from_secs(10), || {
        metric(&proxy, "detcd_grpc_proxy_watchers") == 2
            && metric(&proxy, "detcd_grpc_proxy_upstream_watches") == 1
    });
    for i in 0..5 {
        stdout(&etcdctl(
            &via,
            &["put", &format!("k/{i}"), &format!("v{i}")],
        ));
    }
    wait_until("events before the kill", Duration::from_secs(10), || {
        watchers.iter().all(|w| w.events().len() == 5)
    });

    // A keep-alive stream open through the proxy when its member dies.
    let short = stdout(&etcdctl(&via, &["lease", "grant", "5"]));
    let short = short
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    let keep_alive_out = root.path().join("keep-alive.out");
    let mut keep_alive = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={via}"))
        .args(["lease", "keep-alive", &short])
        .stdout(std::fs::File::create(&keep_alive_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let keep_alives = || {
        std::fs::read_to_string(&keep_alive_out)
            .unwrap_or_default()
            .matches("keepalived with TTL(5)")
            .count()
    };
    wait_until("a first keep-alive", Duration::from_secs(10), || {
        keep_alives() >= 1
    });

    // Freeze the member the proxy uses, write around it, then SIGKILL it: the proxy must resume
    // the watch from history on another member (a resume from "now" would skip k/5 and k/6).
    let pid = cluster.nodes[victim].as_ref().unwrap().pid().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let survivor = &endpoints[1];
    for i in 5..7 {
        stdout(&etcdctl(
            survivor,
            &["put", &format!("k/{i}"), &format!("v{i}")],
        ));
    }
    cluster.nodes[victim]
        .as_mut()
        .unwrap()
        .signal_and_wait("KILL");
    cluster.nodes[victim] = None;
    // The next request through the proxy works, at most after one retry.
    let mut attempts = Vec::new();
    for i in 7..10 {
        attempts.push(put_within_one_retry(
            &via,
            &format!("k/{i}"),
            &format!("v{i}"),
        ));
    }
    assert!(
        attempts[1..].iter().all(|&a| a == 1),
        "only the first request after the kill may need a retry: {attempts:?}"
    );
    let expected: Vec<(String, String)> = (0..10)
        .map(|i| (format!("k/{i}"), format!("v{i}")))
        .collect();
    wait_until("events after the kill", Duration::from_secs(15), || {
        watchers.iter().all(|w| w.events().len() >= 10)
    });
    std::thread::sleep(Duration::from_millis(300)); // a duplicate would show up by now
    for watcher in &mut watchers {
        assert_eq!(watcher.events(), expected, "no gap, no duplicate, in order");
        assert!(watcher.still_running(), "the client's watch survived");
    }
    wait_until("one upstream watch again", Duration::from_secs(10), || {
        metric(&proxy, "detcd_grpc_proxy_upstream_watches") == 1
    });
    // The keep-alive stream carried on through another member: more answers, lease alive.
    let before = keep_alives();
    wait_until(
        "keep-alives after the kill",
        Duration::from_secs(15),
        || keep_alives() >= before + 2,
    );
    assert!(
        keep_alive.try_wait().unwrap().is_none(),
        "keep-alive still running"
    );
    let ttl = stdout(&etcdctl(&via, &["lease", "timetolive", &short]));
    assert!(!ttl.contains("already expired"), "{ttl}");
    let _ = keep_alive.kill();
    let _ = keep_alive.wait();
    let status = stdout(&etcdctl(&via, &["endpoint", "status", "-w", "json"]));
    assert_ne!(
        json_u64(&status, "\"member_id\":"),
        json_u64(&direct, "\"member_id\":"),
        "the proxy moved to another member"
    );
    assert!(proxy.log_text().contains("switching to the next one"));

    // A member binary in proxy mode reaches the same proxy through etcdmain's proxy branch.
    let peers: Vec<String> = cluster
        .specs
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect();
    for (mode, writes) in [("on", true), ("readonly", false)] {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_detcd"));
        command
            .arg(format!("--proxy={mode}"))
            .arg(format!("--data-dir={}", root.path().join(mode).display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{port}"))
            .arg(format!("--initial-cluster={}", peers.join(",")))
            .env_remove("RUST_LOG");
        let mut member_proxy = Node::spawn(command, &root.path().join(mode), port);
        let put = etcdctl(&member_proxy.endpoint(), &["put", "m", mode]);
        assert_eq!(put.status.success(), writes, "{put:?}");
        if !writes {
            assert!(String::from_utf8_lossy(&put.stderr).contains("read-only"));
        }
        assert_eq!(
            stdout(&etcdctl(
                &member_proxy.endpoint(),
                &["get", "m", "--print-value-only"]
            )),
            "on\n"
        );
        assert!(member_proxy.signal_and_wait("INT").success());
    }
    drop(watchers);
    let mut proxy = proxy;
    assert!(
        proxy.signal_and_wait("INT").success(),
        "ctrl-c stops the proxy cleanly"
    );
}

#[test]
fn namespace_and_bad_flags() {
    let root = tempfile::tempdir().unwrap();
    let member = Node::start(&root.path().join("n1"), &[]);
    let proxy = start_proxy(root.path(), &member.endpoint(), &["--namespace=tenant/"]);
    stdout(&etcdctl(&proxy.endpoint(), &["put", "k", "v"]));
    assert_eq!(
        stdout(&etcdctl(&proxy.endpoint(), &["get", "", "--from-key"])),
        "k\nv\n"
    );
    assert_eq!(
        stdout(&member.etcdctl(&["get", "", "--from-key"])),
        "tenant/k\nv\n"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_detcd"))
        .args(["grpc-proxy", "start", "--listen-addr=nowhere"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--listen-addr"));
}

/// etcdctl's `user`, `role` and `auth` commands, and `--user` (Authenticate, then the token on
/// every call), work through the proxy. (A read-only proxy refuses the changes, as it refuses
/// every write: `writable`, tested above with `--proxy=readonly`.)
#[test]
fn auth_through_the_proxy() {
    let root = tempfile::tempdir().unwrap();
    let member = Node::start(&root.path().join("n1"), &["--bcrypt-cost=4"]);
    let proxy = start_proxy(&root.path().join("p"), &member.endpoint(), &[]);
    let at = |node: &Node, args: &[&str]| etcdctl(&node.endpoint(), args);
    common::enable_auth_with_a_reader(&proxy.endpoint(), "/app/");
    let refused = |output: std::process::Output| {
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        // etcdctl's last line; the retry interceptor's JSON warnings come before it.
        stderr.trim().lines().last().unwrap_or_default().to_string()
    };
    assert_eq!(
        refused(at(&proxy, &["put", "/app/x", "1"])),
        "Error: etcdserver: user name is empty"
    );
    assert_eq!(
        stdout(&at(&proxy, &["--user=root:rootpw", "put", "/app/x", "1"])),
        "OK\n"
    );
    assert_eq!(
        stdout(&at(
            &proxy,
            &[
                "--user=alice:alicepw",
                "get",
                "/app/x",
                "--print-value-only"
            ]
        )),
        "1\n"
    );
    assert_eq!(
        refused(at(&proxy, &["--user=alice:alicepw", "put", "/app/x", "2"])),
        "Error: etcdserver: permission denied"
    );
    assert_eq!(
        refused(at(&proxy, &["--user=alice:wrong", "get", "/app/x"])),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
}
