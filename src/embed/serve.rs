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
    use crate::config::ListenUrl;
    use crate::tls::{client_common_name, Material, Side, TlsListener};
    use axum::extract::Request;
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use tokio::net::TcpStream;
    use tokio_rustls::server::TlsStream;

    /// An `http://` listener, or an `https://` one whose connections arrive handshaken.
    pub enum Listener {
        Plain(tokio::net::TcpListener),
        Tls(TlsListener),
    }

    impl Listener {
        pub fn local_addr(&self) -> SocketAddr {
            match self {
                Listener::Plain(tcp) => tcp.local_addr(),
                Listener::Tls(tls) => axum::serve::Listener::local_addr(tls),
            }
            .expect("a bound listener has an address")
        }
    }

    /// Binds each URL; an `https://` one serves with `side`'s certificate.
    pub async fn bind_all(
        urls: &[ListenUrl],
        side: Side,
        tls: &Material,
    ) -> Result<Vec<Listener>, String> {
        let mut listeners = Vec::with_capacity(urls.len());
        for url in urls {
            let addr = url.addr;
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let listener = if url.secure {
                // `config` refuses an https URL for a side without certificates.
                let config = tls
                    .server_config(side)
                    .expect("an https listener's side has TLS");
                Listener::Tls(
                    TlsListener::new(tcp, config, side)
                        .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
                )
            } else {
                Listener::Plain(tcp)
            };
            listeners.push(listener);
        }
        Ok(listeners)
    }

    /// Serves `app` until `stopping`: HTTP/1 or HTTP/2 per connection, a graceful stop, and at
    /// most `max_streams` HTTP/2 streams open on one connection when given (etcd's
    /// `--max-concurrent-streams`; `axum::serve` leaves hyper's 200, while etcd's default is
    /// unlimited: a Go client's watches and calls all share one connection, and one asking for
    /// more waits for one of its streams to end). On TLS, requests carry the client certificate's
    /// CN.
    pub(super) async fn serve(
        listener: Listener,
        app: axum::Router,
        max_streams: Option<u32>,
        stopping: impl Future<Output = ()>,
    ) {
        match listener {
            Listener::Plain(tcp) => {
                serve_connections(no_delay(tcp), |_| app.clone(), max_streams, stopping).await
            }
            Listener::Tls(tls) => {
                let app_for = |io: &TlsStream<TcpStream>| {
                    let common_name = client_common_name(io);
                    app.clone().layer(tower::util::MapRequestLayer::new(
                        move |mut request: Request| {
                            if let Some(common_name) = &common_name {
                                request.extensions_mut().insert(common_name.clone());
                            }
                            request
                        },
                    ))
                };
                serve_connections(tls, app_for, max_streams, stopping).await
            }
        }
    }

    /// `axum::serve`'s loop with hyper's HTTP/2 settings in reach; each connection gets the
    /// router `app_for` makes for it.
    async fn serve_connections<L>(
        mut listener: L,
        app_for: impl Fn(&L::Io) -> axum::Router,
        max_streams: Option<u32>,
        stopping: impl Future<Output = ()>,
    ) where
        L: axum::serve::Listener,
    {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::service::TowerToHyperService;
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        if let Some(max_streams) = max_streams {
            builder.http2().max_concurrent_streams(max_streams);
        }
        let connections = hyper_util::server::graceful::GracefulShutdown::new();
        let mut stopping = std::pin::pin!(stopping);
        loop {
            // The listener retries failed accepts itself (out of file descriptors and the like).
            let (io, _) = tokio::select! {
                biased;
                () = &mut stopping => break,
                accepted = listener.accept() => accepted,
            };
            let service = TowerToHyperService::new(app_for(&io));
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended");
                }
            });
        }
        connections.shutdown().await;
    }

    /// Accepted connections with Nagle's algorithm off. A gRPC answer leaves in more than one
    /// write; with Nagle on, the last write waits for the peer's delayed ACK (40 ms on Linux),
    /// and a client with one request in flight saw ~40 ms per put. (The TLS listener sets it
    /// itself.)
    fn no_delay(tcp: tokio::net::TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
        use axum::serve::ListenerExt;
        tcp.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
        })
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
        let grpc = grpc_services!(&server, add_service, tonic::service::Routes::new);
        let max_streams = server.config().max_concurrent_streams;
        let counted = axum::middleware::from_fn_with_state(
            server.metrics().clone(),
            crate::metrics::grpc::count,
        );
        let app = grpc
            .into_axum_router()
            .layer(axum::middleware::map_response(
                crate::embed::oversized::as_grpc_go,
            ))
            .layer(counted)
            .merge(http_router(server));
        serve_router(listener, app, Some(max_streams), stopping).await
    }

    /// Serves gRPC and HTTP routes on one port until `stopping` (members' and the proxy's
    /// client listeners).
    pub async fn serve_router(
        listener: Listener,
        app: axum::Router,
        max_streams: Option<u32>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let addr = listener.local_addr();
        let secure = matches!(listener, Listener::Tls(_));
        tracing::info!(%addr, secure, "serving client traffic (gRPC and HTTP)");
        serve(listener, app, max_streams, stopping).await;
        Ok(())
    }

    pub async fn serve_peers(
        listener: Listener,
        server: Arc<EtcdServer>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let addr = listener.local_addr();
        let peers = tonic::service::Routes::new(peer_server!(server)).into_axum_router();
        let secure = matches!(listener, Listener::Tls(_));
        tracing::info!(%addr, secure, "serving peer traffic");
        serve(listener, peers, None, stopping).await;
        Ok(())
    }

    pub async fn serve_metrics(
        listener: Listener,
        server: Arc<EtcdServer>,
        stopping: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let addr = listener.local_addr();
        tracing::info!(%addr, "serving metrics and health (HTTP)");
        serve(listener, http_router(server), None, stopping).await;
        Ok(())
    }
}

