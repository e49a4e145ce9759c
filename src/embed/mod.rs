//! `embed` (etcd's `embed.StartEtcd`): build the server, start it, then serve peers, clients and
//! metrics, in that order. The returned [`Etcd`] is not yet guaranteed to have a leader or to have
//! replayed its log: wait on [`Etcd::ready`] for that, on [`Etcd::stopped`] for the end, and on
//! [`Etcd::err`] for a fatal error from any of its parts.

#[cfg(not(madsim))]
mod oversized;
pub(crate) mod serve;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{ClusterState, Config, Mode};
use crate::io::Io;
use crate::server::bootstrap;
use crate::server::EtcdServer;
use crate::storage::wal::Wal;
use crate::tls::Side;
use crate::watched::Watched;

/// How long `close` lets client connections finish before it stops waiting for them.
const CLIENT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running member. Cheap to clone: every clone is the same member.
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

struct Inner {
    server: Arc<EtcdServer>,
    client_addrs: Vec<SocketAddr>,
    ready: Arc<Watched<bool>>,
    /// Set once `close` begins: errors after that are part of stopping, not news.
    stopping: Arc<Watched<bool>>,
    stopped: Watched<bool>,
    errors: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    error_sender: mpsc::UnboundedSender<String>,
    raft_task: Mutex<Option<JoinHandle<()>>>,
    serve_tasks: Mutex<Vec<ServeTask>>,
}

/// A listener's serve loop, and the task that reports how it ended.
struct ServeTask {
    serving: tokio::task::AbortHandle,
    reporter: JoinHandle<()>,
}

/// Starts a member on the given seams. Errors here (bad data dir, corrupt WAL, port in use) mean
/// nothing is running.
pub async fn start(config: Config, io: Io) -> Result<Etcd, String> {
    if matches!(config.mode, Mode::Proxy { .. }) {
        return Err("embed starts members; a proxy starts in etcdmain".into());
    }
    let mut config = config;
    // Certificates first (generated ones go under the data dir): a bad one means nothing runs.
    let tls = crate::tls::Material::prepare(&config, io.clock.wall_ms())?;
    config.dialers = tls.dialers();
    let peer_listeners = serve::bind_all(&config.listen_peer_addrs, Side::Peer, &tls).await?;
    let listeners = serve::bind_all(&config.listen_client_addrs, Side::Client, &tls).await?;
    let metrics_listeners =
        serve::bind_all(&config.listen_metrics_addrs, Side::Client, &tls).await?;
    let joining = config.initial_cluster_state == ClusterState::Existing
        && !Wal::exists(io.disk.as_ref(), &config.wal_dir);
    let remote = if joining {
        let remote = bootstrap::fetch_remote_cluster(&config, io.clock.clone())
            .await
            .map_err(|e| e.to_string())?;
        Some(remote)
    } else {
        None
    };
    let server = EtcdServer::new(config, io, remote)
        .await
        .map_err(|e| e.to_string())?;

    let (error_sender, errors) = mpsc::unbounded_channel();
    let ready = Arc::new(Watched::new(false));
    let inner = Arc::new(Inner {
        server: server.clone(),
        client_addrs: listeners.iter().map(serve::Listener::local_addr).collect(),
        ready: ready.clone(),
        stopping: Arc::new(Watched::new(false)),
        stopped: Watched::new(false),
        errors: tokio::sync::Mutex::new(errors),
        error_sender,
        raft_task: Mutex::new(None),
        serve_tasks: Mutex::new(Vec::new()),
    });
    let etcd = Etcd { inner };

    // Server::start: the raft loop. A disk failure ends it with an error.
    let raft = server.start();
    let raft_etcd = etcd.clone();
    *etcd.inner.raft_task.lock().unwrap() = Some(tokio::spawn(async move {
        let result = raft.await.unwrap_or_else(|e| {
            Err(crate::server::ServerError::Storage(format!(
                "raft loop panicked: {e}"
            )))
        });
        if let Err(error) = result {
            raft_etcd.report(format!("raft loop stopped: {error}"));
        }
    }));

    // servePeers, serveClients, then serveMetrics: one task per listener.
    for listener in peer_listeners {
        etcd.spawn_serve(serve::serve_peers(
            listener,
            server.clone(),
            etcd.stopping_signal(),
        ));
    }
    for listener in listeners {
        etcd.spawn_serve(serve::serve_clients(
            listener,
            server.clone(),
            etcd.stopping_signal(),
        ));
    }
    for listener in metrics_listeners {
        etcd.spawn_serve(serve::serve_metrics(
            listener,
            server.clone(),
            etcd.stopping_signal(),
        ));
    }

    // Ready (etcd's ReadyNotify) once the member has a leader, has replayed its log, and has
    // published its client URLs to the cluster.
    tokio::spawn(async move {
        server.wait_ready().await;
        if server.cluster().publish().await.is_ok() {
            tracing::info!("ready to serve client requests");
            ready.set(true);
        }
    });
    Ok(etcd)
}

