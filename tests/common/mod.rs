//! Shared harness for tests that run the real `detcd` binary on loopback ports.
#![allow(dead_code)] // each test binary uses its own subset

pub mod pki;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Ports handed out below the kernel's ephemeral range (32768 and up on Linux), so an outgoing
/// connection's local port can never take a port a test means to listen on later, and never the
/// same one twice in a process.
const TEST_PORTS: std::ops::Range<u16> = 20000..32000;

/// A loopback port that was free a moment ago and that this process has not handed out before.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = TEST_PORTS.end - TEST_PORTS.start;
    // Start each test process somewhere else, so concurrent test processes rarely meet.
    let base = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = TEST_PORTS.start + (base + offset) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// A `detcd` process; killed when dropped.
pub struct Node {
    pub child: Option<Child>,
    pub client_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// A single-member detcd serving clients on `client_port` (peers on some free port).
pub fn detcd_command(data_dir: &Path, client_port: u16, extra: &[&str]) -> Command {
    let mut command = single_member_command(
        env!("CARGO_BIN_EXE_detcd"),
        data_dir,
        client_port,
        free_port(),
    );
    command.args(extra);
    command
}

/// `program` (detcd or etcd) as member n1 of a cluster of one, on loopback ports.
fn single_member_command(
    program: &str,
    data_dir: &Path,
    client_port: u16,
    peer_port: u16,
) -> Command {
    let mut command = Command::new(program);
    command
        .arg("--name=n1")
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!(
            "--listen-client-urls=http://127.0.0.1:{client_port}"
        ))
        .arg(format!(
            "--advertise-client-urls=http://127.0.0.1:{client_port}"
        ))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
        ))
        .arg(format!("--initial-cluster=n1=http://127.0.0.1:{peer_port}"))
        .env_remove("RUST_LOG");
    command
}

impl Node {
    /// Starts detcd on a fresh port over `data_dir` and waits until it answers `/health`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Node {
        let client_port = free_port();
        Node::start_on(data_dir, client_port, extra)
    }

    pub fn start_on(data_dir: &Path, client_port: u16, extra: &[&str]) -> Node {
        Node::spawn(
            detcd_command(data_dir, client_port, extra),
            data_dir,
            client_port,
        )
    }

    /// Starts the real etcd (Debian's etcd-server package) the same way, to compare against.
    pub fn start_real_etcd(data_dir: &Path) -> Node {
        Node::start_real_etcd_with(data_dir, &[])
    }

    pub fn start_real_etcd_with(data_dir: &Path, extra: &[&str]) -> Node {
        let client_port = free_port();
        let mut command = single_member_command("etcd", data_dir, client_port, free_port());
        command.args(extra);
        Node::spawn(command, data_dir, client_port)
    }

    pub fn spawn(mut command: Command, data_dir: &Path, client_port: u16) -> Node {
        let log = data_dir.with_extension(format!("{client_port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn detcd");
        let mut node = Node {
            child: Some(child),
            client_port,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        node.wait_healthy();
        node
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("detcd exited early with {status}: {}", self.log_text());
            }
            if http_get(self.client_port, "/health").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("detcd did not become healthy: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_exit(Duration::from_secs(20))
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "detcd did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn etcdctl(&self, args: &[&str]) -> Output {
        etcdctl(&self.endpoint(), args)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    etcdctl_with_stdin(endpoint, args, "")
}

/// Through `endpoint`: users `root` (password `rootpw`) and `alice` (`alicepw`), alice with a
/// `reader` role that may read keys under `prefix`, then `auth enable`; each step must succeed.
pub fn enable_auth_with_a_reader(endpoint: &str, prefix: &str) {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "alice:alicepw"],
        &["role", "add", "reader"],
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            prefix,
            "--prefix",
        ],
        &["user", "grant-role", "alice", "reader"],
        &["auth", "enable"],
    ] {
        stdout(&etcdctl(endpoint, args));
    }
}

