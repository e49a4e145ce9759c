//! The seams: everything in the server that touches time, files or sockets goes through here, so
//! the same server code runs on tokio in production and on madsim in the simulator.
//!
//! - [`Clock`]: time and timers (skewable per node in the simulator).
//! - [`Disk`]: files, with an explicit durability contract. Production uses [`RealDisk`]; the
//!   simulator uses [`SimDisk`], an in-memory disk that survives a simulated crash, models exactly
//!   what a power loss does to data that was not fsynced, and injects faults from a seed. Every
//!   call is synchronous except fsync, which is awaited: the raft loop does not proceed before its
//!   log is durable (etcd's raft loop also blocks on fsync), but the rest of the member (its
//!   transport, its clients, its lease duties) runs meanwhile, as it does in production, and the
//!   simulated disk gives each fsync a latency in simulated time.
//! - Network: tokio TCP in production, madsim's network in the simulator. madsim-tokio and
//!   madsim-tonic already swap the socket layer under `--cfg madsim`; the one place where the two
//!   builds serve differently (HTTP/1 + gRPC on one port) is `embed::serve`.

pub mod clock;
mod disk;
#[cfg(test)]
mod disk_conformance;
mod real_disk;
mod sim_disk;

pub use clock::{Clock, SkewedClock, SystemClock};
pub use disk::{probe_writable, Disk, DiskFile, FileSystem, Syncing};
pub use real_disk::RealDisk;
pub use sim_disk::{CrashMode, DiskStats, FaultRates, SimDisk, SyncLatency};

use std::sync::Arc;

/// The seams one node runs on, injected at `embed::start`.
#[derive(Debug, Clone)]
pub struct Io {
    pub clock: Arc<dyn Clock>,
    pub disk: Arc<dyn Disk>,
    /// Seeds the node's own RNG (raft election timeouts, request ids): the simulator passes its
    /// per-node seed, production draws one.
    pub seed: u64,
}
impl Io {
    /// The production seams: the host clock, the real disk, and a seed from the OS.
    pub fn production() -> Io {
        Io {
            clock: Arc::new(SystemClock),
            disk: Arc::new(RealDisk),
            seed: rand::random(),
        }
    }
}

/// Resolves on the first interrupt: ctrl-c (SIGINT) or, outside the simulator, SIGTERM.
/// madsim delivers `send_ctrl_c` to `ctrl_c()`, and has no other signals.
pub async fn interrupted() {
    #[cfg(all(unix, not(madsim)))]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    biased;
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(any(not(unix), madsim))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
