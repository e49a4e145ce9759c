//! Swarm options: each seed draws its own cluster timing, workload shape and fault mix (TigerBeetle's
//! VOPR and "swarm testing": a random subset of fault kinds per run finds bugs that an always-on
//! mix of every fault hides). Everything here is a pure function of the seed and the command line,
//! so a failing seed's options can be printed, stored in its report, and replayed.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// The kinds of fault the simulator injects; `--faults` picks which may be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Power loss: kill the node, lose its unsynced disk writes (maybe a torn tail, maybe a
    /// flipped bit), restart; or crash at a named failpoint (`detcd::failpoint::NAMES`).
    Crash,
    /// Graceful interrupt (ctrl-c → `Etcd::close`), then restart.
    Interrupt,
    /// Network partitions between members (needs more than one node).
    Partition,
    /// Clogged links: client ↔ member, and between members (FoundationDB's swizzle-clog).
    Clog,
    /// fsync errors (the member must stop rather than acknowledge) and read errors at start.
    Disk,
    /// Clock drift and wall-clock jumps.
    Clock,
    /// Pause a member's process, then resume it.
    Pause,
    /// A lossy, slow network for a while: packets dropped (streams retransmit, new connections
    /// are refused) and delivered after a longer, random latency (reordered across connections).
    Network,
    /// Replace a member as an operator would (needs more than one node): `member remove`, wipe
    /// its data dir, `member add` (maybe as a learner, then `member promote`), restart it to
    /// join the existing cluster under a new member id.
    Membership,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Crash,
        FaultKind::Interrupt,
        FaultKind::Partition,
        FaultKind::Clog,
        FaultKind::Disk,
        FaultKind::Clock,
        FaultKind::Pause,
        FaultKind::Network,
        FaultKind::Membership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Interrupt => "interrupt",
            FaultKind::Partition => "partition",
            FaultKind::Clog => "clog",
            FaultKind::Disk => "disk",
            FaultKind::Clock => "clock",
            FaultKind::Pause => "pause",
            FaultKind::Network => "network",
            FaultKind::Membership => "membership",
        }
    }

    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether this kind acts on the one member it is drawn for (the others act on links or on
    /// the whole network). Faults overlap freely, but not two on one member: the inner one would
    /// undo the outer one's state. A membership change picks its own member (maybe the leader)
    /// and itself skips one another fault holds: marking the drawn member busy for it would make
    /// it skip that member every time, and no replacement of a drawn follower would ever run.
    pub fn acts_on_member(self) -> bool {
        !matches!(
            self,
            FaultKind::Partition | FaultKind::Network | FaultKind::Membership
        )
    }

    /// Whether this kind means anything for a cluster of `nodes`.
    pub fn applies_to(self, nodes: usize) -> bool {
        !matches!(self, FaultKind::Partition | FaultKind::Membership) || nodes > 1
    }
}

/// How long a member's fsyncs take (`detcd::io::SyncLatency`): with time on disk, the rest of a
/// member runs while its raft loop waits for durability, so a message sent before the fsync it
/// depends on can leave, and a crash can strike mid-fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncLatency {
    /// Every fsync completes at once (the simulator before fsyncs took time).
    #[default]
    None,
    /// 0.1–2 ms, like an SSD.
    Fast,
    /// 2–20 ms, like a spinning disk or a network volume: longer than a message's trip.
    Slow,
    /// Like `fast`, but one fsync in twenty takes 10–200 ms (a busy device, a journal commit).
    Spiky,
}

impl FsyncLatency {
    pub fn name(self) -> &'static str {
        match self {
            FsyncLatency::None => "none",
            FsyncLatency::Fast => "fast",
            FsyncLatency::Slow => "slow",
            FsyncLatency::Spiky => "spiky",
        }
    }
}

/// WAL segment sizes a seed may draw: small enough that a seed's few hundred writes cut
/// segments and release them behind snapshots.
pub const WAL_SEGMENT_SIZES: &[u64] = &[1 << 10, 2 << 10, 4 << 10, 16 << 10];

/// What the command line fixes for every seed of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// `None`: drawn per seed from [`CLUSTER_SIZES`].
    pub nodes: Option<usize>,
    pub faults: Vec<FaultKind>,
    pub ops: usize,
    /// Planted bugs to switch on (names of `detcd::bugs::Bug`).
    pub bugs: Vec<String>,
}

