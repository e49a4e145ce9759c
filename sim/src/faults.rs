//! Faults from a seeded schedule (the safety phase), and the heal that ends it.
//!
//! Draw a kind by the seed's weights, inject it, hold it, undo what can be undone, wait a drawn gap,
//! repeat. While one fault holds, others may strike on top of it, up to [`NESTING_MAX`] deep (a
//! partition while the network is lossy while a member is down), as on an operator's bad day.
//! Every step goes to the trace. [`heal`] undoes everything, even faults cut short when the
//! workload finished, so the liveness phase starts from a healed cluster.

mod membership;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use detcd::io::FileSystem;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;

use crate::cluster::{Cluster, Member};
use crate::options::{FaultKind, SwarmOptions};
use crate::schedule::{Nested, ScheduleBook, ScheduledFault, ScheduledRng, Stream};

/// How many faults may hold at once, one on top of another.
const NESTING_MAX: usize = 3;

/// A directed link between two nodes, clogged by one or more faults.
type Link = (NodeId, NodeId);

/// Longer than any fsync a member may have in flight (the slowest drawn latency is 200 ms),
/// plus the time its server takes to stop after the fsync fails.
const IN_FLIGHT_FSYNC_MAX: Duration = Duration::from_secs(1);

/// The failpoint only a leader reaches.
const LEADER_ONLY_FAILPOINT: &str = "raftBeforeLeaderSend";

/// Longest a failpoint crash, a graceful stop or a failing start may take before we stop waiting.
const WAIT_MAX: Duration = Duration::from_secs(15);

/// Bytes a fault overwrote in one of a member's files, and what they were, to repair them.
struct Damage {
    index: usize,
    path: PathBuf,
    offset: u64,
    original: Vec<u8>,
    /// What the fault wrote in their place.
    damaged: Vec<u8>,
    /// Reads of the file before the member restarted on it: more afterwards means it read them.
    reads_before: u64,
}

/// Problems the fault schedule itself observed (e.g. ctrl-c did not stop a member): liveness
/// failures, reported with the checkers' findings.
pub type Problems = Vec<String>;

/// The schedule's state: its RNG and what is currently broken.
pub struct Faults<'a> {
    /// The schedule drawn so far, or the one given to follow (see [`crate::schedule`]).
    book: ScheduleBook,
    cluster: &'a Cluster,
    clients: Vec<NodeId>,
    /// The node the schedule sends its requests from (`member remove` …): madsim's main node,
    /// where the schedule runs, has no network address.
    operator: NodeHandle,
    options: SwarmOptions,
    rng: ScheduledRng,
    /// Draws for failpoints armed on members about to reach them (see
    /// [`Faults::arm_where_reached`]): a stream of its own, so the schedule's draws stay as they
    /// were.
    reach_rng: ScheduledRng,
    /// Each clogged link and how many holding faults clog it. Each fault clogs and unclogs its
    /// own set of links; a link opens only when the last fault clogging it heals, so one fault's
    /// heal never reopens another's link.
    clogged: BTreeMap<Link, u32>,
    /// The kinds of the faults holding now, outermost first.
    holding: Vec<FaultKind>,
    /// The members the holding faults act on. A fault on top leaves them alone: it would undo
    /// the outer fault's state (resume a paused member, reset a drifted clock, restart a member
    /// that is down).
    busy: BTreeSet<usize>,
    /// The member a `Pause` fault holds paused.
    paused: Option<usize>,
    /// Packet loss and latency are raised (a `Network` fault not yet undone).
    network_degraded: bool,
    /// Durable bytes a crash damaged (a flipped bit, a misdirected write) and not yet restored.
    damage: Option<Damage>,
    /// Draws for the media faults, apart from `rng` so that seeds from before them keep their
    /// schedules whenever they draw none.
    media_rng: ScheduledRng,
    /// A member sent ctrl-c whose restart has not happened yet.
    interrupted: Option<usize>,
    /// A member being replaced (the membership fault), and how far that got.
    replacing: Option<membership::Replacement>,
    pub problems: Problems,
    /// Damage a member did not notice: correctness failures.
    pub undetected_corruption: Vec<String>,
}

fn ms(rng: &mut impl Rng, range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(rng.random_range(range))
}

async fn sleep(duration: Duration) {
    madsim::time::sleep(duration).await;
}

