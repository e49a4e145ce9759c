//! TLS on real sockets: etcdctl 3.4 and curl over `https://` with client certificates, refusals
//! (no certificate, one from another CA) with the server's log line, `http://` beside `https://`,
//! `--auto-tls`, start-up errors, and a 3-member cluster over peer TLS that refuses a member whose
//! certificate comes from another CA. Certificates are made here with rcgen.
#![cfg(not(madsim))]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::{free_port, stdout, MemberSpec, Node, Server};

/// etcdctl against `endpoint` with TLS options, failing fast when refused.
fn etcdctl_tls(endpoint: &str, tls: &[String], args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=2s", "--command-timeout=3s"])
        .args(tls)
        .args(args)
        .output()
        .expect("etcdctl is installed (apt-get install etcd-client)")
}

fn cert_flags(ca: &Path, pair: Option<&(PathBuf, PathBuf)>) -> Vec<String> {
    let mut flags = vec![format!("--cacert={}", ca.display())];
    if let Some((cert, key)) = pair {
        flags.push(format!("--cert={}", cert.display()));
        flags.push(format!("--key={}", key.display()));
    }
    flags
}

/// The last line of a failed command's stderr: etcdctl's `Error: ...`.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "expected a refusal");
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .last()
        .unwrap_or_default()
        .rsplit("}")
        .next()
        .unwrap()
        .to_string()
}

/// `put k v1` and `get k` through `endpoint` with etcdctl's `tls` flags.
fn put_and_get(endpoint: &str, tls: &[String]) {
    assert_eq!(
        stdout(&etcdctl_tls(endpoint, tls, &["put", "k", "v1"])),
        "OK\n"
    );
    assert_eq!(
        stdout(&etcdctl_tls(endpoint, tls, &["get", "k"])),
        "k\nv1\n"
    );
}

/// `/health` at `endpoint` (https) with curl, showing the client certificate.
fn curl_health(pki: &Pki, endpoint: &str) -> String {
    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client.0)
        .arg("--key")
        .arg(&pki.client.1)
        .arg(format!("{endpoint}/health"))
        .output()
        .expect("curl is installed");
    stdout(&curl)
}

/// Flags serving clients on `https://127.0.0.1:{https}` beside the harness's plain port.
fn https_client_flags(https: u16, http: u16) -> Vec<String> {
    vec![
        format!("--listen-client-urls=https://127.0.0.1:{https},http://127.0.0.1:{http}"),
        format!("--advertise-client-urls=https://127.0.0.1:{https}"),
    ]
}