/// Cluster sizes a seed may draw when `--nodes` is not given.
pub const CLUSTER_SIZES: &[usize] = &[1, 3, 5];

/// The options one seed runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmOptions {
    pub seed: u64,
    pub nodes: usize,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_count: u64,
    /// Simulated ms between compactions, or none.
    pub compaction_interval_ms: Option<u64>,
    pub clients: u32,
    pub keys: u32,
    /// Longest pause a client takes between two operations.
    pub think_ms_max: u64,
    /// Total client operations in the safety phase.
    pub ops: usize,
    /// Fault kinds this seed draws from, each with a weight.
    pub faults: Vec<(FaultKind, u32)>,
    /// Simulated ms between the end of one fault and the next.
    pub fault_gap_ms: (u64, u64),
    /// What a power loss does to unsynced bytes: `torn`, `drop` or `keep`.
    pub crash_mode: String,
    /// Chance that a crash also flips a bit in a WAL segment.
    pub bit_flip_percent: u32,
    /// Media faults in any of a member's files (snapshot files too, not only the WAL): the chance
    /// that a power loss also flips a bit or lands a misdirected write in one, and that a disk
    /// fault's latent read errors hit one file rather than the whole WAL.
    #[serde(default)]
    pub media_fault_percent: u32,
    pub bugs: Vec<String>,
    /// Clients also draw from the breadth mix (multi-op and nested txns, ranges with limits,
    /// serializable and past-revision reads, delete-ranges, `prev_kv`, compactions through any
    /// member), and the periodic compactor records its compactions and goes round the members.
    #[serde(default)]
    pub breadth: bool,
    #[serde(default)]
    pub fsync_latency: FsyncLatency,
    /// `--experimental-wal-segment-size`, or detcd's default (64 MiB, never reached in a seed).
    #[serde(default)]
    pub wal_segment_bytes: Option<u64>,
    /// Lease checkpoints (`--experimental-enable-lease-checkpoint`) every this many ms, or off.
    #[serde(default)]
    pub lease_checkpoint_interval_ms: Option<u64>,
    /// `--max-snapshots`: snapshot files a member keeps. One leaves no older file to fall back
    /// on, so a marker that names a purged file cannot start.
    #[serde(default = "max_snapshots_default")]
    pub max_snapshots: usize,
    /// A fault schedule to follow instead of drawing one from the seed (`replay --schedule`, the
    /// shrinker); the seed still drives everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
}

/// What a seed recorded before `max_snapshots` was drawn kept: three files.
fn max_snapshots_default() -> usize {
    3
}