#[cfg(madsim)]
mod sim {
    use super::*;
    use crate::config::ListenUrl;

    /// madsim-tonic binds when it serves; an address is all there is to hold until then.
    pub struct Listener(SocketAddr);

    impl Listener {
        pub fn local_addr(&self) -> SocketAddr {
            self.0
        }
    }

    /// TLS settings are ignored: madsim's network carries no bytes to encrypt.
    pub async fn bind_all(
        urls: &[ListenUrl],
        _side: crate::tls::Side,
        _tls: &crate::tls::Material,
    ) -> Result<Vec<Listener>, String> {
        Ok(urls.iter().map(|url| Listener(url.addr)).collect())
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
pub use real::{bind_all, serve_clients, serve_metrics, serve_peers, serve_router, Listener};
#[cfg(madsim)]
pub use sim::{bind_all, serve_clients, serve_metrics, serve_peers, Listener};

/// The accept path on a real socket: a verified client certificate's CN reaches the handler.
#[cfg(all(test, not(madsim)))]
mod tests {
    use std::sync::Arc;

    use clap::Parser;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::api::identity::ClientCommonName;
    use crate::config::Flags;
    use crate::tls::{Material, Side};

    fn signed(cn: &str, issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        (params.signed_by(&key, issuer).unwrap().pem(), key)
    }

    #[tokio::test]
    async fn handlers_see_the_verified_client_common_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let (server_pem, server_key) = signed("member", &issuer);
        let (client_pem, client_key) = signed("alice", &issuer);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let ca_file = write("ca.pem", &ca_pem);
        let flags = Flags::parse_from([
            "detcd".to_string(),
            format!("--data-dir={}", dir.path().join("d").display()),
            "--listen-client-urls=https://127.0.0.1:0".to_string(),
            format!("--cert-file={}", write("s.pem", &server_pem)),
            format!(
                "--key-file={}",
                write("s-key.pem", &server_key.serialize_pem())
            ),
            format!("--trusted-ca-file={ca_file}"),
            "--client-cert-auth".to_string(),
        ]);
        let config = flags.into_config().unwrap();
        let material = Material::prepare(&config, 1_700_000_000_000).unwrap();
        let listener = super::bind_all(&config.listen_client_addrs, Side::Client, &material)
            .await
            .unwrap()
            .remove(0);
        let addr = listener.local_addr();
        let app = axum::Router::new().route(
            "/cn",
            axum::routing::get(|request: axum::extract::Request| async move {
                match request.extensions().get::<ClientCommonName>() {
                    Some(ClientCommonName(name)) => format!("cn={name}"),
                    None => "no cn".to_string(),
                }
            }),
        );
        tokio::spawn(super::real::serve(
            listener,
            app,
            None,
            std::future::pending(),
        ));

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_file(&ca_file).unwrap())
            .unwrap();
        use rustls_pki_types::pem::PemObject;
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![rustls_pki_types::CertificateDer::from_pem_slice(client_pem.as_bytes()).unwrap()],
            rustls_pki_types::PrivateKeyDer::from_pem_slice(client_key.serialize_pem().as_bytes())
                .unwrap(),
        )
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .unwrap();
        tls.write_all(b"GET /cn HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        assert!(response.ends_with("cn=alice"), "{response}");
    }
}
