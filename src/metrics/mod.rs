//! The member's metrics, on a `prometheus` registry, under etcd 3.4's names, types, labels, help
//! strings and histogram buckets, so that etcd's own Grafana dashboard and alerts work against
//! detcd. Rendered in Prometheus text format at `/metrics`.
//!
//! Every definition lives here; the places that measure call one method each. Durations are read
//! from the Clock seam ([`Stopwatch`]), never from the host, so the simulator's runs stay
//! reproducible. Each member has its own registry (tests and the simulator run many members in
//! one process); the `prometheus` registry keeps collectors in a hash map, which only matters to
//! the text encoder, and that sorts its output.
//!
//! Where detcd's design differs from etcd's, a metric keeps etcd's meaning as closely as detcd
//! has one (README, "Observability"): `etcd_disk_backend_commit_duration_seconds` times the
//! durable write of the state machine, which in detcd is a snapshot file (its store lives in
//! memory, rebuilt from a snapshot plus the WAL); the peer round trip is that of a batch of raft
//! messages (etcd times a probe).

#[cfg(not(madsim))]
pub mod grpc;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::core::{AtomicU64, Collector, GenericGauge};
use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::ETCD_API_VERSION;
use crate::io::Clock;
use crate::pb::etcdserverpb::RangeRequest;
use crate::storage::mvcc::KvStore;

/// A gauge of an unsigned count: etcd exports the raft indexes below as gauges named `_total`.
pub type IndexGauge = GenericGauge<AtomicU64>;

/// Values that live elsewhere (raft status, the store), read when the metrics are rendered.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub has_leader: bool,
    pub is_leader: bool,
    pub leader_changes: u64,
    pub proposals_pending: u64,
    pub db_size_bytes: u64,
    pub keys: u64,
    pub current_revision: i64,
    pub compact_revision: i64,
    pub watchers: u64,
}

/// A histogram of durations in seconds, timed on the Clock seam.
#[derive(Clone)]
pub struct Stopwatch {
    histogram: Histogram,
    clock: Arc<dyn Clock>,
}

impl Stopwatch {
    /// Times from now until the returned span drops.
    pub fn start(&self) -> Span<'_> {
        Span {
            stopwatch: self,
            started: self.clock.now(),
        }
    }

    #[cfg(test)]
    fn count(&self) -> u64 {
        self.histogram.get_sample_count()
    }
}

/// One timing in progress; observed when dropped.
pub struct Span<'a> {
    stopwatch: &'a Stopwatch,
    started: Instant,
}

impl Drop for Span<'_> {
    fn drop(&mut self) {
        let elapsed = self.stopwatch.clock.now() - self.started;
        self.stopwatch.histogram.observe(elapsed.as_secs_f64());
    }
}

/// What the WAL reports about itself (etcd's `wal/metrics.go`).
#[derive(Clone)]
pub struct WalMetrics {
    pub fsync: Stopwatch,
    pub write_bytes: IndexGauge,
}

/// A gRPC call's labels, as go-grpc-prometheus (which etcd uses) names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    /// `unary`, `server_stream` or `bidi_stream`.
    pub kind: &'static str,
    /// e.g. `etcdserverpb.KV`.
    pub service: String,
    /// e.g. `Put`.
    pub method: String,
}

