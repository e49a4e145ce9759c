//! The proxy branch of etcd's start-up: `detcd grpc-proxy start` (etcd's `grpc-proxy`), also
//! reached from a member's `--proxy=on|readonly`. A stateless gRPC proxy in front of a cluster:
//! it forwards KV, Watch, Lease, Cluster and Maintenance, coalesces identical watches into one
//! watch on the cluster, answers serializable ranges from a small cache, and moves to another
//! endpoint when the one it uses fails. `/health`, `/version` and `/metrics` share its port.
//!
//! Real sockets only (`#[cfg(not(madsim))]`): the simulator runs members, and clients talk to
//! them directly there.
//!
//! [`start`] returns a [`Proxy`] handle with the same notifications as a member's `embed::Etcd`
//! (ready, stopped, err, close), so `etcdmain` waits on either the same way.

mod auth;
mod cache;
mod cluster;
mod flags;
mod http;
mod kv;
mod lease;
mod maintenance;
mod metrics;
mod namespace;
mod upstream;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::Status;

pub use flags::{GrpcProxyCommand, GrpcProxyFlags, GrpcProxySubcommand, ProxyConfig};

use crate::embed::serve::{bind_all, serve_router};
use crate::pb::etcdserverpb::auth_server::AuthServer;
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::cluster_server::ClusterServer;
use crate::pb::etcdserverpb::kv_server::KvServer;
use crate::pb::etcdserverpb::lease_server::LeaseServer;
use crate::pb::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::pb::etcdserverpb::watch_server::WatchServer;
use crate::pb::etcdserverpb::MemberListRequest;
use crate::tls::{Material, Side};
use crate::watched::Watched;

/// How long `close` lets client connections finish before it stops waiting for them.
const CLIENT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Between attempts to reach the cluster before the proxy is ready.
const READY_RETRY: Duration = Duration::from_millis(200);

/// Forwards a unary call to the cluster unchanged.
macro_rules! forward {
    ($shared:expr, $request:expr, $retry:expr, $client:ident, $method:ident) => {{
        let metadata = $request.metadata().clone();
        $shared
            .upstream
            .call(
                $retry,
                &metadata,
                $request.into_inner(),
                |channel, request| async move {
                    $client::new(channel)
                        .max_decoding_message_size(RESPONSE_BYTES_MAX)
                        .$method(request)
                        .await
                },
            )
            .await
            .map(tonic::Response::new)
    }};
}
pub(crate) use forward;

/// A proxied service whose every call is forwarded unchanged: `reads` retried on any failure,
/// `writes` refused by a read-only proxy and re-sent only when they were not sent (a resent
/// change could apply twice: a second `user add` answers "user name already exists").
macro_rules! forwarding_service {
    (
        $proxy:ident: $service:ident via $client:ident {
            reads { $($read:ident($read_req:ty) -> $read_resp:ty;)* }
            writes { $($write:ident($write_req:ty) -> $write_resp:ty;)* }
        }
    ) => {
        pub struct $proxy {
            shared: std::sync::Arc<$crate::proxy::Shared>,
        }

        impl $proxy {
            pub fn new(shared: std::sync::Arc<$crate::proxy::Shared>) -> $proxy {
                $proxy { shared }
            }
        }

        #[tonic::async_trait]
        impl $service for $proxy {
            $(
                async fn $read(
                    &self,
                    request: tonic::Request<$read_req>,
                ) -> Result<tonic::Response<$read_resp>, tonic::Status> {
                    $crate::proxy::forward!(
                        self.shared,
                        request,
                        $crate::proxy::upstream::Retry::Always,
                        $client,
                        $read
                    )
                }
            )*
            $(
                async fn $write(
                    &self,
                    request: tonic::Request<$write_req>,
                ) -> Result<tonic::Response<$write_resp>, tonic::Status> {
                    self.shared.writable()?;
                    $crate::proxy::forward!(
                        self.shared,
                        request,
                        $crate::proxy::upstream::Retry::IfNotSent,
                        $client,
                        $write
                    )
                }
            )*
        }
    };
}
pub(crate) use forwarding_service;

/// What every proxied service shares.
pub struct Shared {
    upstream: upstream::Upstream,
    cache: cache::RangeCache,
    watches: watch::Watches,
    namespace: namespace::Namespace,
    metrics: metrics::ProxyMetrics,
    read_only: bool,
}

impl Shared {
    /// `--proxy=readonly` refuses what would change the cluster (etcd's v2 readonly proxy answers
    /// such requests with 501 Not Implemented; Unimplemented is gRPC's code for it).
    fn writable(&self) -> Result<(), Status> {
        if self.read_only {
            return Err(Status::unimplemented(
                "proxy: read-only mode, the request would change the cluster",
            ));
        }
        Ok(())
    }

    fn metrics_text(&self) -> String {
        self.metrics.text(self.cache.len(), self.watches.counts())
    }
}

/// A running proxy. Cheap to clone: every clone is the same proxy.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    ready: Watched<bool>,
    stopping: Arc<Watched<bool>>,
    stopped: Watched<bool>,
    errors: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    error_sender: mpsc::UnboundedSender<String>,
    serve_tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Binds the listeners and starts serving. The proxy is ready once the cluster has answered
