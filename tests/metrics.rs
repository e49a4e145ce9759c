//! `/metrics` under etcd's names: the same traffic against a three-member detcd and a
//! three-member etcd 3.4, then the same checks on the series etcd's Grafana dashboard reads
//! (names, types, labels and sane values), so a scrape config or dashboard written for one works
//! for the other.
#![cfg(not(madsim))]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Cluster, Server};
use etcd_client::{Client, GetOptions};

/// Snapshots every few entries, so the state machine's durable write (detcd's backend commit)
/// happens during the test.
const FLAGS: &[&str] = &[
    "--heartbeat-interval=50",
    "--election-timeout=500",
    "--snapshot-count=5",
];
const PUTS: usize = 20;

/// One scrape: each series (name and labels, as printed) with its value, and each name's type.
struct Scrape {
    series: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn of(port: u16) -> Scrape {
        let body = get_metrics(port);
        let mut scrape = Scrape {
            series: BTreeMap::new(),
            types: BTreeMap::new(),
        };
        for line in body.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (name, kind) = declared.split_once(' ').expect("# TYPE name kind");
                scrape.types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').expect("series value");
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("a number in {line}"));
                scrape.series.insert(series.to_string(), value);
            }
        }
        scrape
    }

    /// The value of one series, e.g. `etcd_server_has_leader` or `x{a="b"}`; 0 if absent (a
    /// labelled counter appears only once counted).
    fn value(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }

    /// The values of every labelled series of `name`.
    fn labelled(&self, name: &str) -> Vec<(&str, f64)> {
        let prefix = format!("{name}{{");
        self.series
            .iter()
            .filter(|(series, _)| series.starts_with(&prefix))
            .map(|(series, value)| (series.as_str(), *value))
            .collect()
    }

    fn expect_type(&self, name: &str, kind: &str) -> Result<(), String> {
        match self.types.get(name) {
            Some(found) if found == kind => Ok(()),
            found => Err(format!("{name} is {found:?}, not a {kind}")),
        }
    }
}

/// `GET /metrics` in HTTP/1.0, so that neither server answers in chunks.
fn get_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("an answer");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

fn expect(holds: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    holds.then_some(()).ok_or_else(what)
}

