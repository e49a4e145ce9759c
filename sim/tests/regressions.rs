//! Seeds that found bugs in detcd, pinned: each failed before its fix and must pass from now on
//! (sim/README.md, "Bugs found in detcd").
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --release --test regressions`
#![cfg(madsim)]

use detcd_sim::options::{FaultKind, RunSpec, SwarmOptions};
use detcd_sim::simulation::{self, SeedRun, Verdict};

fn run(seed: u64, nodes: usize, faults: &[FaultKind]) -> SeedRun {
    let spec = RunSpec {
        nodes: Some(nodes),
        faults: faults.to_vec(),
        ops: 200,
        bugs: Vec::new(),
    };
    simulation::run(&SwarmOptions::draw(seed, &spec))
}

/// A member added after the leader's latest snapshot, when the leader's log no longer started at
/// index 1, was sent only that snapshot, which raft ignores (its ConfState leaves the new member
/// out): the member stayed at revision 1 and the replicas never converged.
#[test]
fn a_member_added_after_the_latest_snapshot_catches_up() {
    for seed in [0x3, 0xd] {
        let run = run(seed, 3, &[FaultKind::Membership]);
        assert_eq!(
            run.verdict,
            Verdict::Pass,
            "seed {seed:#x}: {:?} {:?}",
            run.findings.violations,
            run.panic
        );
        assert!(
            run.trace
                .iter()
                .any(|e| e.what.contains("is a started voter")),
            "seed {seed:#x} replaced a member"
        );
    }
}
