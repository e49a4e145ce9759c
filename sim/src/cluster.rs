//! The simulated cluster: N real detcd members, each a madsim node running
//! `etcdmain::run_member` on its own [`SimDisk`] and [`SkewedClock`], configured from the same
//! etcd-style flags an operator would pass (`--name nI --initial-cluster n1=http://10.0.0.1:2380,...`).
//!
//! A member's disk and clock live outside its node, so they survive kill and restart: a restart
//! is a new process on the old disk. A panic at an armed failpoint kills the node (madsim's
//! `restart_on_panic_matching`) and madsim restarts it; the next start then sees that its previous
//! run never ended and applies the power loss that the crash at that instant means. Any other
//! panic escapes the simulation and is reported as a crash of the server.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use detcd::config::{Config, Flags};
use detcd::etcdmain::{run_member, Outcome};
use detcd::io::{CrashMode, Io, SimDisk, SkewedClock, SyncLatency};
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;

use crate::options::{FsyncLatency, SwarmOptions};
use crate::trace::Trace;

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

/// Member `index` (0-based) lives at 10.0.0.{index+1}.
pub fn member_ip(index: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, index as u8 + 1))
}

pub fn member_name(index: usize) -> String {
    format!("n{}", index + 1)
}

pub fn peer_url(index: usize) -> String {
    format!("http://{}:{PEER_PORT}", member_ip(index))
}

/// The flags member `index` of an `n`-member cluster starts with, as etcd's docs write them.
pub fn member_flags(index: usize, options: &SwarmOptions) -> Vec<String> {
    let mut flags = common_flags(index, options);
    flags.push("--initial-cluster-state=new".to_string());
    flags
}

/// The flags that bring member `index` back on an empty data dir after `member add`, as etcd's
/// runtime-reconfiguration docs write them: `--initial-cluster` lists the current members (all of
/// the simulator's, none of which changes its URLs), and the state is `existing`, so the member
/// fetches the member list from its peers and finds itself there by its peer URL.
pub fn rejoin_flags(index: usize, options: &SwarmOptions) -> Vec<String> {
    let mut flags = common_flags(index, options);
    flags.push("--initial-cluster-state=existing".to_string());
    flags
}

fn common_flags(index: usize, options: &SwarmOptions) -> Vec<String> {
    let initial_cluster: Vec<String> = (0..options.nodes)
        .map(|i| format!("{}={}", member_name(i), peer_url(i)))
        .collect();
    let client_url = format!("http://{}:{CLIENT_PORT}", member_ip(index));
    let name = member_name(index);
    let mut flags = vec![
        "detcd".to_string(),
        format!("--name={name}"),
        format!("--data-dir=/{name}.etcd"),
        format!("--initial-cluster={}", initial_cluster.join(",")),
        "--initial-cluster-token=detcd-sim".to_string(),
        format!("--listen-peer-urls={}", peer_url(index)),
        format!("--initial-advertise-peer-urls={}", peer_url(index)),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--heartbeat-interval={}", options.heartbeat_interval_ms),
        format!("--election-timeout={}", options.election_timeout_ms),
        format!("--snapshot-count={}", options.snapshot_count),
        format!("--max-snapshots={}", options.max_snapshots),
        // etcd's 10-minute default would never tick in a run: the watchers' progress_notify
        // sessions need notifications to check.
        "--experimental-watch-progress-notify-interval=1s".to_string(),
        "--log-level=error".to_string(),
    ];
    if let Some(bytes) = options.wal_segment_bytes {
        flags.push(format!("--experimental-wal-segment-size={bytes}"));
    }
    if let Some(ms) = options.lease_checkpoint_interval_ms {
        flags.push("--experimental-enable-lease-checkpoint=true".to_string());
        flags.push(format!("--experimental-lease-checkpoint-interval={ms}ms"));
    }
    flags
}