/// Scrapes `port` until `check` passes (counters of other members and of ended streams
/// settle a little after the calls return), or fails with its last complaint.
fn eventually(port: u16, check: impl Fn(&Scrape) -> Result<(), String>) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = Scrape::of(port);
        match check(&scrape) {
            Ok(()) => return scrape,
            Err(complaint) if Instant::now() > deadline => {
                panic!("port {port}: {complaint}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn grpc(counter: &str, service: &str, method: &str, kind: &str, code: Option<&str>) -> String {
    let code = code.map_or(String::new(), |code| format!("grpc_code=\"{code}\","));
    format!(
        "grpc_server_{counter}_total{{{code}grpc_method=\"{method}\",grpc_service=\"etcdserverpb.{service}\",grpc_type=\"{kind}\"}}"
    )
}

/// Open watch streams as etcd's dashboard counts them: started minus handled.
fn open_watch_streams(scrape: &Scrape) -> f64 {
    let sum = |counter| -> f64 {
        let name = format!("grpc_server_{counter}_total");
        scrape
            .labelled(&name)
            .iter()
            .filter(|(series, _)| {
                series.contains("grpc_service=\"etcdserverpb.Watch\"")
                    && series.contains("grpc_type=\"bidi_stream\"")
            })
            .map(|(_, value)| value)
            .sum()
    };
    sum("started") - sum("handled")
}

async fn traffic_then_checks(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(server, dir.path(), 3, FLAGS);
    let ports: Vec<u16> = cluster.specs.iter().map(|spec| spec.client_port).collect();
    let mut client = Client::connect([cluster.specs[0].endpoint()], None)
        .await
        .unwrap();
    for i in 0..PUTS {
        client.put(format!("k{i:02}"), "v", None).await.unwrap();
    }
    client.delete("k00", None).await.unwrap();
    let future = client
        .get("k01", Some(GetOptions::new().with_revision(1_000)))
        .await
        .expect_err("a future revision is refused");
    assert!(future.to_string().contains("future revision"), "{future}");

    // The member the client talked to counted its calls by method and code, and their bytes.
    let client_side = eventually(ports[0], |m| {
        let puts = grpc("started", "KV", "Put", "unary", None);
        expect(m.value(&puts) == PUTS as f64, || {
            format!("{puts} is {}", m.value(&puts))
        })?;
        let ok = grpc("handled", "KV", "Put", "unary", Some("OK"));
        expect(m.value(&ok) == PUTS as f64, || {
            format!("{ok} is {}", m.value(&ok))
        })?;
        let refused = grpc("handled", "KV", "Range", "unary", Some("OutOfRange"));
        expect(m.value(&refused) == 1.0, || {
            format!("{refused} is {}", m.value(&refused))
        })?;
        for bytes in ["sent", "received"] {
            let name = format!("etcd_network_client_grpc_{bytes}_bytes_total");
            expect(m.value(&name) > 0.0, || format!("{name} is 0"))?;
        }
        m.expect_type("grpc_server_handled_total", "counter")?;
        m.expect_type("grpc_server_started_total", "counter")
    });
    assert_eq!(open_watch_streams(&client_side), 0.0);

    // Every member: leader, proposals, store, disk and peer traffic.
    for &port in &ports {
        eventually(port, |m| {
            expect(m.value("etcd_server_has_leader") == 1.0, || {
                "no leader".into()
            })?;
            let committed = m.value("etcd_server_proposals_committed_total");
            let applied = m.value("etcd_server_proposals_applied_total");
            expect(committed > PUTS as f64 && applied == committed, || {
                format!("committed {committed}, applied {applied}")
            })?;
            expect(m.value("etcd_server_proposals_pending") == 0.0, || {
                "pending".into()
            })?;
            expect(m.value("etcd_server_proposals_failed_total") == 0.0, || {
                "failed".into()
            })?;
            m.expect_type("etcd_server_leader_changes_seen_total", "counter")?;
            let leader_changes = m.value("etcd_server_leader_changes_seen_total");
            expect(leader_changes >= 1.0, || {
                format!("{leader_changes} leader changes")
            })?;
            let keys = m.value("etcd_debugging_mvcc_keys_total");
            expect(keys == (PUTS - 1) as f64, || format!("{keys} keys"))?;
            let db = m.value("etcd_mvcc_db_total_size_in_bytes");
            expect(db > 0.0, || "an empty db".into())?;
            for disk in ["wal_fsync", "backend_commit"] {
                let name = format!("etcd_disk_{disk}_duration_seconds");
                m.expect_type(&name, "histogram")?;
                let count = m.value(&format!("{name}_count"));
                let within_8s = m.value(&format!("{name}_bucket{{le=\"8.192\"}}"));
                expect(count > 0.0 && within_8s == count, || {
                    format!("{name}: {count} samples, {within_8s} within 8.192 s")
                })?;
            }
            // The leader talks to both followers; a follower to the leader (and to both if it
            // ever campaigned).
            let peers_expected = if m.value("etcd_server_is_leader") == 1.0 {
                2
            } else {
                1
            };
            for (name, label) in [
                ("etcd_network_peer_sent_bytes_total", "To"),
                ("etcd_network_peer_received_bytes_total", "From"),
            ] {
                let peers = m.labelled(name);
                expect(
                    peers.len() >= peers_expected
                        && peers
                            .iter()
                            .all(|(series, bytes)| series.contains(label) && *bytes > 0.0),
                    || format!("{name}: {peers:?}"),
                )?;
            }
            let memory = m.value("process_resident_memory_bytes");
            expect(memory > 1e6, || format!("{memory} bytes resident"))
        });
    }
    let leaders: f64 = ports
        .iter()
        .map(|&port| Scrape::of(port).value("etcd_server_is_leader"))
        .sum();
    assert_eq!(leaders, 1.0);

    // A watch stream counts as open from its start until the client goes away.
    let (watcher, stream) = client.watch("k", None).await.unwrap();
    eventually(ports[0], |m| {
        let open = open_watch_streams(m);
        expect(open == 1.0, || format!("{open} open watch streams"))
    });
    drop((watcher, stream));
    eventually(ports[0], |m| {
        let open = open_watch_streams(m);
        expect(open == 0.0, || {
            format!("{open} open watch streams after the client left")
        })
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detcd_exports_the_series_etcds_dashboard_reads() {
    traffic_then_checks(Server::Detcd).await;
}

/// The checks above hold for etcd 3.4 itself: they test etcd's names, not detcd's idea of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_exports_the_same_series() {
    traffic_then_checks(Server::Etcd).await;
}

/// etcd observes the peer round trip only every 30 s (its prober), too slow to wait for here;
/// detcd observes every batch of raft messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detcd_times_round_trips_to_each_peer_in_etcds_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(Server::Detcd, dir.path(), 3, FLAGS);
    let name = "etcd_network_peer_round_trip_time_seconds";
    for spec in &cluster.specs {
        eventually(spec.client_port, |m| {
            m.expect_type(name, "histogram")?;
            // The leader sends to both followers; a follower to the leader (and to both if it
            // ever campaigned).
            let peers = if m.value("etcd_server_is_leader") == 1.0 {
                2
            } else {
                1
            };
            let counts = m.labelled(&format!("{name}_count"));
            expect(
                counts.len() >= peers && counts.iter().all(|(_, count)| *count > 0.0),
                || format!("{counts:?}"),
            )?;
            // 16 buckets from 100 µs, doubling: the last before +Inf is 3.2768 s.
            let buckets = m.labelled(&format!("{name}_bucket"));
            let with_bound = |bound: &str| {
                let label = format!("le=\"{bound}\"");
                buckets.iter().filter(|(s, _)| s.contains(&label)).count()
            };
            expect(
                with_bound("0.0001") == counts.len() && with_bound("3.2768") == counts.len(),
                || format!("buckets: {buckets:?}"),
            )
        });
    }
}