/// etcdctl with `stdin` piped in: `txn` reads its operations there, and `put KEY` its value
/// (how values too large for a command line get in).
pub fn etcdctl_with_stdin(endpoint: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is installed (apt-get install etcd-client)");
    let mut pipe = child.stdin.take().unwrap();
    // etcdctl may exit before reading all of a large stdin; that is its answer, not ours.
    let _ = pipe.write_all(stdin.as_bytes());
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// etcdctl's answer on one member: stdout, or the error it printed.
pub fn answer(endpoint: &str, args: &[&str]) -> String {
    let output = etcdctl(endpoint, args);
    let text = if output.status.success() {
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| line.starts_with("Error:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    text.trim_end().to_string()
}

/// A minimal HTTP/1.0 GET on loopback: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Which server a cluster runs: detcd, or the real etcd 3.4 to compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Detcd,
    Etcd,
}

/// One member's fixed ports and data dir.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
}

impl MemberSpec {
    pub fn new(root: &Path, name: &str) -> MemberSpec {
        MemberSpec {
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: root.join(format!("{name}.etcd")),
        }
    }

    /// The same member, ports and all, with its data under `root`.
    pub fn moved_to(&self, root: &Path) -> MemberSpec {
        MemberSpec {
            data_dir: root.join(format!("{}.etcd", self.name)),
            ..self.clone()
        }
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The command that starts this member in a cluster of `initial` (state "new" or "existing").
    pub fn command(
        &self,
        server: Server,
        initial: &[MemberSpec],
        state: &str,
        extra: &[&str],
    ) -> Command {
        let cluster: Vec<String> = initial
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        let mut command = Command::new(match server {
            Server::Detcd => env!("CARGO_BIN_EXE_detcd"),
            Server::Etcd => "etcd",
        });
        command
            .arg(format!("--name={}", self.name))
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!(
                "--listen-client-urls=http://127.0.0.1:{}",
                self.client_port
            ))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{}",
                self.client_port
            ))
            .arg(format!("--listen-peer-urls={}", self.peer_url()))
            .arg(format!("--initial-advertise-peer-urls={}", self.peer_url()))
            .arg(format!("--initial-cluster={}", cluster.join(",")))
            .arg(format!("--initial-cluster-state={state}"))
            .arg("--initial-cluster-token=detcd-test")
            .args(extra)
            .env_remove("RUST_LOG");
        command
    }

    /// Starts this member without waiting for it to be healthy (a member of a new cluster is
    /// healthy only once a quorum is up).
    pub fn spawn(
        &self,
        server: Server,
        initial: &[MemberSpec],
        state: &str,
        extra: &[&str],
    ) -> Node {
        let log = self
            .data_dir
            .with_extension(format!("{}.log", self.client_port));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = self
            .command(server, initial, state, extra)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn member");
        Node {
            child: Some(child),
            client_port: self.client_port,
            data_dir: self.data_dir.clone(),
            log,
        }
    }
}

/// A cluster of processes on loopback.
pub struct Cluster {
    pub server: Server,
    pub specs: Vec<MemberSpec>,
    pub nodes: Vec<Option<Node>>,
    pub extra: Vec<String>,
}

impl Cluster {
    pub fn start(server: Server, root: &Path, size: usize, extra: &[&str]) -> Cluster {
        let specs: Vec<MemberSpec> = (1..=size)
            .map(|i| MemberSpec::new(root, &format!("n{i}")))
            .collect();
        Cluster::start_members(server, specs, extra)
    }