impl Etcd {
    pub fn server(&self) -> &Arc<EtcdServer> {
        &self.inner.server
    }

    /// The addresses the client listeners actually bound (useful with port 0).
    pub fn client_addrs(&self) -> &[SocketAddr] {
        &self.inner.client_addrs
    }

    /// Resolves when the member has a leader and has replayed its log.
    pub async fn ready(&self) {
        self.inner.ready.wait_for(|ready| *ready).await;
    }

    /// Resolves when `close` has finished.
    pub async fn stopped(&self) {
        self.inner.stopped.wait_for(|stopped| *stopped).await;
    }

    /// The next fatal error from the raft loop or a listener.
    pub async fn err(&self) -> String {
        match self.inner.errors.lock().await.recv().await {
            Some(error) => error,
            None => std::future::pending().await,
        }
    }

    /// Ordered shutdown (etcd's `Close`): stop accepting clients and let in-flight requests finish
    /// (bounded), hand leadership to another voter if this member leads, stop the server so the raft loop ends between two Readies — never in the middle of
    /// a WAL write — then report stopped. Idempotent.
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
        tracing::info!("closing member");
        let serve_tasks = std::mem::take(&mut *self.inner.serve_tasks.lock().unwrap());
        let (serving, reporters): (Vec<_>, Vec<_>) = serve_tasks
            .into_iter()
            .map(|task| (task.serving, task.reporter))
            .unzip();
        let clock = self.inner.server.clock();
        let mut finished = futures::future::join_all(reporters);
        tokio::select! {
            biased;
            _ = &mut finished => {}
            () = clock.sleep(CLIENT_DRAIN_TIMEOUT) => {
                // A connection that never finishes (a half-open one, a stuck stream) must not keep
                // the listener, and with it the port, past close: a restarted member binds it again.
                tracing::warn!("client connections still open at shutdown; closing them");
                for serving in serving {
                    serving.abort();
                }
                // An aborted listener lets go of its port only when it is dropped: wait for that.
                finished.await;
            }
        }
        self.inner
            .server
            .cluster()
            .transfer_leadership_before_stop()
            .await;
        self.inner.server.stop();
        let raft_task = self.inner.raft_task.lock().unwrap().take();
        if let Some(raft_task) = raft_task {
            let _ = raft_task.await;
        }
        tracing::info!("member closed");
        self.inner.stopped.set(true);
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
        let etcd = self.clone();
        let serving = tokio::spawn(serve);
        let abort = serving.abort_handle();
        let reporter = tokio::spawn(async move {
            // A listener that fails, or panics, is fatal for the member: report either.
            match serving.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => etcd.report(error),
                Err(error) if error.is_cancelled() => {}
                Err(panic) => etcd.report(format!("client listener panicked: {panic}")),
            }
        });
        self.inner.serve_tasks.lock().unwrap().push(ServeTask {
            serving: abort,
            reporter,
        });
    }

    /// etcd's `errHandler`: drop errors that are part of stopping, pass the rest on.
    fn report(&self, error: String) {
        if self.inner.stopping.get() {
            tracing::debug!(%error, "error while stopping");
            return;
        }
        tracing::error!(%error, "fatal error");
        let _ = self.inner.error_sender.send(error);
    }
}
