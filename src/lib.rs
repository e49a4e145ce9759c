//! detcd: an etcd-compatible key-value server (etcd v3 gRPC API) whose every touch of time, disk
//! and network goes through seams ([`io`]), so the same server runs on tokio in production and,
//! many nodes at once, inside madsim's deterministic simulator.
//!
//! Start-up mirrors etcd: [`etcdmain`] (flags, mode) → [`embed::start`] → [`server::EtcdServer`]
//! (+ the [`raft_node`] loop) → serve clients ([`api`]). A `Put` travels client → [`api::kv`] →
//! raft proposal with a wait-id → WAL fsync ([`storage::wal`]) → commit → apply to
//! [`storage::mvcc`] → the waiter is woken with the response.

pub mod api;
pub mod auth;
pub mod backup;
#[cfg(feature = "sim-bugs")]
pub mod bugs;
pub mod config;
pub mod embed;
pub mod etcdmain;
pub mod failpoint;
pub mod fuzzing;
pub mod io;
pub mod metrics;
#[cfg(not(madsim))]
pub mod proxy;
pub mod raft_node;
pub mod server;
pub mod storage;
pub mod tls;
pub mod watched;

/// Without the `sim-bugs` feature every planted-bug hook is `false` (see `bugs` in that build).
#[cfg(not(feature = "sim-bugs"))]
#[macro_export]
macro_rules! planted_bug {
    ($bug:ident) => {
        false
    };
}

/// Generated etcd v3 wire types (and detcd's internal records), under etcd's package names.
pub mod pb {
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod detcdpb {
        tonic::include_proto!("detcdpb");
    }
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
}