    /// Starts a new cluster of `specs`; fixed ports let two servers run the same session and
    /// print the same URLs.
    pub fn start_members(server: Server, specs: Vec<MemberSpec>, extra: &[&str]) -> Cluster {
        let size = specs.len();
        let mut cluster = Cluster {
            server,
            nodes: Vec::new(),
            specs: specs.clone(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for spec in &specs {
            let node = spec.spawn(server, &specs, "new", extra);
            cluster.nodes.push(Some(node));
        }
        for i in 0..size {
            cluster.wait_healthy(i);
        }
        cluster
    }

    pub fn extra(&self) -> Vec<&str> {
        self.extra.iter().map(String::as_str).collect()
    }

    pub fn endpoints(&self) -> String {
        self.specs
            .iter()
            .zip(&self.nodes)
            .filter(|(_, node)| node.is_some())
            .map(|(spec, _)| spec.endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn wait_healthy(&mut self, i: usize) {
        let node = self.nodes[i].as_mut().expect("member is running");
        node.wait_healthy();
    }

    /// Restarts member `i` over its data dir.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "member {i} is still running");
        let extra = self.extra.clone();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let node = self.specs[i].spawn(self.server, &self.specs, "new", &extra);
        self.nodes[i] = Some(node);
        self.wait_healthy(i);
    }

    /// The index of the member that leads, by asking each running member's status.
    pub fn leader(&self) -> Option<usize> {
        let mut members = Vec::new();
        for (i, spec) in self.specs.iter().enumerate() {
            if self.nodes[i].is_none() {
                continue;
            }
            let output = etcdctl(&spec.endpoint(), &["endpoint", "status", "-w", "json"]);
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            members.push((
                i,
                json_u64(&text, "\"member_id\":"),
                json_u64(&text, "\"leader\":"),
            ));
        }
        members
            .iter()
            .find(|(_, id, leader)| id.is_some() && id == leader)
            .map(|(i, _, _)| *i)
    }
}

/// The first unsigned number after `field` in a JSON text.
pub fn json_u64(text: &str, field: &str) -> Option<u64> {
    let start = text.find(field)? + field.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

// Comparing etcdctl transcripts between etcd 3.4 and detcd.

/// etcdctl's own retry logs carry a timestamp and a random client id: they describe the client,
/// not the server, so they are left out of a comparison.
pub fn drop_client_logs(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| !line.starts_with("{\"level\":"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Replaces the (possibly negative) number after each occurrence of any of `fields`.
pub fn mask_numbers_after(text: &str, fields: &[&str], replace: impl Fn(&str) -> String) -> String {
    let mut masked = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = fields
        .iter()
        .filter_map(|field| rest.find(field).map(|i| i + field.len()))
        .min()
    {
        masked.push_str(&rest[..at]);
        rest = &rest[at..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '-')
            .unwrap_or(rest.len());
        masked.push_str(&replace(&rest[..digits]));
        rest = &rest[digits..];
    }
    masked.push_str(rest);
    masked
}

/// Cluster and member ids are random in etcd and derived differently in detcd: mask them.
pub fn mask_ids(text: &str) -> String {
    let fields = [
        "\"cluster_id\":",
        "\"member_id\":",
        "\"ClusterID\" : ",
        "\"MemberID\" : ",
    ];
    mask_numbers_after(text, &fields, |_| "<id>".into())
}

/// Runs the same session on a fresh etcd 3.4 and then on a fresh detcd, each one member, and
/// requires the same transcript.
pub fn assert_same_session(root: &Path, session: impl Fn(&Node) -> Vec<String>) {
    let etcd = Node::start_real_etcd(&root.join("etcd"));
    let expected = session(&etcd);
    drop(etcd);
    let detcd = Node::start(&root.join("detcd"), &[]);
    assert_same_transcripts(&expected, &session(&detcd));
}

/// Fails with every differing step, etcd's output above detcd's.
pub fn assert_same_transcripts(expected: &[String], actual: &[String]) {
    assert_eq!(
        expected.len(),
        actual.len(),
        "transcripts of different sessions"
    );
    let mismatches: Vec<String> = expected
        .iter()
        .zip(actual)
        .filter(|(expected, actual)| expected != actual)
        .map(|(expected, actual)| format!("--- etcd 3.4\n{expected}--- detcd\n{actual}"))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} steps differ:\n{}",
        mismatches.len(),
        expected.len(),
        mismatches.join("\n")
    );
}
