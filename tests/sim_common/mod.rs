//! Shared by the `sim_*.rs` tests: one detcd member on the simulated seams, at a fixed address,
//! started through `etcdmain::run_member` exactly as the binary starts.

use std::net::SocketAddr;
use std::sync::Arc;

use detcd::config::Config;
use detcd::etcdmain::{run_member, Outcome};
use detcd::io::{Io, SimDisk, SystemClock};
use madsim::runtime::{Handle, NodeHandle};

pub const NODE_ADDR: &str = "10.0.0.1:2379";

/// Starts member n1 on `disk` (kept across restarts); `adjust` may change its config. The member
/// must only ever stop because it was told to.
pub fn start_node(
    handle: &Handle,
    disk: SimDisk,
    adjust: impl Fn(&mut Config) + Send + Sync + 'static,
) -> NodeHandle {
    let addr: SocketAddr = NODE_ADDR.parse().unwrap();
    let adjust = Arc::new(adjust);
    handle
        .create_node()
        .name("n1")
        .ip(addr.ip())
        .init(move || {
            let (disk, adjust) = (disk.clone(), adjust.clone());
            async move {
                let mut config = Config::single_node("n1", "/n1.etcd".into(), addr);
                adjust(&mut config);
                let io = Io {
                    clock: Arc::new(SystemClock),
                    disk: Arc::new(disk),
                    seed: 7,
                };
                assert_eq!(run_member(config, io).await, Outcome::Stopped);
            }
        })
        .build()
}