impl SwarmOptions {
    pub fn draw(seed: u64, spec: &RunSpec) -> SwarmOptions {
        // Not madsim's RNG: the options exist before the runtime does.
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_0f5a_4a11);
        // Drawn even when `--nodes` fixes it, so that a seed's other options do not depend on it.
        let drawn_nodes = *CLUSTER_SIZES.choose(&mut rng).expect("sizes");
        let nodes = spec.nodes.unwrap_or(drawn_nodes);
        let heartbeat_interval_ms = *[10, 25, 50, 100].choose(&mut rng).expect("choices");
        let election_timeout_ms = heartbeat_interval_ms * rng.random_range(5..=15);
        let mut faults: Vec<(FaultKind, u32)> = spec
            .faults
            .iter()
            .filter(|kind| kind.applies_to(nodes))
            .filter_map(|&kind| {
                let weight = rng.random_range(1..=10);
                rng.random_bool(0.7).then_some((kind, weight))
            })
            .collect();
        // Swarm testing drops kinds at random, but a seed given faults always gets at least one.
        if faults.is_empty() {
            let allowed: Vec<FaultKind> = spec
                .faults
                .iter()
                .copied()
                .filter(|kind| kind.applies_to(nodes))
                .collect();
            if let Some(&kind) = allowed.choose(&mut rng) {
                faults.push((kind, 1));
            }
        }
        let gap_low = rng.random_range(50..1_000);
        // Options added later draw from their own stream, so that old seeds keep their draws.
        let mut later = StdRng::seed_from_u64(seed ^ 0x0b4e_ad7f_0a11);
        // Options added since seeds were first pinned come from their own stream, so that every
        // older option of a seed stays what it was.
        let mut disk_rng = StdRng::seed_from_u64(seed ^ 0x00d1_5c71_e50f_d15c);
        let fsync_latency = *[
            FsyncLatency::None,
            FsyncLatency::Fast,
            FsyncLatency::Slow,
            FsyncLatency::Spiky,
        ]
        .choose(&mut disk_rng)
        .expect("choices");
        let wal_segment_bytes = disk_rng
            .random_bool(0.5)
            .then(|| *WAL_SEGMENT_SIZES.choose(&mut disk_rng).expect("sizes"));
        // The media-fault rate, likewise on a stream of its own.
        let mut media_rng = StdRng::seed_from_u64(seed ^ 0x03ed_1a0f_a175);
        // Apart from `rng`, so that the options drawn before lease checkpoints stay each seed's.
        let mut lease_rng = StdRng::seed_from_u64(seed ^ 0x1ea5_ec4e_c4b0);
        let lease_checkpoint_interval_ms = lease_rng
            .random_bool(0.5)
            .then(|| lease_rng.random_range(500..=2_000));
        let mut snapshots_rng = StdRng::seed_from_u64(seed ^ 0x05a9_5407_f11e);
        let max_snapshots = *[1, 3, 5].choose(&mut snapshots_rng).expect("choices");
        SwarmOptions {
            seed,
            nodes,
            heartbeat_interval_ms,
            election_timeout_ms,
            snapshot_count: *[50, 1_000, 100_000].choose(&mut rng).expect("choices"),
            compaction_interval_ms: rng
                .random_bool(0.5)
                .then(|| rng.random_range(1_000..10_000)),
            clients: rng.random_range(2..=5),
            keys: rng.random_range(2..=6),
            think_ms_max: *[20, 100, 300].choose(&mut rng).expect("choices"),
            ops: spec.ops,
            faults,
            fault_gap_ms: (gap_low, gap_low + rng.random_range(100..2_000)),
            crash_mode: ["torn", "torn", "drop", "keep"]
                .choose(&mut rng)
                .expect("choices")
                .to_string(),
            bit_flip_percent: *[0, 0, 10, 30].choose(&mut rng).expect("choices"),
            media_fault_percent: *[0, 20, 50].choose(&mut media_rng).expect("choices"),
            bugs: spec.bugs.clone(),
            breadth: later.random_bool(0.5),
            fsync_latency,
            wal_segment_bytes,
            lease_checkpoint_interval_ms,
            max_snapshots,
            schedule: None,
        }
    }

    /// [`Self::describe_options`], and whether the faults follow a given schedule.
    pub fn describe(&self) -> String {
        match &self.schedule {
            None => self.describe_options(),
            Some(schedule) => format!(
                "{} schedule=given ({} faults)",
                self.describe_options(),
                schedule.len()
            ),
        }
    }

    /// One line of every option but the schedule, for failure reports, `-v` and the trace (which
    /// a drawn schedule given back must leave as it was).
    pub fn describe_options(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(kind, weight)| format!("{}×{weight}", kind.name()))
            .collect();
        format!(
            "nodes={} heartbeat={}ms election={}ms snapshot-count={} compaction={} clients={} keys={} think<{}ms ops={} \
             faults=[{}] fault-gap={}..{}ms crash-mode={} bit-flips={}% media-faults={}% breadth={} fsync={} wal-segment={} \
             lease-checkpoints={} max-snapshots={}{}",
            self.nodes,
            self.heartbeat_interval_ms,
            self.election_timeout_ms,
            self.snapshot_count,
            self.compaction_interval_ms
                .map_or("off".to_string(), |ms| format!("every {ms}ms")),
            self.clients,
            self.keys,
            self.think_ms_max,
            self.ops,
            faults.join(","),
            self.fault_gap_ms.0,
            self.fault_gap_ms.1,
            self.crash_mode,
            self.bit_flip_percent,
            self.media_fault_percent,
            if self.breadth { "on" } else { "off" },
            self.fsync_latency.name(),
            self.wal_segment_bytes
                .map_or("64MiB".to_string(), |bytes| format!("{}KiB", bytes >> 10)),
            self.lease_checkpoint_interval_ms
                .map_or("off".to_string(), |ms| format!("every {ms}ms")),
            self.max_snapshots,
            if self.bugs.is_empty() {
                String::new()
            } else {
                format!(" bugs=[{}]", self.bugs.join(","))
            }
        )
    }
}