fn wait_for_log(node: &Node, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if node.log_text().contains(text) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn etcdctl_and_curl_work_over_https_and_clients_without_a_valid_certificate_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let (node, https) = tls_member(root.path(), &pki);
    let endpoint = format!("https://127.0.0.1:{https}");
    let with_cert = cert_flags(&pki.ca, Some(&pki.client));
    put_and_get(&endpoint, &with_cert);
    // A watch over TLS sees the history from revision 1.
    let mut watch = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(&with_cert)
        .args(["watch", "k", "--rev=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(watch.stdout.take().unwrap())
        .lines()
        .take(3)
        .map(Result::unwrap)
        .collect();
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert_eq!(lines, ["PUT", "k", "v1"]);

    // /health on the same TLS port, with curl.
    assert_eq!(curl_health(&pki, &endpoint), "{\"health\":\"true\"}");

    // The plain listener beside it serves without certificates, as etcd's does.
    let plain = common::etcdctl(&node.endpoint(), &["get", "k", "--print-value-only"]);
    assert_eq!(stdout(&plain), "v1\n");

    // No client certificate, or one from a CA the server does not trust: refused, as etcd 3.4
    // refuses (same etcdctl error), and the server says whom it refused and why.
    let no_cert = error_line(&etcdctl_tls(
        &endpoint,
        &cert_flags(&pki.ca, None),
        &["get", "k"],
    ));
    let foreign = cert_flags(&pki.ca, Some(&pki.foreign_client));
    let foreign_cert = error_line(&etcdctl_tls(&endpoint, &foreign, &["get", "k"]));
    assert!(
        wait_for_log(&node, "rejected connection"),
        "{}",
        node.log_text()
    );
    let log = node.log_text();
    assert!(log.contains("peer sent no certificates"), "{log}");
    assert!(log.contains("UnknownIssuer"), "{log}");
    assert!(log.contains("remote_addr=127.0.0.1:"), "{log}");
    drop(node);

    let etcd_https = free_port();
    let etcd_http = free_port();
    let peer = free_port();
    let mut etcd = Command::new("etcd");
    etcd.arg("--name=n1")
        .arg(format!("--data-dir={}", root.path().join("etcd").display()))
        .args(https_client_flags(etcd_https, etcd_http))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=n1=http://127.0.0.1:{peer}"))
        .args(pki.member_flags(""));
    let etcd = Node::spawn(etcd, &root.path().join("etcd"), etcd_http);
    let etcd_endpoint = format!("https://127.0.0.1:{etcd_https}");
    let etcd_no_cert = error_line(&etcdctl_tls(
        &etcd_endpoint,
        &cert_flags(&pki.ca, None),
        &["get", "k"],
    ));
    let etcd_foreign = error_line(&etcdctl_tls(&etcd_endpoint, &foreign, &["get", "k"]));
    drop(etcd);
    assert_eq!(no_cert, etcd_no_cert);
    assert_eq!(foreign_cert, etcd_foreign);
}

#[test]
fn auto_tls_serves_a_generated_certificate_kept_under_the_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let (https, http) = (free_port(), free_port());
    let mut flags = https_client_flags(https, http);
    flags.push("--auto-tls".to_string());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let data_dir = root.path().join("detcd");
    let node = Node::start_on(&data_dir, http, &flags);
    let endpoint = format!("https://127.0.0.1:{https}");
    // etcdctl 3.4 skips verification only with TLS switched on explicitly.
    let insecure = [
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".to_string(),
    ];
    assert_eq!(
        stdout(&etcdctl_tls(&endpoint, &insecure, &["put", "a", "1"])),
        "OK\n"
    );
    assert_eq!(
        stdout(&etcdctl_tls(
            &endpoint,
            &insecure,
            &["get", "a", "--print-value-only"]
        )),
        "1\n"
    );
    let fixtures = data_dir.join("fixtures").join("client");
    let cert = std::fs::read_to_string(fixtures.join("cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(fixtures.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    // Without skipping verification, the self-signed certificate is (rightly) not trusted.
    let verified = etcdctl_tls(&endpoint, &[], &["get", "a"]);
    assert!(!verified.status.success());
    drop(node);
    // A restart keeps the certificate.
    let node = Node::start_on(&data_dir, http, &flags);
    assert_eq!(
        std::fs::read_to_string(fixtures.join("cert.pem")).unwrap(),
        cert
    );
    drop(node);
}

#[test]
fn bad_tls_settings_fail_at_start_up_with_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let garbage = root.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let run = |program: &str, name: &str, extra: &[String]| -> (Option<i32>, String) {
        let (https, http) = (free_port(), free_port());
        let peer = free_port();
        let output = Command::new(program)
            .arg(format!("--data-dir={}", root.path().join(name).display()))
            .args(https_client_flags(https, http))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let detcd = env!("CARGO_BIN_EXE_detcd");

    // An https URL without a certificate: etcd's message, word for word.
    let (code, detcd_err) = run(detcd, "d1", &[]);
    assert_eq!(code, Some(2), "{detcd_err}");
    let (_, etcd_err) = run("etcd", "e1", &[]);
    let expected =
        "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:";
    assert!(detcd_err.contains(expected), "{detcd_err}");
    assert!(etcd_err.contains(expected), "{etcd_err}");

    // A missing file, bad PEM, a client-cert-auth without a CA: exit 1 with the reason.
    let missing = root.path().join("missing.pem");
    for (flags, reason) in [
        (
            vec![
                format!("--cert-file={}", missing.display()),
                format!("--key-file={}", pki.member.1.display()),
            ],
            format!("open {}", missing.display()),
        ),
        (
            vec![
                format!("--cert-file={}", garbage.display()),
                format!("--key-file={}", pki.member.1.display()),
            ],
            "tls: failed to find any PEM data in certificate input".to_string(),
        ),
        (
            vec![
                format!("--cert-file={}", pki.member.0.display()),
                format!("--key-file={}", garbage.display()),
            ],
            "tls: failed to find any PEM data in key input".to_string(),
        ),
        (
            vec![
                format!("--cert-file={}", pki.member.0.display()),
                format!("--key-file={}", pki.member.1.display()),
                "--client-cert-auth".to_string(),
            ],
            "client cert auth needs a trusted CA file (--trusted-ca-file)".to_string(),
        ),
        (
            vec![
                "--auto-tls".to_string(),
                "--cipher-suites=TLS_RSA_WITH_RC4_128_SHA".to_string(),
            ],
            "is not supported".to_string(),
        ),
    ] {
        let (code, err) = run(detcd, "d2", &flags);
        assert!(matches!(code, Some(1 | 2)), "{flags:?}: {err}");
        assert!(
            err.contains(&reason),
            "{flags:?}: wanted {reason:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_cluster_forms_over_peer_tls_and_refuses_a_member_from_another_ca() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let specs: Vec<MemberSpec> = ["n1", "n2", "n3", "n4"]
        .iter()
        .map(|name| MemberSpec::new(root.path(), name))
        .collect();
    let peer_url = |spec: &MemberSpec| format!("https://127.0.0.1:{}", spec.peer_port);
    let cluster_flag = |members: &[MemberSpec]| {
        let members: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, peer_url(m)))
            .collect();
        format!("--initial-cluster={}", members.join(","))
    };
    // Clients over TLS too (beside the harness's plain port): a follower forwards lease
    // keep-alives to the leader's https client URL, presenting its own certificate.
    let https_ports: Vec<u16> = specs.iter().map(|_| free_port()).collect();
    let member_flags = |spec: &MemberSpec, members: &[MemberSpec], pair: &(PathBuf, PathBuf)| {
        let index = specs.iter().position(|s| s.name == spec.name).unwrap();
        let mut flags = https_client_flags(https_ports[index], spec.client_port);
        flags.extend(pki.member_flags(""));
        flags.extend([
            format!("--listen-peer-urls={}", peer_url(spec)),
            format!("--initial-advertise-peer-urls={}", peer_url(spec)),
            cluster_flag(members),
            format!("--peer-cert-file={}", pair.0.display()),
            format!("--peer-key-file={}", pair.1.display()),
            format!("--peer-trusted-ca-file={}", pki.ca.display()),
            "--peer-client-cert-auth".to_string(),
        ]);
        flags
    };
    let initial = &specs[..3];
    let mut nodes: Vec<Node> = initial
        .iter()
        .map(|spec| {
            let flags = member_flags(spec, initial, &pki.member);
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            spec.spawn(Server::Detcd, initial, "new", &flags)
        })
        .collect();
    for node in &mut nodes {
        node.wait_healthy();
    }
    let members = stdout(&nodes[0].etcdctl(&["member", "list"]));
    assert_eq!(members.lines().count(), 3, "{members}");
    for spec in initial {
        assert!(
            members.contains(&format!("{}, {}, ", spec.name, peer_url(spec))),
            "{members}"
        );
    }
    assert_eq!(stdout(&nodes[0].etcdctl(&["put", "k", "over-tls"])), "OK\n");
    assert_eq!(
        stdout(&nodes[2].etcdctl(&["get", "k", "--print-value-only"])),
        "over-tls\n"
    );
    let tls = cert_flags(&pki.ca, Some(&pki.client));
    let https = |i: usize| format!("https://127.0.0.1:{}", https_ports[i]);
    let granted = stdout(&etcdctl_tls(&https(0), &tls, &["lease", "grant", "30"]));
    let lease = granted.split_whitespace().nth(1).unwrap().to_string();
    for i in 0..3 {
        let kept = etcdctl_tls(&https(i), &tls, &["lease", "keep-alive", "--once", &lease]);
        assert!(stdout(&kept).contains("keepalived with TTL"), "member {i}");
    }

    // n4 is added, then starts with a certificate from another CA (it trusts the cluster's CA,
    // so only the cluster's check can stop it): every member refuses it, and it cannot join.
    let n4 = &specs[3];
    let added = nodes[0].etcdctl(&[
        "member",
        "add",
        "n4",
        &format!("--peer-urls={}", peer_url(n4)),
    ]);
    stdout(&added);
    let flags = member_flags(n4, &specs, &pki.foreign_member);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut joiner = n4.spawn(Server::Detcd, &specs, "existing", &flags);
    let status = joiner.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let joiner_log = joiner.log_text();
    assert!(
        joiner_log.contains("cannot fetch the cluster's members"),
        "{joiner_log}"
    );
    assert!(
        wait_for_log(&nodes[0], "side=\"peer\""),
        "{}",
        nodes[0].log_text()
    );
    let log = nodes[0].log_text();
    assert!(
        log.contains("rejected connection") && log.contains("UnknownIssuer"),
        "{log}"
    );
    // The cluster is none the worse.
    assert_eq!(
        stdout(&nodes[1].etcdctl(&["get", "k", "--print-value-only"])),
        "over-tls\n"
    );
}

/// With `--client-cert-auth` and auth enabled, a client certificate's common name is the user
/// (etcd's CN-as-user): no password, no token, and that user's roles decide, as etcd 3.4 does.
#[test]
fn a_client_certificates_common_name_is_its_user_once_auth_is_enabled() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let (https, http) = (free_port(), free_port());
    let mut flags = https_client_flags(https, http);
    flags.extend(pki.member_flags(""));
    flags.push("--bcrypt-cost=4".to_string());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _node = Node::start_on(&root.path().join("detcd"), http, &flags);
    let endpoint = format!("https://127.0.0.1:{https}");
    let as_root = cert_flags(&pki.ca, Some(&pki.client));
    let as_alice = cert_flags(&pki.ca, Some(&pki.alice));
    let ok = |tls: &[String], args: &[&str]| {
        let output = etcdctl_tls(&endpoint, tls, args);
        assert!(output.status.success(), "{args:?}: {}", error_line(&output));
        stdout(&output)
    };
    for args in [
        &["user", "add", "root", "--new-user-password=rootpw"][..],
        &["user", "add", "alice", "--new-user-password=alicepw"],
        &["role", "add", "writer-a"],
        &["role", "grant-permission", "writer-a", "readwrite", "/a"],
        &["user", "grant-role", "alice", "writer-a"],
        &["auth", "enable"],
    ] {
        ok(&as_root, args);
    }
    assert_eq!(ok(&as_alice, &["put", "/a", "1"]), "OK\n");
    assert_eq!(
        error_line(&etcdctl_tls(&endpoint, &as_alice, &["put", "/b", "1"])),
        "Error: etcdserver: permission denied"
    );
    // The root certificate is root: everything goes, the role admin included.
    assert_eq!(ok(&as_root, &["put", "/b", "2"]), "OK\n");
    assert_eq!(ok(&as_root, &["get", "/b", "--print-value-only"]), "2\n");
    // Revoking alice's role takes effect for her certificate at once.
    ok(&as_root, &["user", "revoke-role", "alice", "writer-a"]);
    assert_eq!(
        error_line(&etcdctl_tls(&endpoint, &as_alice, &["get", "/a"])),
        "Error: etcdserver: permission denied"
    );
}

/// `detcd grpc-proxy start` in front of `endpoints` on `listen`, with `flags`, logging to
/// `dir`.log.
fn grpc_proxy_command(dir: &Path, listen: u16, endpoints: &str, flags: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_detcd"));
    command
        .args(["grpc-proxy", "start"])
        .arg(format!("--endpoints={endpoints}"))
        .arg(format!("--listen-addr=127.0.0.1:{listen}"))
        .arg(format!("--data-dir={}", dir.display()))
        .args(flags)
        .env_remove("RUST_LOG");
    command
}

/// The proxy, once healthy. Its /health is watched on a plain `--metrics-addr`, since its own
/// port may serve TLS only.
fn start_grpc_proxy(dir: &Path, listen: u16, endpoints: &str, flags: &[String]) -> Node {
    let metrics = free_port();
    let mut command = grpc_proxy_command(dir, listen, endpoints, flags);
    command.arg(format!("--metrics-addr=http://127.0.0.1:{metrics}"));
    Node::spawn(command, dir, metrics)
}

/// A proxy that cannot become healthy: etcdctl's stderr for a put through it (its retries say
/// why each attempt failed), and the proxy's log.
fn refused_through_proxy(
    dir: &Path,
    endpoints: &str,
    flags: &[String],
    tls: &[String],
) -> (String, String) {
    let listen = free_port();
    let log = dir.with_extension("log");
    let mut proxy = grpc_proxy_command(dir, listen, endpoints, flags)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(Instant::now() < deadline, "the proxy does not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let scheme = if tls.is_empty() { "http" } else { "https" };
    let put = etcdctl_tls(
        &format!("{scheme}://127.0.0.1:{listen}"),
        tls,
        &["put", "k", "v"],
    );
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    assert!(!put.status.success(), "{put:?}");
    let stderr = String::from_utf8_lossy(&put.stderr).into_owned();
    (stderr, std::fs::read_to_string(&log).unwrap())
}

/// A member that serves clients over TLS only when they show a certificate from the CA.
fn tls_member(root: &Path, pki: &Pki) -> (Node, u16) {
    let (https, http) = (free_port(), free_port());
    let mut flags = https_client_flags(https, http);
    flags.extend(pki.member_flags(""));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    (Node::start_on(&root.join("detcd"), http, &flags), https)
}

#[test]
fn the_grpc_proxy_dials_a_tls_cluster_with_a_client_certificate_and_serves_tls() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let (_member, member_https) = tls_member(root.path(), &pki);
    let listen = free_port();
    let mut flags = cert_flags(&pki.ca, Some(&pki.client));
    flags.extend([
        format!("--cert-file={}", pki.member.0.display()),
        format!("--key-file={}", pki.member.1.display()),
        format!("--trusted-ca-file={}", pki.ca.display()),
    ]);
    // A bare host:port endpoint is dialed over TLS once TLS flags are given, as clientv3 does.
    let proxy = start_grpc_proxy(
        &root.path().join("proxy"),
        listen,
        &format!("127.0.0.1:{member_https}"),
        &flags,
    );
    let endpoint = format!("https://127.0.0.1:{listen}");
    let with_cert = cert_flags(&pki.ca, Some(&pki.client));
    put_and_get(&endpoint, &with_cert);
    assert_eq!(curl_health(&pki, &endpoint), "{\"health\":\"true\"}");

    // --trusted-ca-file makes the proxy ask for client certificates, as etcd's does: none, or
    // one from another CA, is refused; and plain http on the TLS port gets nothing.
    let no_cert = etcdctl_tls(&endpoint, &cert_flags(&pki.ca, None), &["get", "k"]);
    assert!(!no_cert.status.success(), "{no_cert:?}");
    let foreign = cert_flags(&pki.ca, Some(&pki.foreign_client));
    let foreign = etcdctl_tls(&endpoint, &foreign, &["get", "k"]);
    assert!(!foreign.status.success(), "{foreign:?}");
    let plain = common::etcdctl(&format!("127.0.0.1:{listen}"), &["get", "k"]);
    assert!(!plain.status.success(), "{plain:?}");
    assert!(
        wait_for_log(&proxy, "UnknownIssuer"),
        "{}",
        proxy.log_text()
    );
    assert!(proxy.log_text().contains("peer sent no certificates"));
}

#[test]
fn a_grpc_proxy_that_cannot_verify_the_cluster_says_why_and_insecure_skip_tls_verify_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let (tls_node, member_https) = tls_member(root.path(), &pki);
    let member = format!("https://127.0.0.1:{member_https}");

    // The member's certificate is not from --cacert's CA: every call through the proxy fails,
    // saying why, and so does the proxy's log.
    let wrong_ca_dir = root.path().join("wrong-ca");
    let mut flags = cert_flags(&pki.foreign_ca, Some(&pki.client));
    flags.push("--auto-tls".into());
    let skip_verify = [
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".to_string(),
    ];
    let (error, log) = refused_through_proxy(&wrong_ca_dir, &member, &flags, &skip_verify);
    assert!(
        error.contains("code = Unavailable desc = invalid peer certificate: UnknownIssuer"),
        "{error}"
    );
    assert!(log.contains("UnknownIssuer"), "{log}");
    // --auto-tls wrote the proxy's certificate under its data dir.
    assert!(wrong_ca_dir.join("fixtures/proxy/cert.pem").exists());

    // Without --cert/--key the member (client-cert-auth) refuses the proxy, and its log says
    // why. The client reads Unavailable with the connection's end: the member's alert
    // ("received fatal alert: CertificateRequired"), or, when the proxy's write comes first, a
    // broken pipe (TLS 1.3 checks the client certificate after the client's handshake is done).
    let flags = cert_flags(&pki.ca, None);
    let (error, _) = refused_through_proxy(&root.path().join("no-cert"), &member, &flags, &[]);
    assert!(
        error.contains("code = Unavailable desc = transport error: connection error: "),
        "{error}"
    );
    assert!(
        wait_for_log(&tls_node, "peer sent no certificates"),
        "{}",
        tls_node.log_text()
    );

    // --insecure-skip-tls-verify accepts the certificate unverified (the member still checks
    // the proxy's client certificate).
    let mut flags = cert_flags(&pki.foreign_ca, Some(&pki.client));
    flags.push("--insecure-skip-tls-verify".into());
    let listen = free_port();
    let _proxy = start_grpc_proxy(&root.path().join("skip"), listen, &member, &flags);
    let through = common::etcdctl(&format!("127.0.0.1:{listen}"), &["put", "k", "v"]);
    assert_eq!(stdout(&through), "OK\n");
}

/// A member binary with `--proxy=on` reaches TLS peers with its peer TLS flags (as etcd's v2
/// proxy does), dials their https client URLs with them, and serves https clients with its
/// client TLS flags.
#[test]
fn proxy_mode_uses_the_peer_tls_flags_upstream_and_the_client_ones_for_its_listeners() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let spec = MemberSpec::new(root.path(), "n1");
    let peer_url = format!("https://127.0.0.1:{}", spec.peer_port);
    let https = free_port();
    let peer_flags = |prefix: &str| {
        let mut flags = pki.member_flags(prefix);
        flags.push(format!("--initial-cluster=n1={peer_url}"));
        flags
    };
    let mut flags = https_client_flags(https, spec.client_port);
    flags.extend(pki.member_flags(""));
    flags.extend(peer_flags("peer-"));
    flags.extend([
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut member = spec.spawn(Server::Detcd, &[], "new", &flags);
    member.wait_healthy();

    let (listen, metrics) = (free_port(), free_port());
    let proxy_dir = root.path().join("proxy");
    let mut command = Command::new(env!("CARGO_BIN_EXE_detcd"));
    command
        .args(["--name=p", "--proxy=on"])
        .arg(format!("--data-dir={}", proxy_dir.display()))
        .arg(format!("--listen-client-urls=https://127.0.0.1:{listen}"))
        .arg(format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"))
        .args(pki.member_flags(""))
        .args(peer_flags("peer-"))
        .env_remove("RUST_LOG");
    let _proxy = Node::spawn(command, &proxy_dir, metrics);
    let endpoint = format!("https://127.0.0.1:{listen}");
    let with_cert = cert_flags(&pki.ca, Some(&pki.client));
    assert_eq!(
        stdout(&etcdctl_tls(&endpoint, &with_cert, &["put", "k", "v"])),
        "OK\n"
    );
    assert_eq!(
        stdout(&etcdctl_tls(
            &endpoint,
            &with_cert,
            &["get", "k", "--print-value-only"]
        )),
        "v\n"
    );
}
