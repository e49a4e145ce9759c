//! etcd's `etcdmain`: turn flags into a running member or proxy (`startEtcdOrProxyV2`) and keep
//! it running until it is told to stop (ctrl-c / SIGTERM → close) or fails.

use std::future::Future;

use crate::config::{Config, Mode};
use crate::embed::{self, Etcd};
use crate::io::Io;

/// How a run ended; `main` turns it into an exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped on request (interrupt): exit 0.
    Stopped,
    /// Could not start, or failed while running: exit 1.
    Failed(String),
}

/// etcd's `startEtcdOrProxyV2`: member or proxy, then the same wait on error or stopped.
pub async fn run(config: Config, io: Io) -> Outcome {
    match config.mode {
        Mode::Member => run_member(config, io).await,
        Mode::Proxy { read_only } => run_proxy(config, io, read_only).await,
    }
}

/// etcd's `startEtcd`, then the wait.
pub async fn run_member(config: Config, io: Io) -> Outcome {
    match embed::start(config, io).await {
        Ok(etcd) => wait(etcd).await,
        Err(error) => Outcome::Failed(error),
    }
}

/// etcd's `startProxy` for `--proxy=on|readonly`: learn the cluster's client URLs from the peers
/// in `--initial-cluster`, then serve `--listen-client-urls` with the gRPC proxy.
#[cfg(not(madsim))]
async fn run_proxy(mut config: Config, io: Io, read_only: bool) -> Outcome {
    // The peers are asked for the member list over the peer TLS flags' connections.
    match crate::tls::Material::prepare(&config, io.clock.wall_ms()) {
        Ok(tls) => config.dialers = tls.dialers(),
        Err(error) => return Outcome::Failed(error),
    }
    let remote = match crate::server::bootstrap::fetch_remote_cluster(&config, io.clock).await {
        Ok(remote) => remote,
        Err(error) => return Outcome::Failed(error.to_string()),
    };
    let endpoints: Vec<String> = remote
        .members
        .iter()
        .flat_map(|member| member.client_ur_ls.iter().cloned())
        .collect();
    if endpoints.is_empty() {
        return Outcome::Failed("no member of the cluster has published client URLs yet".into());
    }
    // etcd's v2 proxy serves clients with the client TLS flags and reaches the members with the
    // peer ones (its transport is built from PeerTLSInfo).
    let peer_tls = &config.peer_tls;
    run_grpc_proxy(crate::proxy::ProxyConfig {
        endpoints,
        listen_addrs: config.listen_client_addrs.clone(),
        metrics_addrs: config.listen_metrics_addrs.clone(),
        advertise_client_url: config.advertise_client_urls.join(","),
        namespace: Vec::new(),
        read_only,
        log_level: config.log_level.clone(),
        serve_tls: config.client_tls.clone(),
        upstream_tls: crate::tls::UpstreamTls {
            // `TlsInfo::new` gives the cert and key files together or not at all.
            client_cert: peer_tls.cert_file.clone().zip(peer_tls.key_file.clone()),
            trusted_ca_file: peer_tls.trusted_ca_file.clone(),
            // Auto TLS peers have self-signed certificates: nothing to verify them with.
            insecure_skip_verify: peer_tls.auto_tls && !peer_tls.has_files(),
        },
        fixtures_dir: config.data_dir.join("fixtures").join("client"),
        tls_policy: config.tls_policy.clone(),
    })
    .await
}

/// The simulator runs members only: the proxy needs real sockets.
#[cfg(madsim)]
async fn run_proxy(_config: Config, _io: Io, _read_only: bool) -> Outcome {
    Outcome::Failed("proxy mode needs real sockets; the simulator runs members only".into())
}

/// `detcd grpc-proxy start` (etcd's `startGRPCProxy`), then the wait.
#[cfg(not(madsim))]
pub async fn run_grpc_proxy(config: crate::proxy::ProxyConfig) -> Outcome {
    match crate::proxy::start(config).await {
        Ok(proxy) => wait(proxy).await,
        Err(error) => Outcome::Failed(error),
    }
}

/// What member and proxy both offer `etcdmain` (embed's notifications).
trait Running: Clone + Send + Sync + 'static {
    fn ready(&self) -> impl Future<Output = ()> + Send;
    fn stopped(&self) -> impl Future<Output = ()> + Send;
    fn err(&self) -> impl Future<Output = String> + Send;
    fn close(&self) -> impl Future<Output = ()> + Send;
}

impl Running for Etcd {
    fn ready(&self) -> impl Future<Output = ()> + Send {
        Etcd::ready(self)
    }
    fn stopped(&self) -> impl Future<Output = ()> + Send {
        Etcd::stopped(self)
    }
    fn err(&self) -> impl Future<Output = String> + Send {
        Etcd::err(self)
    }
    fn close(&self) -> impl Future<Output = ()> + Send {
        Etcd::close(self)
    }
}

#[cfg(not(madsim))]
impl Running for crate::proxy::Proxy {
    fn ready(&self) -> impl Future<Output = ()> + Send {
        crate::proxy::Proxy::ready(self)
    }
    fn stopped(&self) -> impl Future<Output = ()> + Send {
        crate::proxy::Proxy::stopped(self)
    }
    fn err(&self) -> impl Future<Output = String> + Send {
        crate::proxy::Proxy::err(self)
    }
    fn close(&self) -> impl Future<Output = ()> + Send {
        crate::proxy::Proxy::close(self)
    }
}

/// The wait in `startEtcdOrProxyV2`: register the interrupt handler, then block on
/// ready-or-stopped-or-error and, once ready, on stopped-or-error.
async fn wait(running: impl Running) -> Outcome {
    register_interrupt_handler(running.clone());
    tokio::select! {
        biased;
        () = running.ready() => {}
        () = running.stopped() => return Outcome::Stopped,
        error = running.err() => return fail(&running, error).await,
    }
    tokio::select! {
        biased;
        () = running.stopped() => Outcome::Stopped,
        error = running.err() => fail(&running, error).await,
    }
}

async fn fail(running: &impl Running, error: String) -> Outcome {
    running.close().await;
    Outcome::Failed(error)
}

fn register_interrupt_handler(running: impl Running) {
    tokio::spawn(async move {
        crate::io::interrupted().await;
        tracing::info!("received interrupt signal, shutting down");
        running.close().await;
    });
}