/// through it.
pub async fn start(config: ProxyConfig) -> Result<Proxy, String> {
    use crate::io::clock::Clock;
    let hosts: Vec<String> = config
        .listen_addrs
        .iter()
        .map(|url| url.host.clone())
        .collect();
    let tls = Material::for_proxy(
        &config.serve_tls,
        &hosts,
        &config.fixtures_dir,
        &config.upstream_tls,
        &config.tls_policy,
        crate::io::clock::SystemClock.wall_ms(),
    )?;
    let listeners = bind_all(&config.listen_addrs, Side::Client, &tls).await?;
    let metrics_listeners = bind_all(&config.metrics_addrs, Side::Client, &tls).await?;
    let shared = Arc::new(Shared {
        upstream: upstream::Upstream::new(&config.endpoints, &tls.dialers().client)?,
        cache: cache::RangeCache::default(),
        watches: watch::Watches::default(),
        namespace: namespace::Namespace::new(config.namespace.clone()),
        metrics: metrics::ProxyMetrics::default(),
        read_only: config.read_only,
    });
    let (error_sender, errors) = mpsc::unbounded_channel();
    let proxy = Proxy {
        inner: Arc::new(Inner {
            ready: Watched::new(false),
            stopping: Arc::new(Watched::new(false)),
            stopped: Watched::new(false),
            errors: tokio::sync::Mutex::new(errors),
            error_sender,
            serve_tasks: Mutex::new(Vec::new()),
        }),
    };
    for listener in listeners {
        let grpc = tonic::service::Routes::new(KvServer::new(kv::KvProxy::new(shared.clone())))
            .add_service(WatchServer::new(watch::WatchProxy::new(shared.clone())))
            .add_service(LeaseServer::new(lease::LeaseProxy::new(shared.clone())))
            .add_service(ClusterServer::new(cluster::ClusterProxy::new(
                shared.clone(),
            )))
            .add_service(MaintenanceServer::new(maintenance::MaintenanceProxy::new(
                shared.clone(),
            )))
            .add_service(AuthServer::new(auth::AuthProxy::new(shared.clone())));
        let app = grpc.into_axum_router().merge(http::router(shared.clone()));
        proxy.spawn_serve(serve_router(listener, app, None, proxy.stopping_signal()));
    }
    for listener in metrics_listeners {
        let app = http::router(shared.clone());
        proxy.spawn_serve(serve_router(listener, app, None, proxy.stopping_signal()));
    }
    tracing::info!(
        endpoints = ?config.endpoints,
        advertise_client_url = %config.advertise_client_url,
        namespace = %String::from_utf8_lossy(&config.namespace),
        read_only = config.read_only,
        "started gRPC proxy"
    );
    let ready_proxy = proxy.clone();
    tokio::spawn(async move {
        ready_proxy.wait_for_cluster(&shared).await;
        tracing::info!(endpoint = %shared.upstream.current_url(), "ready to proxy client requests");
        ready_proxy.inner.ready.set(true);
    });
    Ok(proxy)
}

impl Proxy {
    /// Resolves once the cluster has answered through the proxy.
    pub async fn ready(&self) {
        self.inner.ready.wait_for(|ready| *ready).await;
    }

    /// Resolves when `close` has finished.
    pub async fn stopped(&self) {
        self.inner.stopped.wait_for(|stopped| *stopped).await;
    }

    /// The next fatal error (a listener that failed).
    pub async fn err(&self) -> String {
        match self.inner.errors.lock().await.recv().await {
            Some(error) => error,
            None => std::future::pending().await,
        }
    }

    /// Stops accepting clients, lets open calls finish (bounded), then reports stopped.
    /// Idempotent.
    pub async fn close(&self) {
        let mut already_stopping = false;
        self.inner.stopping.update(|stopping| {
            already_stopping = std::mem::replace(stopping, true);
            !already_stopping
        });
        if already_stopping {
            self.stopped().await;
            return;
        }
        tracing::info!("closing gRPC proxy");
        let tasks = std::mem::take(&mut *self.inner.serve_tasks.lock().unwrap());
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let mut finished = futures::future::join_all(tasks);
        tokio::select! {
            biased;
            _ = &mut finished => {}
            () = tokio::time::sleep(CLIENT_DRAIN_TIMEOUT) => {
                // Watch and keep-alive streams never end by themselves.
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
                finished.await;
            }
        }
        tracing::info!("gRPC proxy closed");
        self.inner.stopped.set(true);
    }

    async fn wait_for_cluster(&self, shared: &Shared) {
        loop {
            let listed = shared
                .upstream
                .call(
                    upstream::Retry::Always,
                    &Default::default(),
                    MemberListRequest::default(),
                    |channel, request| async move {
                        ClusterClient::new(channel).member_list(request).await
                    },
                )
                .await;
            match listed {
                Ok(_) => return,
                Err(status) => {
                    tracing::debug!(%status, "cluster not reachable yet");
                    tokio::time::sleep(READY_RETRY).await;
                }
            }
        }
    }

    fn stopping_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let stopping = self.inner.stopping.clone();
        async move {
            stopping.wait_for(|stopping| *stopping).await;
        }
    }

    fn spawn_serve(
        &self,
        serve: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
    ) {
        let proxy = self.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = serve.await {
                proxy.report(error);
            }
        });
        self.inner.serve_tasks.lock().unwrap().push(task);
    }

    /// etcd's `errHandler`: errors while stopping are part of stopping.
    fn report(&self, error: String) {
        if self.inner.stopping.get() {
            tracing::debug!(%error, "error while stopping");
            return;
        }
        tracing::error!(%error, "fatal error");
        let _ = self.inner.error_sender.send(error);
    }
}
