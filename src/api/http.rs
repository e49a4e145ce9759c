//! The HTTP/1 endpoints etcd serves on its client port: `/health`, `/version`, `/metrics`.
//! Kept free of any HTTP framework so both builds share it; `embed::serve` routes to it.

use crate::config::ETCD_API_VERSION;
use crate::server::EtcdServer;

/// An HTTP answer: status code, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// The paths served.
pub const PATHS: [&str; 3] = ["/health", "/version", "/metrics"];

/// Answers a GET of `path`, or None for a path etcd does not serve.
pub fn get(server: &EtcdServer, path: &str) -> Option<HttpResponse> {
    let json = |status, body: String| HttpResponse {
        status,
        content_type: "application/json",
        body,
    };
    match path {
        "/health" => {
            // etcd reports unhealthy, with 503, while there is no leader.
            let healthy = server.raft_status().leader_id != 0;
            Some(json(
                if healthy { 200 } else { 503 },
                format!("{{\"health\":\"{healthy}\"}}"),
            ))
        }
        "/version" => Some(json(
            200,
            format!(
                "{{\"etcdserver\":\"{ETCD_API_VERSION}\",\"etcdcluster\":\"{}\",\"detcd\":\"{}\"}}",
                cluster_version(),
                env!("CARGO_PKG_VERSION")
            ),
        )),
        "/metrics" => Some(HttpResponse {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: server.metrics_text(),
        }),
        _ => None,
    }
}

/// The cluster version etcd reports: major.minor.0 of the server version.
pub fn cluster_version() -> String {
    let mut parts = ETCD_API_VERSION.split('.');
    format!(
        "{}.{}.0",
        parts.next().unwrap_or("3"),
        parts.next().unwrap_or("4")
    )
}
