//! I/O seams.
//!
//! Everything detcd persists goes through the [`Disk`] trait instead of calling
//! `std::fs` directly. In production the server uses [`RealDisk`]; inside the
//! deterministic simulator it uses [`SimDisk`], an in-memory disk that survives a
//! simulated node crash, models exactly what a power loss does to data that was
//! not fsynced, and can inject faults from a seed. Keeping the seam synchronous is
//! deliberate: the raft loop must not proceed before its log is durable anyway
//! (etcd's raft loop also blocks on fsync), and a synchronous seam keeps the
//! simulated disk free of scheduling nondeterminism.

mod disk;
#[cfg(test)]
mod disk_conformance;
mod real_disk;
mod sim_disk;

pub use disk::{probe_writable, Disk, DiskFile};
pub use real_disk::RealDisk;
pub use sim_disk::{CrashMode, DiskStats, FaultRates, SimDisk};