pub struct Metrics {
    registry: Registry,
    // etcd_server_*
    pub proposals_committed: IndexGauge,
    pub proposals_applied: IndexGauge,
    pub proposals_failed: IntCounter,
    proposals_pending: IntGauge,
    has_leader: IntGauge,
    is_leader: IntGauge,
    leader_changes: IntCounter,
    // etcd_mvcc_* and etcd_debugging_mvcc_*
    pub mvcc_put: IntCounter,
    pub mvcc_delete: IntCounter,
    pub mvcc_txn: IntCounter,
    pub mvcc_range: IntCounter,
    db_total_size: IntGauge,
    db_total_size_debugging: IntGauge,
    keys: IntGauge,
    current_revision: IntGauge,
    compact_revision: IntGauge,
    watchers: IntGauge,
    // etcd_disk_*
    pub wal: WalMetrics,
    pub backend_commit: Stopwatch,
    // etcd_network_* and grpc_server_*
    peer_round_trip: HistogramVec,
    peer_sent_bytes: IntCounterVec,
    peer_received_bytes: IntCounterVec,
    pub client_grpc_sent_bytes: IntCounter,
    pub client_grpc_received_bytes: IntCounter,
    grpc_started: IntCounterVec,
    grpc_handled: IntCounterVec,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// etcd's buckets for disk latencies: 1 ms doubling to about 8 s.
fn disk_seconds_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

impl Metrics {
    pub fn new(clock: Arc<dyn Clock>, member_id: u64) -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let stopwatch = |histogram| Stopwatch {
            histogram,
            clock: clock.clone(),
        };
        let metrics = Metrics {
            proposals_committed: register(
                r,
                IndexGauge::new(
                    "etcd_server_proposals_committed_total",
                    "The total number of consensus proposals committed.",
                ),
            ),
            proposals_applied: register(
                r,
                IndexGauge::new(
                    "etcd_server_proposals_applied_total",
                    "The total number of consensus proposals applied.",
                ),
            ),
            proposals_failed: register(
                r,
                IntCounter::new(
                    "etcd_server_proposals_failed_total",
                    "The total number of failed proposals seen.",
                ),
            ),
            proposals_pending: register(
                r,
                IntGauge::new(
                    "etcd_server_proposals_pending",
                    "The current number of pending proposals to commit.",
                ),
            ),
            has_leader: register(
                r,
                IntGauge::new(
                    "etcd_server_has_leader",
                    "Whether or not a leader exists. 1 is existence, 0 is not.",
                ),
            ),
            is_leader: register(
                r,
                IntGauge::new(
                    "etcd_server_is_leader",
                    "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                ),
            ),
            leader_changes: register(
                r,
                IntCounter::new(
                    "etcd_server_leader_changes_seen_total",
                    "The number of leader changes seen.",
                ),
            ),
            mvcc_put: register(
                r,
                IntCounter::new(
                    "etcd_mvcc_put_total",
                    "Total number of puts seen by this member.",
                ),
            ),
            mvcc_delete: register(
                r,
                IntCounter::new(
                    "etcd_mvcc_delete_total",
                    "Total number of deletes seen by this member.",
                ),
            ),
            mvcc_txn: register(
                r,
                IntCounter::new(
                    "etcd_mvcc_txn_total",
                    "Total number of txns seen by this member.",
                ),
            ),
            mvcc_range: register(
                r,
                IntCounter::new(
                    "etcd_mvcc_range_total",
                    "Total number of ranges seen by this member.",
                ),
            ),
            db_total_size: register(r, IntGauge::new("etcd_mvcc_db_total_size_in_bytes", DB_SIZE_HELP)),
            db_total_size_debugging: register(
                r,
                IntGauge::new("etcd_debugging_mvcc_db_total_size_in_bytes", DB_SIZE_HELP),
            ),
            keys: register(
                r,
                IntGauge::new("etcd_debugging_mvcc_keys_total", "Total number of keys."),
            ),
            current_revision: register(
                r,
                IntGauge::new(
                    "etcd_debugging_mvcc_current_revision",
                    "The current revision of store.",
                ),
            ),
            compact_revision: register(
                r,
                IntGauge::new(
                    "etcd_debugging_mvcc_compact_revision",
                    "The revision of the last compaction in store.",
                ),
            ),
            watchers: register(
                r,
                IntGauge::new("etcd_debugging_mvcc_watcher_total", "Total number of watchers."),
            ),
            wal: WalMetrics {
                fsync: stopwatch(register(
                    r,
                    Histogram::with_opts(
                        HistogramOpts::new(
                            "etcd_disk_wal_fsync_duration_seconds",
                            "The latency distributions of fsync called by WAL.",
                        )
                        .buckets(disk_seconds_buckets()),
                    ),
                )),
                write_bytes: register(
                    r,
                    IndexGauge::new(
                        "etcd_disk_wal_write_bytes_total",
                        "Total number of bytes written in WAL.",
                    ),
                ),
            },
            backend_commit: stopwatch(register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "etcd_disk_backend_commit_duration_seconds",
                        "The latency distributions of commit called by backend.",
                    )
                    .buckets(disk_seconds_buckets()),
                ),
            )),
            peer_round_trip: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "etcd_network_peer_round_trip_time_seconds",
                        "Round-Trip-Time histogram between peers",
                    )
                    // 100 µs doubling to about 3.3 s.
                    .buckets(exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
                    &["To"],
                ),
            ),
            peer_sent_bytes: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "etcd_network_peer_sent_bytes_total",
                        "The total number of bytes sent to peers.",
                    ),
                    &["To"],
                ),
            ),
            peer_received_bytes: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "etcd_network_peer_received_bytes_total",
                        "The total number of bytes received from peers.",
                    ),
                    &["From"],
                ),
            ),
            client_grpc_sent_bytes: register(
                r,
                IntCounter::new(
                    "etcd_network_client_grpc_sent_bytes_total",
                    "The total number of bytes sent to grpc clients.",
                ),
            ),
            client_grpc_received_bytes: register(
                r,
                IntCounter::new(
                    "etcd_network_client_grpc_received_bytes_total",
                    "The total number of bytes received from grpc clients.",
                ),
            ),
            grpc_started: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "grpc_server_started_total",
                        "Total number of RPCs started on the server.",
                    ),
                    &["grpc_type", "grpc_service", "grpc_method"],
                ),
            ),
            grpc_handled: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "grpc_server_handled_total",
                        "Total number of RPCs completed on the server, regardless of success or failure.",
                    ),
                    &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
                ),
            ),
            registry,
        };
        let info = |name: &str, help: &str, label: &str, value: &str| {
            let gauge: IntGaugeVec = register(
                &metrics.registry,
                IntGaugeVec::new(Opts::new(name, help), &[label]),
            );
            gauge.with_label_values(&[value]).set(1);
        };
        info(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            "server_version",
            ETCD_API_VERSION,
        );
        info(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            "server_id",
            &format!("{member_id:x}"),
        );
        // The process's memory, CPU and descriptors under the names Go's client exports
        // (`process_resident_memory_bytes` is on etcd's dashboard). Read from /proc at render
        // time: real processes only, the simulator's nodes share one.
        #[cfg(all(not(madsim), target_os = "linux"))]
        metrics
            .registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector registers once");
        metrics
    }

    /// A batch of raft messages of `bytes` reached peer `to`, which answered after `round_trip`.
    pub fn peer_delivered(&self, to: u64, bytes: usize, round_trip: Duration) {
        let to = format!("{to:x}");
        self.peer_sent_bytes
            .with_label_values(&[&to])
            .inc_by(bytes as u64);
        self.peer_round_trip
            .with_label_values(&[&to])
            .observe(round_trip.as_secs_f64());
    }

    /// A batch of raft messages of `bytes` came from peer `from`.
    pub fn peer_received(&self, from: u64, bytes: usize) {
        self.peer_received_bytes
            .with_label_values(&[&format!("{from:x}")])
            .inc_by(bytes as u64);
    }

    pub fn grpc_started(&self, call: &GrpcCall) {
        self.grpc_started
            .with_label_values(&[call.kind, &call.service, &call.method])
            .inc();
    }

    /// `code` is the gRPC status code's name as Go spells it (`OK`, `NotFound`, ...).
    pub fn grpc_handled(&self, call: &GrpcCall, code: &str) {
        self.grpc_handled
            .with_label_values(&[call.kind, &call.service, &call.method, code])
            .inc();
    }

    /// The metrics in Prometheus text format, sorted by name.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        self.has_leader.set(i64::from(snapshot.has_leader));
        self.is_leader.set(i64::from(snapshot.is_leader));
        // A counter kept by raft's status: catch up with it.
        self.leader_changes.inc_by(
            snapshot
                .leader_changes
                .saturating_sub(self.leader_changes.get()),
        );
        self.proposals_pending
            .set(gauge_value(snapshot.proposals_pending));
        self.db_total_size.set(gauge_value(snapshot.db_size_bytes));
        self.db_total_size_debugging
            .set(gauge_value(snapshot.db_size_bytes));
        self.keys.set(gauge_value(snapshot.keys));
        self.current_revision.set(snapshot.current_revision);
        self.compact_revision.set(snapshot.compact_revision);
        self.watchers.set(gauge_value(snapshot.watchers));
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("text encoding into memory cannot fail");
        String::from_utf8(text).expect("the text encoder writes UTF-8")
    }
}

