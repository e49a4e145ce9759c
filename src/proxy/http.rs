//! The proxy's `/health`, `/version` and `/metrics`, on its gRPC port (and `--metrics-addr`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::upstream::Retry;
use super::Shared;
use crate::config::ETCD_API_VERSION;
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::RangeRequest;

/// etcd's proxy health check gives the cluster a second to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

pub fn router(shared: Arc<Shared>) -> axum::Router {
    let health = {
        let shared = shared.clone();
        move || async move { health(&shared).await }
    };
    let metrics = move || async move {
        let text = shared.metrics_text();
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
    };
    axum::Router::new()
        .route("/health", axum::routing::get(health))
        .route("/version", axum::routing::get(version))
        .route("/metrics", axum::routing::get(metrics))
}

/// Healthy when the cluster answers a read through the proxy (etcd's proxy reads key "health";
/// "permission denied" still proves the cluster is up).
async fn health(shared: &Shared) -> axum::response::Response {
    let no_metadata = Default::default();
    let read = shared.upstream.call(
        Retry::Always,
        &no_metadata,
        RangeRequest {
            key: b"health".to_vec(),
            ..Default::default()
        },
        |channel, request| async move { KvClient::new(channel).range(request).await },
    );
    let healthy = match tokio::time::timeout(HEALTH_TIMEOUT, read).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => status.message() == "etcdserver: permission denied",
        Err(_) => false,
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, format!("{{\"health\":\"{healthy}\"}}"))
}

async fn version() -> axum::response::Response {
    json(
        StatusCode::OK,
        format!(
            "{{\"etcdserver\":\"{ETCD_API_VERSION}\",\"etcdcluster\":\"{}\",\"detcd\":\"{}\"}}",
            crate::api::http::cluster_version(),
            env!("CARGO_PKG_VERSION")
        ),
    )
}

fn json(status: StatusCode, body: String) -> axum::response::Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
