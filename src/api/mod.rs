//! The client API: one module per etcd v3 gRPC service, plus the HTTP endpoints served next to them.

pub mod auth;
pub mod cluster;
pub mod http;
pub mod identity;
pub mod kv;
pub mod lease;
pub mod maintenance;
mod requester;
pub mod status;
pub mod watch;

pub use auth::AuthService;
pub use cluster::ClusterService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use maintenance::MaintenanceService;
pub use watch::WatchService;
