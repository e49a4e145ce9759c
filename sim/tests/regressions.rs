//! Seeds that found bugs in detcd, pinned: each failed before its fix and must pass from now on
//! (sim/README.md, "Bugs found in detcd").
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --release --test regressions`
#![cfg(madsim)]

use detcd_sim::options::{FaultKind, RunSpec, SwarmOptions};
use detcd_sim::simulation::{self, SeedRun, Verdict};

/// `nodes: None` runs the cluster size the seed draws, as a sweep without `--nodes` does.
fn spec(nodes: Option<usize>, faults: &[FaultKind]) -> RunSpec {
    RunSpec {
        nodes,
        faults: faults.to_vec(),
        ops: 200,
        bugs: Vec::new(),
    }
}

fn run(seed: u64, nodes: Option<usize>, faults: &[FaultKind]) -> SeedRun {
    // Pinned before the breadth mix existed: it changes a seed's workload (0xd and 0x11242 draw
    // it), so they run without it, as they failed.
    let options = SwarmOptions {
        breadth: false,
        ..SwarmOptions::draw(seed, &spec(nodes, faults))
    };
    simulation::run(&options)
}

fn assert_pass(run: SeedRun) -> SeedRun {
    assert_eq!(
        run.verdict,
        Verdict::Pass,
        "seed {:#x}: {:?} {:?}",
        run.options.seed,
        run.findings.violations,
        run.panic
    );
    run
}

fn assert_passes(seed: u64, nodes: Option<usize>, faults: &[FaultKind]) -> SeedRun {
    assert_pass(run(seed, nodes, faults))
}

/// A member added after the leader's latest snapshot, when the leader's log no longer started at
/// index 1, was sent only that snapshot, which raft ignores (its ConfState leaves the new member
/// out): the member stayed at revision 1 and the replicas never converged.
#[test]
fn a_member_added_after_the_latest_snapshot_catches_up() {
    for seed in [0x3, 0xd] {
        let run = assert_passes(seed, Some(3), &[FaultKind::Membership]);
        assert!(
            run.trace
                .iter()
                .any(|e| e.what.contains("is a started voter")),
            "seed {seed:#x} replaced a member"
        );
    }
}

/// A snapshot for a peer that queued while the previous send to it was failing was dropped
/// without a report, and raft kept that peer in its snapshot state for ever: after a power loss
/// and a lossy network, n3 stayed at revision 5 while the others reached 88.
#[test]
fn a_dropped_snapshot_is_reported_so_the_follower_catches_up() {
    let faults = [
        FaultKind::Membership,
        FaultKind::Crash,
        FaultKind::Partition,
        FaultKind::Network,
        FaultKind::Interrupt,
    ];
    assert_passes(0x11242, Some(3), &faults);
}

/// Watch streams read events from the store after they are applied. A compaction at revision 74
/// dropped the tombstone of a delete made at 74 while two watchers (on a member just paused) were
/// still at 74: both silently missed the delete. Now such a watch is cancelled as compacted.
#[test]
fn a_watch_at_the_compaction_revision_does_not_silently_lose_a_delete() {
    // The nine kinds there were when the seed failed, in the order its options were drawn from.
    assert_passes(0x187fd, Some(3), &FaultKind::ALL[..9]);
}

/// A replaced member joined under its old, removed id: it took the member list from the first
/// peer in `--initial-cluster`, which had been partitioned and had not yet applied the removal,
/// so the list still had the removed id at the member's URLs. The leader's messages, addressed to
/// the new id, were refused, and n2 stayed at revision 1 while the others reached 125. Peers now
/// answer the joining member's list as of a linearizable read.
#[test]
fn a_replaced_member_joins_under_its_new_id() {
    // The default sweep's nine kinds, in the order its options were drawn from.
    let run = assert_passes(0xf5433, None, &FaultKind::ALL[..9]);
    assert!(
        run.trace
            .iter()
            .any(|e| e.what.contains("joining the existing cluster")),
        "seed 0xf5433 replaced a member"
    );
}

/// A member that missed the addition of the leader never caught up: n4 crashed applying a
/// membership change, and while it was down the leader was replaced; the new leader, added
/// since, was not in n4's applied member list, so n4 dropped every answer to it as for an unknown
/// peer and stayed at revision 1 (index 11) for ever. A member now answers a sender it does not
/// know yet at the peer URLs each batch carries.
#[test]
fn a_member_that_missed_the_leaders_addition_catches_up() {
    let run = assert_passes(0x7a12ac, None, &FaultKind::ALL[..9]);
    assert!(
        run.trace
            .iter()
            .any(|e| e.what == "crashed at failpoint beforeApplyOneConfChange"),
        "seed 0x7a12ac crashed a member applying a membership change"
    );
}

/// Bug 5: `create_dir_all` fsynced only the new leaf's parent, so the data dir's `member` entry
/// was never durable. With SimDisk modelling unsynced directory entries, the first power loss
/// took a member's whole WAL (votes and acknowledged entries): it bootstrapped afresh, and raft
/// panicked at "to_commit 56 is out of range [last_index 3]". Found by
/// `scripts/sim run --seeds 100 --first-seed 10000000 --nodes 3 --faults crash` (its first seed).
#[test]
fn a_power_loss_after_the_first_start_keeps_the_wal() {
    let run = assert_passes(0x989680, Some(3), &[FaultKind::Crash]);
    assert!(
        run.trace.iter().any(|e| e.what.contains("power loss")),
        "seed 0x989680 had a power loss"
    );
}

/// The lessor left its leader (primary) state only at the lease duties' next poll, a heartbeat
/// after raft stepped down: a snapshot from the new leader arriving in between tripped "a leader
/// never installs a snapshot". Now the raft loop demotes the lessor in the Ready that reports
/// the step-down, before it installs any snapshot.
#[test]
fn a_deposed_leader_installs_a_snapshot_without_panicking() {
    assert_passes(0x18ca, Some(3), &FaultKind::ALL[..9]);
    for seed in [0xf5357, 0xf561f, 0xf581f] {
        assert_passes(seed, None, &FaultKind::ALL[..9]);
    }
}

/// A TimeToLive answered a remaining TTL of "forever" (9223372036 s): the leader was deposed and
/// elected again during the request's quorum round, and its lessor, not yet promoted in the new
/// term, knew no expiry. Found by the TimeToLive consistency check in a 10,000-seed default sweep
/// (`scripts/sim run --seeds 10000 --first-seed 20000000`). Now such a request is refused.
#[test]
fn a_time_to_live_is_never_forever() {
    for seed in [0x1312dc2, 0x1312e4f] {
        assert_passes(seed, None, &FaultKind::ALL[..9]);
    }
}

/// A seed exactly as a default sweep draws it (every fault kind, breadth mix included).
fn assert_passes_as_drawn(seed: u64) {
    let options = SwarmOptions::draw(seed, &spec(None, &FaultKind::ALL));
    assert_pass(simulation::run(&options));
}

/// Suspect 3 of issue 10: a leader cut off from the majority renewed leases on its own word.
/// Keep-alives now confirm leadership with a quorum round first. With the fix undone
/// (`--bug renew-without-quorum`), a 400-seed default sweep fails at seed 0x113: a keep-alive
/// answered TTL 27 after the new leader's revoke was acknowledged (planted_bugs.rs).
#[test]
fn a_revoked_lease_is_not_renewed_by_a_deposed_leader() {
    assert_passes_as_drawn(0x113);
}

/// Seed 0x262a1bf of the 20k sweep: the old leader, deposed but not yet aware, found a lease
/// expired and proposed its revoke; raft forwarded it to the new leader, which had promoted the
/// lease and answered TimeToLive 2 s, and the revoke applied 0.8 s later. Lease duties now carry
/// their leader's term and apply only in it (`--bug stale-lease-duties` undoes it: planted_bugs.rs).
#[test]
fn a_deposed_leaders_expiry_revoke_does_not_apply_in_the_next_term() {
    assert_passes_as_drawn(0x262a1bf);
}

/// Suspect 7 of issue 10: old snapshot files were purged before the new file's WAL marker was
/// durable. With `--bug purge-before-marker` seed 0x617 (one member, `--max-snapshots=1`)
/// crashes at `raftBeforeSnapMarker` after the purge took the file its marker names, and never
/// starts again (planted_bugs.rs); with the purge after the marker it passes.
#[test]
fn a_crash_before_the_snapshot_marker_leaves_the_marked_file() {
    assert_passes_as_drawn(0x617);
}

/// Suspect 6 of issue 10: a store restored from a snapshot (a restart, or a leader's snapshot
/// installed) forgot the deletes its compaction dropped, so a watch at the compaction revision
/// there silently missed them. With `--bug snapshot-forgets-compacted-deletes` seed 0xf5's
/// replicas differ in `Maintenance.Hash` at one applied index (planted_bugs.rs); restored with
/// the list, they agree.
#[test]
fn a_restored_store_keeps_the_deletes_its_compaction_dropped() {
    assert_passes_as_drawn(0xf5);
}

/// Seed 0x5f5ed34 of the 20k sweep (`scripts/sim run --seeds 20000 --first-seed 100000000`, its
/// 3,125th seed): a keep-alive came while a lease checkpoint was proposed but not applied; with
/// no remaining TTL recorded yet it cleared nothing, the checkpoint (1 s) applied after it, and
/// the next leader expired the lease 2 s before the keep-alive's 3 s ran out. A keep-alive now
/// also clears a checkpoint still on its way (`--bug renew-ignores-checkpoint-in-flight`
/// undoes it: planted_bugs.rs).
#[test]
fn a_keep_alive_clears_a_lease_checkpoint_still_on_its_way() {
    assert_passes_as_drawn(0x5f5ed34);
}

/// Seed 0x68e7b60 (`scripts/sim run --seeds 10000 --first-seed 110000000`, a harness bug): a
/// misdirected write landed in n3's torn last WAL record, which the restart truncated away (the
/// segment was 216 bytes once open; the damage at 228). 500 ms later new records had grown the
/// file past 228 again, and the judge, which looked only at the size, said n3 "started and served
/// with 9 byte(s) damaged". It now asks whether the damaged bytes are still there.
#[test]
fn damage_in_a_truncated_torn_tail_is_not_called_served() {
    assert_passes_as_drawn(0x68e7b60);
}
