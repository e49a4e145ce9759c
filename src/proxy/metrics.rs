//! The proxy's `/metrics`, under etcd's grpc-proxy metric names (plus detcd's count of the
//! watches it holds open on the cluster, which shows coalescing from the outside).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::watch::WatchCounts;

#[derive(Debug, Default)]
pub struct ProxyMetrics {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    /// Event copies sent to clients beyond the one the cluster sent.
    events_coalesced: AtomicU64,
}

impl ProxyMetrics {
    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn events_coalesced(&self, copies: u64) {
        self.events_coalesced.fetch_add(copies, Ordering::Relaxed);
    }

    pub fn text(&self, cache_keys: usize, watches: WatchCounts) -> String {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed).to_string();
        let coalescing = watches.watchers.saturating_sub(watches.upstream_watches);
        let rows = [
            (
                "etcd_grpc_proxy_cache_hits_total",
                "gauge",
                "Total number of cache hits",
                count(&self.cache_hits),
            ),
            (
                "etcd_grpc_proxy_cache_misses_total",
                "gauge",
                "Total number of cache misses",
                count(&self.cache_misses),
            ),
            (
                "etcd_grpc_proxy_cache_keys_total",
                "gauge",
                "Total number of keys/ranges cached",
                cache_keys.to_string(),
            ),
            (
                "etcd_grpc_proxy_watchers_coalescing_total",
                "gauge",
                "Total number of current watchers coalescing",
                coalescing.to_string(),
            ),
            (
                "etcd_grpc_proxy_events_coalescing_total",
                "counter",
                "Total number of events coalescing",
                count(&self.events_coalesced),
            ),
            (
                "detcd_grpc_proxy_watchers",
                "gauge",
                "Client watches served by the proxy",
                watches.watchers.to_string(),
            ),
            (
                "detcd_grpc_proxy_upstream_watches",
                "gauge",
                "Watches the proxy holds open on the cluster",
                watches.upstream_watches.to_string(),
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
