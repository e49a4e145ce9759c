//! Seeds that found bugs in detcd, pinned: each failed before its fix and must pass from now on
//! (sim/README.md, "Bugs found in detcd").
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --release --test regressions`
#![cfg(madsim)]

use detcd_sim::options::{FaultKind, RunSpec, SwarmOptions};
use detcd_sim::simulation::{self, SeedRun, Verdict};

/// `nodes: None` runs the cluster size the seed draws, as a sweep without `--nodes` does.
fn run(seed: u64, nodes: Option<usize>, faults: &[FaultKind]) -> SeedRun {
    let spec = RunSpec {
        nodes,
        faults: faults.to_vec(),
        ops: 200,
        bugs: Vec::new(),
    };
    simulation::run(&SwarmOptions::draw(seed, &spec))
}

fn assert_passes(seed: u64, nodes: Option<usize>, faults: &[FaultKind]) -> SeedRun {
    let run = run(seed, nodes, faults);
    assert_eq!(
        run.verdict,
        Verdict::Pass,
        "seed {seed:#x}: {:?} {:?}",
        run.findings.violations,
        run.panic
    );
    run
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