/// The fsync latency model of a member's disk.
fn sync_latency(latency: FsyncLatency) -> SyncLatency {
    let usual = (Duration::from_micros(100), Duration::from_millis(2));
    match latency {
        FsyncLatency::None => SyncLatency::default(),
        FsyncLatency::Fast => SyncLatency {
            usual,
            ..SyncLatency::default()
        },
        FsyncLatency::Slow => SyncLatency {
            usual: (Duration::from_millis(2), Duration::from_millis(20)),
            ..SyncLatency::default()
        },
        FsyncLatency::Spiky => SyncLatency {
            usual,
            slow_chance: 0.05,
            slow: (Duration::from_millis(10), Duration::from_millis(200)),
        },
    }
}

/// The member id member `index` starts with (a replacement gives it a new one).
pub fn initial_member_id(index: usize, options: &SwarmOptions) -> u64 {
    let config = parse_config(&member_flags(index, options));
    detcd::server::bootstrap::member_id(
        &config.initial_advertise_peer_urls,
        &config.initial_cluster_token,
    )
}

fn parse_config(flags: &[String]) -> Config {
    Flags::try_parse_from(flags)
        .expect("the simulator's flags parse")
        .into_config()
        .expect("the simulator's flags are valid")
}

#[derive(Debug)]
struct MemberState {
    /// Set by the member's init, cleared when `run_member` returns or the supervisor kills it.
    running: bool,
    starts: u32,
    /// How the last run ended, if it ended by itself.
    last_exit: Option<String>,
    /// A failpoint armed on this member that has not fired yet.
    armed_failpoint: Option<&'static str>,
    /// The flags the next start parses: a replaced member comes back with other flags.
    flags: Vec<String>,
    /// The member's raft id, which `member add` changes when the member is replaced.
    member_id: u64,
}

/// One detcd member and the state that outlives its process.
pub struct Member {
    pub index: usize,
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub node: NodeHandle,
    pub disk: SimDisk,
    pub clock: SkewedClock,
    state: Arc<Mutex<MemberState>>,
}

impl Member {
    fn start(index: usize, options: &SwarmOptions, trace: &Trace) -> Member {
        let flags = member_flags(index, options);
        let name = member_name(index);
        let disk = SimDisk::new(options.seed.wrapping_mul(31).wrapping_add(index as u64));
        disk.set_crash_mode(match options.crash_mode.as_str() {
            "drop" => CrashMode::DropUnsynced,
            "keep" => CrashMode::KeepUnsynced,
            _ => CrashMode::TornPrefix,
        });
        disk.set_sync_latency(sync_latency(options.fsync_latency));
        let clock = SkewedClock::default();
        let state = Arc::new(Mutex::new(MemberState {
            running: false,
            starts: 0,
            last_exit: None,
            armed_failpoint: None,
            flags,
            member_id: initial_member_id(index, options),
        }));
        let member_seed = options.seed ^ ((index as u64 + 1) << 56);
        let node = {
            let (disk, clock, state, trace, name) = (
                disk.clone(),
                clock.clone(),
                state.clone(),
                trace.clone(),
                name.clone(),
            );
            Handle::current()
                .create_node()
                .name(name.clone())
                .ip(member_ip(index))
                .restart_on_panic_matching("failpoint")
                .init(move || {
                    let (disk, clock, state, trace, name) = (
                        disk.clone(),
                        clock.clone(),
                        state.clone(),
                        trace.clone(),
                        name.clone(),
                    );
                    async move {
                        let (starts, config) = {
                            let mut state = state.lock().unwrap();
                            if state.running {
                                // The last run neither returned nor was killed by the supervisor:
                                // it panicked at a failpoint. That instant was a power loss.
                                disk.crash();
                                let point = state.armed_failpoint.take().unwrap_or("?");
                                trace.record(
                                    "node",
                                    &name,
                                    format!("crashed at failpoint {point}"),
                                );
                            }
                            state.running = true;
                            state.starts += 1;
                            (state.starts, parse_config(&state.flags))
                        };
                        trace.record("node", &name, format!("start #{starts}"));
                        let io = Io {
                            clock: Arc::new(clock),
                            disk: Arc::new(disk),
                            seed: member_seed.wrapping_add(u64::from(starts)),
                        };
                        let outcome = run_member(config, io).await;
                        let what = match outcome {
                            Outcome::Stopped => "stopped".to_string(),
                            Outcome::Failed(error) => format!("failed: {error}"),
                        };
                        trace.record("node", &name, what.clone());
                        let mut state = state.lock().unwrap();
                        state.running = false;
                        state.last_exit = Some(what);
                    }
                })
                .build()
        };
        Member {
            index,
            client_url: format!("http://{}:{CLIENT_PORT}", member_ip(index)),
            peer_url: peer_url(index),
            name,
            node,
            disk,
            clock,
            state,
        }
    }

