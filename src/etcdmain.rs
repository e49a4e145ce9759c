//! etcd's `etcdmain`: turn flags into a running member and keep it running until it is told to
//! stop (ctrl-c / SIGTERM → `Etcd::close`) or fails.

use crate::config::Config;
use crate::embed::{self, Etcd};
use crate::io::Io;

/// How a member's run ended; `main` turns it into an exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped on request (interrupt): exit 0.
    Stopped,
    /// Could not start, or failed while running: exit 1.
    Failed(String),
}

/// etcd's `startEtcd` + the wait in `startEtcdOrProxyV2`: start, register the interrupt handler,
/// then block on error-or-stopped.
pub async fn run_member(config: Config, io: Io) -> Outcome {
    let etcd = match embed::start(config, io).await {
        Ok(etcd) => etcd,
        Err(error) => return Outcome::Failed(error),
    };
    register_interrupt_handler(etcd.clone());
    tokio::select! {
        biased;
        () = etcd.ready() => {}
        () = etcd.stopped() => return Outcome::Stopped,
        error = etcd.err() => return fail(&etcd, error).await,
    }
    tokio::select! {
        biased;
        () = etcd.stopped() => Outcome::Stopped,
        error = etcd.err() => fail(&etcd, error).await,
    }
}

async fn fail(etcd: &Etcd, error: String) -> Outcome {
    etcd.close().await;
    Outcome::Failed(error)
}

fn register_interrupt_handler(etcd: Etcd) {
    tokio::spawn(async move {
        crate::io::interrupted().await;
        tracing::info!("received interrupt signal, shutting down");
        etcd.close().await;
    });
}
