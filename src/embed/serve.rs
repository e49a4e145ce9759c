//! Client listeners (etcd's `serveCtx.serve`): gRPC and HTTP/1 (`/health`, `/version`,
//! `/metrics`) on one port, as etcd does.
//!
//! This is the network seam's one fork. In production a hyper server tells HTTP/1 from HTTP/2 per
//! connection and routes gRPC paths to tonic and the rest to `api::http`. Under madsim, tonic runs
//! over madsim's simulated network, which carries gRPC calls as values and has no HTTP at all, so
//! only the gRPC services are served; the HTTP endpoints are covered by real-network tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::{
    AuthService, ClusterService, KvService, LeaseService, MaintenanceService, WatchService,
};
use crate::pb::detcdpb::raft_peer_server::RaftPeerServer;
use crate::pb::etcdserverpb::auth_server::AuthServer;
use crate::pb::etcdserverpb::cluster_server::ClusterServer;
use crate::pb::etcdserverpb::kv_server::KvServer;
use crate::pb::etcdserverpb::lease_server::LeaseServer;
use crate::pb::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::pb::etcdserverpb::watch_server::WatchServer;
use crate::raft_node::transport::SNAPSHOT_BYTES_MAX;
use crate::server::EtcdServer;

/// gRPC framing overhead allowed on top of `--max-request-bytes` (etcd's `grpcOverheadBytes`), so
/// that an oversized request reaches the server's own check and gets etcd's error.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Services with the message size limits etcd applies.
macro_rules! grpc_services {
    ($server:expr, $add:ident, $first:expr) => {{
        let server: &Arc<EtcdServer> = $server;
        let limit = server.config().max_request_bytes + GRPC_OVERHEAD_BYTES;
        $first(KvServer::new(KvService::new(server.clone())).max_decoding_message_size(limit))
            .$add(
                ClusterServer::new(ClusterService::new(server.clone()))
                    .max_decoding_message_size(limit),
            )
            .$add(
                MaintenanceServer::new(MaintenanceService::new(server.clone()))
                    .max_decoding_message_size(limit),
            )
            .$add(
                LeaseServer::new(LeaseService::new(server.clone()))
                    .max_decoding_message_size(limit),
            )
            .$add(
                WatchServer::new(WatchService::new(server.clone()))
                    .max_decoding_message_size(limit),
            )
            .$add(
                AuthServer::new(AuthService::new(server.clone())).max_decoding_message_size(limit),
            )
    }};
}

/// The peer transport's receiving side, with room for snapshots. (A macro: the generated server
/// type differs between the two builds.)
macro_rules! peer_server {
    ($server:expr) => {
        RaftPeerServer::new($server.peer_service())
            .max_decoding_message_size(SNAPSHOT_BYTES_MAX)
            .max_encoding_message_size(SNAPSHOT_BYTES_MAX)
    };
}

#[cfg(not(madsim))]
mod real {
    use super::*;
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;

    pub struct Listener(tokio::net::TcpListener);

    impl Listener {
        /// Accepted connections with Nagle's algorithm off. A gRPC answer leaves in more than one
        /// write; with Nagle on, the last write waits for the peer's delayed ACK (40 ms on
        /// Linux), and a client with one request in flight saw ~40 ms per put.
        fn no_delay(self) -> impl axum::serve::Listener<Addr = SocketAddr> {
            use axum::serve::ListenerExt;
            self.0.tap_io(|tcp| {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::warn!(%error, "cannot set TCP_NODELAY");
                }
            })
        }

        pub fn local_addr(&self) -> SocketAddr {
            self.0
                .local_addr()
                .expect("a bound listener has an address")
        }
    }

    pub async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<Listener>, String> {
        let mut listeners = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            listeners.push(Listener(listener));
        }
        Ok(listeners)
    }

    /// `/health`, `/version` and `/metrics`, answered by `api::http`.
    fn http_router(server: Arc<EtcdServer>) -> axum::Router {
        let mut router = axum::Router::new();
        for path in crate::api::http::PATHS {
            let server = server.clone();
            router = router.route(
                path,
                axum::routing::get(move || {
                    let server = server.clone();
                    async move {
                        let answer = crate::api::http::get(&server, path)
                            .expect("every listed path has an answer");
                        (
                            StatusCode::from_u16(answer.status)
                                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                            [(header::CONTENT_TYPE, answer.content_type)],
                            answer.body,
                        )
                            .into_response()
                    }
                }),
            );
        }
        router
    }

    pub async fn serve_clients(
        listener: Listener,
        server: Arc<EtcdServer>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let addr = listener.local_addr();
        let grpc = grpc_services!(&server, add_service, tonic::service::Routes::new);
        let app = grpc.into_axum_router().merge(http_router(server));
        tracing::info!(%addr, "serving client traffic (gRPC and HTTP)");
        axum::serve(listener.no_delay(), app)
            .with_graceful_shutdown(stopping)
            .await
            .map_err(|e| format!("client listener {addr}: {e}"))
    }

    pub async fn serve_peers(
        listener: Listener,
        server: Arc<EtcdServer>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let addr = listener.local_addr();
        let peers = tonic::service::Routes::new(peer_server!(server)).into_axum_router();
        tracing::info!(%addr, "serving peer traffic");
        axum::serve(listener.no_delay(), peers)
            .with_graceful_shutdown(stopping)
            .await
            .map_err(|e| format!("peer listener {addr}: {e}"))
    }

    pub async fn serve_metrics(
        listener: Listener,
        server: Arc<EtcdServer>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let addr = listener.local_addr();
        tracing::info!(%addr, "serving metrics and health (HTTP)");
        axum::serve(listener.0, http_router(server))
            .with_graceful_shutdown(stopping)
            .await
            .map_err(|e| format!("metrics listener {addr}: {e}"))
    }
}

#[cfg(madsim)]
mod sim {
    use super::*;

    /// madsim-tonic binds when it serves; an address is all there is to hold until then.
    pub struct Listener(SocketAddr);

    impl Listener {
        pub fn local_addr(&self) -> SocketAddr {
            self.0
        }
    }

    pub async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<Listener>, String> {
        Ok(addrs.iter().copied().map(Listener).collect())
    }

    pub async fn serve_clients(
        listener: Listener,
        server: Arc<EtcdServer>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let mut builder = tonic::transport::Server::builder();
        let router = grpc_services!(&server, add_service, |svc| builder.add_service(svc));
        router
            .serve_with_shutdown(listener.0, stopping)
            .await
            .map_err(|e| format!("client listener {}: {e}", listener.0))
    }

    pub async fn serve_peers(
        listener: Listener,
        server: Arc<EtcdServer>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        tonic::transport::Server::builder()
            .add_service(peer_server!(server))
            .serve_with_shutdown(listener.0, stopping)
            .await
            .map_err(|e| format!("peer listener {}: {e}", listener.0))
    }

    /// The simulator has no HTTP; metrics are read from the server directly there.
    pub async fn serve_metrics(
        _listener: Listener,
        _server: Arc<EtcdServer>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        stopping.await;
        Ok(())
    }
}

#[cfg(not(madsim))]
pub use real::{bind_all, serve_clients, serve_metrics, serve_peers, Listener};
#[cfg(madsim)]
pub use sim::{bind_all, serve_clients, serve_metrics, serve_peers, Listener};
