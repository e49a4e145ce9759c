//! Shared harness for tests that run the real `detcd` binary on loopback ports.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `detcd` process; killed when dropped.
pub struct Node {
    pub child: Option<Child>,
    pub client_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

pub fn detcd_command(data_dir: &Path, client_port: u16, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_detcd"));
    command
        .arg("--name=n1")
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!(
            "--listen-client-urls=http://127.0.0.1:{client_port}"
        ))
        .arg(format!(
            "--advertise-client-urls=http://127.0.0.1:{client_port}"
        ))
        .args(extra)
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
        let (client_port, peer_port) = (free_port(), free_port());
        let mut command = Command::new("etcd");
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
            .args(extra);
        Node::spawn(command, data_dir, client_port)
    }

    fn spawn(mut command: Command, data_dir: &Path, client_port: u16) -> Node {
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

    fn wait_healthy(&mut self) {
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
