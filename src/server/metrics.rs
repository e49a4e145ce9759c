//! Server metrics, rendered in Prometheus text format at `/metrics` under etcd's metric names, so
//! dashboards and alerts written for etcd keep working.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count, or a value set from the outside (a gauge).
#[derive(Debug, Default)]
pub struct Metric(AtomicU64);

impl Metric {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub proposals_committed: Metric,
    pub proposals_applied: Metric,
    pub proposals_failed: Metric,
    pub mvcc_put: Metric,
    pub mvcc_delete: Metric,
    pub mvcc_txn: Metric,
    pub mvcc_range: Metric,
}

/// Values that live elsewhere (raft status, store size), passed in at render time.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub has_leader: bool,
    pub is_leader: bool,
    pub leader_changes: u64,
    pub proposals_pending: u64,
    pub db_size_bytes: u64,
    pub current_revision: i64,
    pub compact_revision: i64,
    pub watchers: u64,
}

impl Metrics {
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let rows: [(&str, &str, &str, f64); 15] = [
            (
                "etcd_server_has_leader",
                "gauge",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
                f64::from(u8::from(snapshot.has_leader)),
            ),
            (
                "etcd_server_is_leader",
                "gauge",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                f64::from(u8::from(snapshot.is_leader)),
            ),
            (
                "etcd_server_leader_changes_seen_total",
                "counter",
                "The number of leader changes seen.",
                snapshot.leader_changes as f64,
            ),
            (
                "etcd_server_proposals_committed_total",
                "gauge",
                "The total number of consensus proposals committed.",
                self.proposals_committed.get() as f64,
            ),
            (
                "etcd_server_proposals_applied_total",
                "gauge",
                "The total number of consensus proposals applied.",
                self.proposals_applied.get() as f64,
            ),
            (
                "etcd_server_proposals_pending",
                "gauge",
                "The current number of pending proposals to commit.",
                snapshot.proposals_pending as f64,
            ),
            (
                "etcd_server_proposals_failed_total",
                "counter",
                "The total number of failed proposals seen.",
                self.proposals_failed.get() as f64,
            ),
            (
                "etcd_mvcc_db_total_size_in_bytes",
                "gauge",
                "Total size of the underlying database physically allocated in bytes.",
                snapshot.db_size_bytes as f64,
            ),
            (
                "etcd_debugging_mvcc_current_revision",
                "gauge",
                "The current revision of store.",
                snapshot.current_revision as f64,
            ),
            (
                "etcd_debugging_mvcc_compact_revision",
                "gauge",
                "The revision of the last compaction in store.",
                snapshot.compact_revision as f64,
            ),
            (
                "etcd_debugging_mvcc_watcher_total",
                "gauge",
                "Total number of watchers.",
                snapshot.watchers as f64,
            ),
            (
                "etcd_mvcc_put_total",
                "counter",
                "Total number of puts seen by this member.",
                self.mvcc_put.get() as f64,
            ),
            (
                "etcd_mvcc_delete_total",
                "counter",
                "Total number of deletes seen by this member.",
                self.mvcc_delete.get() as f64,
            ),
            (
                "etcd_mvcc_txn_total",
                "counter",
                "Total number of txns seen by this member.",
                self.mvcc_txn.get() as f64,
            ),
            (
                "etcd_mvcc_range_total",
                "counter",
                "Total number of ranges seen by this member.",
                self.mvcc_range.get() as f64,
            ),
        ];
        let mut text = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_etcd_names() {
        let metrics = Metrics::default();
        metrics.mvcc_put.inc();
        metrics.mvcc_put.inc();
        let text = metrics.render(&Snapshot {
            has_leader: true,
            ..Default::default()
        });
        assert!(text.contains("# TYPE etcd_mvcc_put_total counter\netcd_mvcc_put_total 2\n"));
        assert!(text.contains("etcd_server_has_leader 1\n"));
    }
}