/// Keys with a live value at the current revision (etcd's `keysGauge`), counted at render time:
/// a scan of the index, cheaper than keeping a count on every write path.
pub fn live_keys(kv: &KvStore) -> u64 {
    let everything = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        count_only: true,
        ..Default::default()
    };
    kv.range(&everything)
        .map(|answer| u64::try_from(answer.count).unwrap_or(0))
        .expect("a range at the current revision is never compacted away")
}

const DB_SIZE_HELP: &str = "Total size of the underlying database physically allocated in bytes.";

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Registers `collector` and hands it back; names are fixed here, so a clash is a bug.
fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: prometheus::Result<C>,
) -> C {
    let collector = collector.expect("a valid metric definition");
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique");
    collector
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SystemClock;

    fn metrics() -> Metrics {
        Metrics::new(Arc::new(SystemClock), 0x8e9e05c52164694d)
    }

    /// The sample line of `name` (with its labels), e.g. `etcd_mvcc_put_total 2`.
    fn sample<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines().find(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' '))
        })
    }

    #[test]
    fn renders_etcd_names_types_and_values() {
        let metrics = metrics();
        metrics.mvcc_put.inc();
        metrics.mvcc_put.inc();
        metrics.proposals_applied.set(7);
        let text = metrics.render(&Snapshot {
            has_leader: true,
            leader_changes: 3,
            keys: 5,
            ..Default::default()
        });
        assert!(text.contains("# TYPE etcd_mvcc_put_total counter\netcd_mvcc_put_total 2\n"));
        assert!(text.contains("# TYPE etcd_server_proposals_applied_total gauge\n"));
        assert_eq!(
            sample(&text, "etcd_server_proposals_applied_total"),
            Some("etcd_server_proposals_applied_total 7")
        );
        assert_eq!(
            sample(&text, "etcd_server_has_leader"),
            Some("etcd_server_has_leader 1")
        );
        assert_eq!(
            sample(&text, "etcd_debugging_mvcc_keys_total"),
            Some("etcd_debugging_mvcc_keys_total 5")
        );
        assert!(text.contains("etcd_server_id{server_id=\"8e9e05c52164694d\"} 1\n"));
        // Rendering again does not count the same leader changes twice.
        let again = metrics.render(&Snapshot {
            leader_changes: 3,
            ..Default::default()
        });
        assert_eq!(
            sample(&again, "etcd_server_leader_changes_seen_total"),
            Some("etcd_server_leader_changes_seen_total 3")
        );
    }

    #[test]
    fn histograms_have_etcds_buckets() {
        let metrics = metrics();
        metrics.peer_delivered(0x2a, 100, Duration::from_micros(150));
        let text = metrics.render(&Snapshot::default());
        // Disk latencies: 14 buckets from 1 ms doubling, 8.192 s the last before +Inf.
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 0\n"));
        assert!(text.contains("etcd_disk_backend_commit_duration_seconds_bucket{le=\"8.192\"} 0\n"));
        // Peer round trips: 16 buckets from 100 µs doubling.
        assert!(text.contains(
            "etcd_network_peer_round_trip_time_seconds_bucket{To=\"2a\",le=\"0.0001\"} 0\n"
        ));
        assert!(text.contains(
            "etcd_network_peer_round_trip_time_seconds_bucket{To=\"2a\",le=\"0.0002\"} 1\n"
        ));
        assert!(text.contains(
            "etcd_network_peer_round_trip_time_seconds_bucket{To=\"2a\",le=\"3.2768\"} 1\n"
        ));
        assert!(text.contains("etcd_network_peer_sent_bytes_total{To=\"2a\"} 100\n"));
    }

    #[test]
    fn a_span_observes_its_duration_once_when_dropped() {
        let metrics = metrics();
        {
            let _fsync = metrics.wal.fsync.start();
            assert_eq!(metrics.wal.fsync.count(), 0);
        }
        assert_eq!(metrics.wal.fsync.count(), 1);
    }

    #[test]
    fn grpc_calls_are_counted_by_service_method_type_and_code() {
        let metrics = metrics();
        let put = GrpcCall {
            kind: "unary",
            service: "etcdserverpb.KV".into(),
            method: "Put".into(),
        };
        metrics.grpc_started(&put);
        metrics.grpc_handled(&put, "OK");
        let text = metrics.render(&Snapshot::default());
        assert!(text.contains(
            "grpc_server_started_total{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1\n"
        ));
        assert!(text.contains(
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1\n"
        ));
    }
}