    pub fn id(&self) -> NodeId {
        self.node.id()
    }

    /// Whether the member's process is up (it may still be starting or failing).
    pub fn is_running(&self) -> bool {
        self.state.lock().unwrap().running && !Handle::current().is_exit(self.id())
    }

    pub fn starts(&self) -> u32 {
        self.state.lock().unwrap().starts
    }

    pub fn last_exit(&self) -> Option<String> {
        self.state.lock().unwrap().last_exit.clone()
    }

    /// The member's raft id (it changes when the member is replaced).
    pub fn member_id(&self) -> u64 {
        self.state.lock().unwrap().member_id
    }

    /// The configuration the member's flags give (the next start's, if they changed since).
    pub fn config(&self) -> Config {
        parse_config(&self.state.lock().unwrap().flags)
    }

    /// Gives the member the identity `member add` assigned it and the flags it joins with; the
    /// next [`Member::restart`] starts it so.
    pub fn replace_identity(&self, member_id: u64, flags: Vec<String>) {
        let mut state = self.state.lock().unwrap();
        state.member_id = member_id;
        state.flags = flags;
    }

    pub fn armed_failpoint(&self) -> Option<&'static str> {
        self.state.lock().unwrap().armed_failpoint
    }

    /// Kills the process (no shutdown); the disk keeps what it had, synced or not, until
    /// [`SimDisk::crash`] decides.
    pub fn kill(&self) {
        self.disarm_failpoint();
        self.state.lock().unwrap().running = false;
        Handle::current().kill(self.id());
    }

    /// Starts the process again on the same disk and clock.
    ///
    /// The old process is killed first even when `run_member` has returned: a real process exit
    /// closes every socket it holds, but a madsim node whose main task returns keeps its network
    /// state (any socket a task still held), and only a kill resets it.
    pub fn restart(&self) {
        assert!(
            !self.is_awaiting_restart(),
            "madsim restarts a member that crashed at a failpoint by itself"
        );
        Handle::current().kill(self.id());
        Handle::current().restart(self.id());
    }

    /// Whether the member crashed at a failpoint and madsim has yet to restart it.
    pub fn is_awaiting_restart(&self) -> bool {
        self.state.lock().unwrap().running && Handle::current().is_exit(self.id())
    }

    pub fn arm_failpoint(&self, name: &'static str) {
        let mut state = self.state.lock().unwrap();
        detcd::failpoint::arm(state.member_id, name);
        state.armed_failpoint = Some(name);
    }

    pub fn disarm_failpoint(&self) {
        let mut state = self.state.lock().unwrap();
        if let Some(name) = state.armed_failpoint.take() {
            detcd::failpoint::disarm(state.member_id, name);
        }
    }
}

/// The members, their trace, and the madsim handle that controls them.
pub struct Cluster {
    pub members: Vec<Member>,
    pub trace: Trace,
}

impl Cluster {
    pub fn start(options: &SwarmOptions, trace: &Trace) -> Cluster {
        let members = (0..options.nodes)
            .map(|index| Member::start(index, options, trace))
            .collect();
        Cluster {
            members,
            trace: trace.clone(),
        }
    }

    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }
}