/// Polls `condition` every 50 ms of simulated time until it holds or `WAIT_MAX` passes.
async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = madsim::time::Instant::now() + WAIT_MAX;
    while madsim::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        sleep(Duration::from_millis(50)).await;
    }
    condition()
}

impl<'a> Faults<'a> {
    pub fn new(
        cluster: &'a Cluster,
        clients: Vec<NodeId>,
        options: &SwarmOptions,
        operator: NodeHandle,
        book: ScheduleBook,
    ) -> Faults<'a> {
        Faults {
            rng: ScheduledRng::new(Stream::Main, options.seed ^ 0xfa_0175, &book),
            reach_rng: ScheduledRng::new(Stream::Reach, options.seed ^ 0xa4_3ed0, &book),
            media_rng: ScheduledRng::new(Stream::Media, options.seed ^ 0x3ed_1ada_4a6e, &book),
            book,
            cluster,
            clients,
            operator,
            options: options.clone(),
            clogged: BTreeMap::new(),
            holding: Vec::new(),
            busy: BTreeSet::new(),
            paused: None,
            network_degraded: false,
            damage: None,
            interrupted: None,
            replacing: None,
            problems: Vec::new(),
            undetected_corruption: Vec::new(),
        }
    }

    fn record(&self, kind: &str, subject: &str, what: impl Into<String>) {
        let what = what.into();
        self.book.note(match subject {
            "" => what.clone(),
            _ => format!("{subject} {what}"),
        });
        self.cluster.trace.record(kind, subject, what);
    }

    /// Injects faults until cancelled (the caller races this against the workload): those of
    /// the given schedule, or drawn ones for ever.
    pub async fn run(&mut self) {
        if self.book.following() {
            for top in 0.. {
                let Some((after, kind, index)) = self.book.given(top) else {
                    break;
                };
                sleep(after).await;
                self.book.open_given(top);
                self.inject(kind, index).await;
                self.book.close();
            }
            if let Some(gap) = self.book.given_end_gap() {
                sleep(gap).await;
            }
            return std::future::pending().await;
        }
        if self.options.faults.is_empty() {
            return std::future::pending().await;
        }
        loop {
            let (low, high) = self.options.fault_gap_ms;
            let gap = ms(self.rng.structural(), low..high);
            self.book.record_gap(gap);
            sleep(gap).await;
            let (kind, index) = self.draw_fault();
            self.book
                .record_top(ScheduledFault::new(gap.as_millis() as u64, kind, index));
            self.inject(kind, index).await;
            self.book.close();
        }
    }

    /// A fault's kind, by the seed's weights, and its member (only while recording).
    fn draw_fault(&mut self) -> (FaultKind, usize) {
        let rng = self.rng.structural();
        let kind = self
            .options
            .faults
            .choose_weighted(&mut *rng, |(_, weight)| *weight)
            .expect("weights are positive")
            .0;
        (kind, rng.random_range(0..self.cluster.members.len()))
    }

    /// The open fault's hold: drawn from `range_ms`, or the given schedule's.
    fn draw_hold(&mut self, range_ms: std::ops::Range<u64>) -> Duration {
        let shortest = Duration::from_millis(range_ms.start);
        let rng = self.rng.structural();
        self.book.hold(|| ms(rng, range_ms), shortest)
    }

    async fn inject(&mut self, kind: FaultKind, index: usize) {
        // A hand-written or shrunk schedule may name a member the cluster does not have.
        let index = index % self.cluster.members.len();
        let member = &self.cluster.members[index];
        let on_busy_member = kind.acts_on_member() && self.busy.contains(&index);
        if !member.is_running() || on_busy_member || self.holds_the_only(kind) {
            return;
        }
        crate::coverage::note_fault(&self.holding, kind);
        self.holding.push(kind);
        if kind.acts_on_member() {
            self.busy.insert(index);
        }
        self.inject_on(kind, index).await;
        self.busy.remove(&index);
        self.holding.pop();
    }

    /// Whether a fault of `kind` holds whose state has room for one only (one lossy network
    /// config, one interrupted or paused member, one damaged file to restore). A membership
    /// fault never holds: one on top resumes a replacement left unfinished.
    fn holds_the_only(&self, kind: FaultKind) -> bool {
        match kind {
            FaultKind::Network => self.network_degraded,
            FaultKind::Interrupt => self.interrupted.is_some(),
            FaultKind::Pause => self.paused.is_some(),
            FaultKind::Crash => self.damage.is_some(),
            _ => false,
        }
    }

    async fn inject_on(&mut self, kind: FaultKind, index: usize) {
        let member = &self.cluster.members[index];
        match kind {
            FaultKind::Crash => self.crash(member).await,
            FaultKind::Interrupt => self.interrupt(member).await,
            FaultKind::Disk => self.disk_fault(member).await,
            FaultKind::Clock => self.clock_fault(member).await,
            FaultKind::Pause => {
                let hold = self.draw_hold(200..5_000);
                self.record("fault", &member.name, format!("pause for {hold:?}"));
                Handle::current().pause(member.id());
                self.paused = Some(index);
                self.hold(hold).await;
                self.paused = None;
                Handle::current().resume(member.id());
                self.record("heal", &member.name, "resume");
            }
            FaultKind::Clog => self.clog(member).await,
            FaultKind::Partition => self.partition().await,
            FaultKind::Network => self.lossy_network().await,
            FaultKind::Membership => self.replace_member(index).await,
        }
    }

    /// Holds a fault for a time drawn from `range_ms`; see [`Faults::hold`].
    async fn hold_within(&mut self, range_ms: std::ops::Range<u64>) {
        let hold = self.draw_hold(range_ms);
        self.hold(hold).await;
    }

    /// Holds the innermost fault (a pause, a skewed clock, clogged or lossy links, a partition,
    /// a member down) for `hold`. Sometimes another fault strikes meanwhile, of any kind the seed
    /// draws: faults overlap in real outages, and quorum bugs hide where they do (a crash while
    /// the cluster is partitioned, a partition while a member is down). That one may hold in
    /// turn and have a third strike on top of it, up to [`NESTING_MAX`] deep.
    async fn hold(&mut self, hold: Duration) {
        let (before, kind, index) = if self.book.following() {
            match self.book.given_nested() {
                Nested::Fault(before, kind, index) => {
                    sleep(before).await;
                    (before, kind, index)
                }
                // Waits as the recorded run did when it ended there.
                Nested::Ended(before) => {
                    sleep(before).await;
                    return sleep(hold.saturating_sub(before)).await;
                }
                Nested::None => return sleep(hold).await,
            }
        } else {
            if self.holding.len() >= NESTING_MAX || !self.rng.structural().random_bool(0.3) {
                return sleep(hold).await;
            }
            let before = ms(self.rng.structural(), 0..hold.as_millis() as u64 + 1);
            self.book.record_nested_gap(before);
            sleep(before).await;
            let (kind, index) = self.draw_fault();
            self.book
                .record_nested(ScheduledFault::new(before.as_millis() as u64, kind, index));
            (before, kind, index)
        };
        self.book.open_nested();
        Box::pin(self.inject(kind, index)).await;
        self.book.close();
        sleep(hold.saturating_sub(before)).await;
    }

    /// Clogs `links` for one fault (see [`Faults::clogged`]).
    fn clog_links(&mut self, links: &[Link]) {
        for &(source, target) in links {
            let count = self.clogged.entry((source, target)).or_default();
            if *count == 0 {
                NetSim::current().clog_link(source, target);
            }
            *count += 1;
        }
    }

    /// Undoes [`Faults::clog_links`] for one fault: opens those of `links` no other fault clogs.
    fn unclog_links(&mut self, links: &[Link]) {
        for link in links {
            let count = self
                .clogged
                .get_mut(link)
                .expect("a fault unclogs only links it clogged");
            *count -= 1;
            if *count == 0 {
                self.clogged.remove(link);
                NetSim::current().unclog_link(link.0, link.1);
            }
        }
    }

    /// Power loss now, or at the next durability boundary (a failpoint), or of every member at
    /// once (a data centre's power cut: only what each member fsynced survives anywhere).
    async fn crash(&mut self, member: &Member) {
        // On top of other faults, not everyone: the outer faults' members are theirs to restart.
        if self.cluster.members.len() > 1 && self.rng.random_bool(0.1) && self.holding.len() == 1 {
            return self.crash_everyone().await;
        }
        if self.rng.random_bool(0.3) {
            let point = *detcd::failpoint::NAMES
                .choose(&mut self.rng)
                .expect("failpoints");
            // Only a leader sends appends before its own fsync: armed on a follower, the point
            // would almost never fire (none did in a 300-seed sweep).
            let member = match point {
                LEADER_ONLY_FAILPOINT => self.leader_to_crash().await.unwrap_or(member),
                _ => member,
            };
            self.record("fault", &member.name, format!("arm failpoint {point}"));
            let starts = member.starts();
            member.arm_failpoint(point);
            // madsim kills the node at the panic and restarts it 1-10 s later.
            if !wait_until(|| member.starts() > starts).await {
                member.disarm_failpoint();
                self.record("heal", &member.name, format!("disarm failpoint {point}"));
            }
            return;
        }
        member.kill();
        member.disk.crash();
        self.record(
            "fault",
            &member.name,
            "power loss (kill, unsynced writes lost)",
        );
        if self.rng.random_range(0..100) < self.options.bit_flip_percent {
            self.damage = self.flip_wal_bit(member);
        }
        if self.damage.is_none() && self.media_fault() {
            self.damage = self.damage_any_file(member);
        }
        // Down for a while, maybe while other faults strike the rest of the cluster.
        self.hold_within(0..3_000).await;
        let starts = member.starts();
        if let Some(damage) = &mut self.damage {
            damage.reads_before = member.disk.reads_of(&damage.path);
        }
        member.restart();
        self.record("heal", &member.name, "restart");
        if self.damage.is_some() {
            self.judge_damage(member, starts).await;
        }
    }

    /// A member must refuse damaged data it reads (every WAL record and snapshot file is
    /// checksummed), not serve from it. Then the damage is repaired by hand, as an operator
    /// restoring the bytes would, so the run can go on.
    async fn judge_damage(&mut self, member: &Member, starts: u32) {
        wait_until(|| member.starts() > starts).await;
        sleep(Duration::from_millis(500)).await;
        let Some(damage) = self.damage.take() else {
            return;
        };
        let read = member.disk.reads_of(&damage.path) > damage.reads_before;
        if !member.is_running() {
            self.record(
                "node",
                &member.name,
                format!(
                    "refused the damaged {}: {}",
                    damage.path.display(),
                    member.last_exit().unwrap_or_default()
                ),
            );
            self.damage = Some(damage);
            self.restore_damage();
            member.restart();
        } else if !read {
            // Never read (an old snapshot file kept for forensics): no harm yet; repair it.
            self.damage = Some(damage);
            self.restore_damage();
        } else {
            // Started on it: right only if the damage was in a torn tail it truncated away
            // (new records may have been written there since, so the damaged bytes are gone).
            let now = member.disk.read(&damage.path).unwrap_or_default();
            let range = damage.offset as usize..damage.offset as usize + damage.damaged.len();
            if now.get(range) == Some(&damage.damaged[..]) {
                self.undetected_corruption.push(format!(
                    "{} started and served with {} byte(s) at offset {} of {} damaged",
                    member.name,
                    damage.original.len(),
                    damage.offset,
                    damage.path.display()
                ));
            }
        }
    }

    /// Whether this media fault opportunity strikes (the seed's `media_fault_percent`).
    fn media_fault(&mut self) -> bool {
        self.media_rng.random_range(0..100) < self.options.media_fault_percent
    }

    /// A random one of a member's files with durable bytes, and how many.
    fn any_durable_file(&mut self, member: &Member) -> Option<(PathBuf, u64)> {
        let files: Vec<(PathBuf, u64)> = member
            .disk
            .files()
            .into_iter()
            .filter_map(|path| {
                let (durable, _) = member.disk.file_sizes(&path)?;
                (durable > 0).then_some((path, durable as u64))
            })
            .collect();
        files.choose(&mut self.media_rng).cloned()
    }

    /// Damages one of a member's files (a snapshot file as likely as a WAL segment): a flipped
    /// bit, or a misdirected write (bytes of some file, often a whole valid record, landing at a
    /// wrong offset of this one).
    fn damage_any_file(&mut self, member: &Member) -> Option<Damage> {
        let (path, len) = self.any_durable_file(member)?;
        let offset = self.media_rng.random_range(0..len);
        let (data, what) = if self.media_rng.random_bool(0.5) {
            let bit = self.media_rng.random_range(0..8u8);
            let byte = member.disk.read(&path).ok()?[offset as usize] ^ (1 << bit);
            (vec![byte], format!("flip bit {bit} of byte {offset}"))
        } else {
            let (source, source_len) = self.any_durable_file(member)?;
            let count = self.media_rng.random_range(1..=64).min(len - offset);
            let count = count.min(source_len);
            let from = self.media_rng.random_range(0..=source_len - count);
            let bytes = member.disk.read(&source).ok()?;
            (
                bytes[from as usize..(from + count) as usize].to_vec(),
                format!(
                    "misdirected write: {count} bytes of {} at {from} land at {offset}",
                    source.display()
                ),
            )
        };
        let original = member.disk.overwrite(&path, offset, &data).ok()?;
        if original == data {
            return None;
        }
        let damaged = data;
        self.record(
            "fault",
            &member.name,
            format!("{what} in {}", path.display()),
        );
        Some(Damage {
            index: member.index,
            path,
            offset,
            original,
            damaged,
            reads_before: 0,
        })
    }

    /// The leader, if it is running and no other fault holds it.
    async fn leader_to_crash(&self) -> Option<&'a Member> {
        let cluster: &'a Cluster = self.cluster;
        let leader = &cluster.members[self.leader_index().await?];
        (leader.is_running() && !self.busy.contains(&leader.index)).then_some(leader)
    }

    async fn crash_everyone(&mut self) {
        let running: Vec<&Member> = self
            .cluster
            .members
            .iter()
            .filter(|member| member.is_running())
            .collect();
        for member in &running {
            member.kill();
            member.disk.crash();
        }
        let names: Vec<&str> = running.iter().map(|m| m.name.as_str()).collect();
        self.record(
            "fault",
            "",
            format!("power loss of {} at once", names.join(",")),
        );
        let down = self.draw_hold(0..3_000);
        sleep(down).await;
        for member in running {
            member.restart();
            self.record("heal", &member.name, "restart");
        }
    }

    fn restore_damage(&mut self) {
        if let Some(damage) = self.damage.take() {
            let member = &self.cluster.members[damage.index];
            if member
                .disk
                .overwrite(&damage.path, damage.offset, &damage.original)
                .is_ok()
            {
                self.record(
                    "heal",
                    &member.name,
                    format!("repair the damaged bytes of {}", damage.path.display()),
                );
            }
        }
    }

    /// Flips one durable bit in a random WAL segment; returns where, to undo it.
    fn flip_wal_bit(&mut self, member: &Member) -> Option<Damage> {
        let wal_dir = member.config().wal_dir;
        let names = member.disk.list(&wal_dir).ok()?;
        let name = names.choose(&mut self.rng)?;
        let path = wal_dir.join(name);
        let (durable, _) = member.disk.file_sizes(&path)?;
        if durable == 0 {
            return None;
        }
        let offset = self.rng.random_range(0..durable as u64);
        let bit = self.rng.random_range(0..8);
        let original = member.disk.read(&path).ok()?[offset as usize];
        member.disk.flip_bit(&path, offset, bit).ok()?;
        let damaged = vec![original ^ (1 << bit)];
        self.record(
            "fault",
            &member.name,
            format!("flip bit {bit} of byte {offset} in {}", path.display()),
        );
        Some(Damage {
            index: member.index,
            path,
            offset,
            original: vec![original],
            damaged,
            reads_before: 0,
        })
    }

    async fn interrupt(&mut self, member: &Member) {
        self.record("fault", &member.name, "ctrl-c");
        self.interrupted = Some(member.index);
        Handle::current().send_ctrl_c(member.id());
        self.await_interrupted_stop(member).await;
        self.hold_within(0..2_000).await;
        member.restart();
        self.interrupted = None;
        self.record("heal", &member.name, "restart");
    }

    /// A member told to stop must stop (etcd's `Close` is bounded); kill it if it does not.
    async fn await_interrupted_stop(&mut self, member: &Member) {
        if !wait_until(|| !member.is_running()).await {
            self.problems.push(format!(
                "{} did not stop within {WAIT_MAX:?} of ctrl-c",
                member.name
            ));
            member.kill();
        }
    }

    async fn disk_fault(&mut self, member: &Member) {
        if self.rng.random_bool(0.5) {
            let syncs = self.rng.random_range(1..=3);
            self.record(
                "fault",
                &member.name,
                format!("fail the next {syncs} fsyncs"),
            );
            member.disk.fail_next_syncs(syncs);
            // The member must stop at the failed fsync (never acknowledge what it could not sync).
            let stopped = wait_until(|| !member.is_running()).await;
            member.disk.clear_faults();
            if stopped {
                self.record("node", &member.name, "stopped after the failed fsync");
                // Whatever was not synced may be gone: the worst case is a power loss now.
                member.kill();
                member.disk.crash();
                member.restart();
                self.record("heal", &member.name, "power loss, restart");
            } else {
                self.record("heal", &member.name, "no fsync happened; clear the fault");
            }
        } else if self.media_fault() {
            self.latent_read_error(member).await;
        } else {
            self.record(
                "fault",
                &member.name,
                "kill, restart with failing WAL reads",
            );
            member.kill();
            member.disk.crash();
            member.disk.fail_reads(member.config().wal_dir.clone());
            member.restart();
            if !wait_until(|| !member.is_running()).await {
                self.problems.push(format!(
                    "{} started although its WAL could not be read",
                    member.name
                ));
                member.kill();
            }
            member.disk.clear_faults();
            member.restart();
            self.record("heal", &member.name, "clear read errors, restart");
        }
    }

    /// A latent sector error in one file, found at the next start: a member that reads the
    /// file must stop, not start without what it could not read.
    async fn latent_read_error(&mut self, member: &Member) {
        member.kill();
        member.disk.crash();
        let Some((path, _)) = self.any_durable_file(member) else {
            member.restart();
            return;
        };
        self.record(
            "fault",
            &member.name,
            format!("kill, restart with reads of {} failing", path.display()),
        );
        member.disk.fail_reads(path.clone());
        let (starts, reads_before) = (member.starts(), member.disk.reads_of(&path));
        member.restart();
        wait_until(|| member.starts() > starts).await;
        sleep(Duration::from_millis(500)).await;
        if member.is_running() && member.disk.reads_of(&path) > reads_before {
            self.undetected_corruption.push(format!(
                "{} started although a read of {} failed",
                member.name,
                path.display()
            ));
        }
        member.kill();
        member.disk.clear_faults();
        member.restart();
        self.record("heal", &member.name, "clear read errors, restart");
    }

    async fn clock_fault(&mut self, member: &Member) {
        let rate_ppm = self.rng.random_range(-200_000..=200_000);
        member.clock.set_rate_ppm(rate_ppm);
        let mut what = format!("clock drift {rate_ppm} ppm");
        if self.rng.random_bool(0.5) {
            let step_ms = self.rng.random_range(-120_000..=120_000);
            member.clock.step_wall_ms(step_ms);
            what += &format!(", wall clock jumps {step_ms} ms");
        }
        self.record("fault", &member.name, what);
        self.hold_within(500..8_000).await;
        member.clock.set_rate_ppm(0);
        self.record("heal", &member.name, "clock drift 0 ppm");
    }

    /// Clogs links between clients and a member, and (with peers) between members; swizzle-clog
    /// (clog one by one, unclog in another order) when there are several.
    async fn clog(&mut self, member: &Member) {
        let mut links: Vec<Link> = Vec::new();
        let peers: Vec<NodeId> = self.cluster.members.iter().map(Member::id).collect();
        for &client in &self.clients {
            if self.rng.random_bool(0.5) {
                links.push((client, member.id()));
            } else {
                links.push((member.id(), client));
            }
        }
        for &peer in &peers {
            if peer != member.id() && self.rng.random_bool(0.5) {
                links.push((member.id(), peer));
            }
        }
        links.shuffle(&mut self.rng);
        let swizzle = links.len() > 1 && self.rng.random_bool(0.5);
        self.record(
            "fault",
            &member.name,
            format!(
                "{} {} links",
                if swizzle { "swizzle-clog" } else { "clog" },
                links.len()
            ),
        );
        links.sort();
        links.dedup();
        links.shuffle(&mut self.rng);
        for link in &links {
            self.clog_links(std::slice::from_ref(link));
            if swizzle {
                sleep(ms(&mut self.rng, 10..500)).await;
            }
        }
        self.hold_within(100..3_000).await;
        links.shuffle(&mut self.rng);
        for link in &links {
            self.unclog_links(std::slice::from_ref(link));
            if swizzle {
                sleep(ms(&mut self.rng, 10..500)).await;
            }
        }
        self.record("heal", &member.name, "unclog");
    }

    /// Makes every link lossy and slow for a while, then restores madsim's defaults.
    async fn lossy_network(&mut self) {
        let loss = *[0.01, 0.05, 0.2].choose(&mut self.rng).expect("choices");
        let latency_max = ms(&mut self.rng, 20..500);
        self.record(
            "fault",
            "",
            format!(
                "network: {}% packet loss, latency 1ms..{latency_max:?}",
                loss * 100.0
            ),
        );
        NetSim::current().update_config(|config| {
            config.packet_loss_rate = loss;
            config.send_latency = Duration::from_millis(1)..latency_max;
        });
        self.network_degraded = true;
        self.hold_within(500..8_000).await;
        self.restore_network();
    }

    fn restore_network(&mut self) {
        if std::mem::take(&mut self.network_degraded) {
            let defaults = madsim::net::Config::default();
            NetSim::current().update_config(|config| *config = defaults);
            self.record("heal", "", "network: no loss, default latency");
        }
    }

    /// Splits the members: random halves, one isolated, or one-way.
    async fn partition(&mut self) {
        let mut members: Vec<&Member> = self.cluster.members.iter().collect();
        members.shuffle(&mut self.rng);
        let split = if self.rng.random_bool(0.5) {
            1
        } else {
            self.rng.random_range(1..members.len())
        };
        let one_way = self.rng.random_bool(0.25);
        let (left, right) = members.split_at(split);
        let names = |side: &[&Member]| {
            side.iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        self.record(
            "fault",
            "",
            format!(
                "partition {{{}}} {} {{{}}}",
                names(left),
                if one_way { "-/->" } else { "<-/->" },
                names(right)
            ),
        );
        let mut links: Vec<Link> = Vec::new();
        for a in left {
            for b in right {
                links.push((a.id(), b.id()));
                if !one_way {
                    links.push((b.id(), a.id()));
                }
            }
        }
        self.clog_links(&links);
        self.hold_within(500..5_000).await;
        self.unclog_links(&links);
        self.record("heal", "", "partition healed");
    }

    /// Undoes every fault: network, pauses, clocks, disk faults, failpoints; restarts members that
    /// are down (waiting first for madsim's own restart of a member that crashed at a failpoint).
    pub async fn heal(&mut self) {
        self.book.begin_heal();
        self.restore_network();
        for (source, target) in std::mem::take(&mut self.clogged).into_keys() {
            NetSim::current().unclog_link(source, target);
        }
        // The faults cut short hold no more.
        self.holding.clear();
        self.busy.clear();
        for member in &self.cluster.members {
            Handle::current().resume(member.id());
            member.clock.set_rate_ppm(0);
            member.disk.clear_faults();
            if !member.is_awaiting_restart() {
                member.disarm_failpoint();
            }
        }
        // A disk fault cut short may still fail an fsync already in flight (its outcome is drawn
        // at the call, and fsyncs take simulated time): let such a member stop before deciding
        // who needs a restart below (seed 0x13132f4: it stopped a millisecond after heal).
        sleep(IN_FLIGHT_FSYNC_MAX).await;
        // A crash cut short may have left damage in a member that is down: repair it, as the
        // crash would have once the member refused to start.
        if let Some(damage) = &self.damage {
            if !self.cluster.members[damage.index].is_running() {
                self.restore_damage();
            }
        }
        // An interrupt cut short: let the member finish stopping, so it is restarted below.
        if let Some(index) = self.interrupted.take() {
            self.await_interrupted_stop(&self.cluster.members[index])
                .await;
        }
        // A member being replaced is not restarted as it was: its replacement is finished instead,
        // once the others are up.
        let replacing = self.replacing.map(|r| r.index);
        for member in &self.cluster.members {
            if !member.is_running() && Some(member.index) != replacing {
                let starts = member.starts();
                if member.is_awaiting_restart() {
                    wait_until(|| member.starts() > starts).await;
                } else {
                    member.restart();
                }
            }
        }
        self.finish_replacement().await;
        self.record("heal", "", "healed everything");
    }
}
