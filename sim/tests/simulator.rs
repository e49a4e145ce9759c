//! The simulator on the real server, without planted bugs: a short sweep passes every checker,
//! and a seed is a pure function of itself (run twice, same trace hash).
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --test simulator`
#![cfg(madsim)]

use detcd_sim::options::{FaultKind, RunSpec, SwarmOptions};
use detcd_sim::simulation::{self, Verdict};

fn spec() -> RunSpec {
    RunSpec {
        nodes: Some(1),
        faults: FaultKind::ALL.to_vec(),
        ops: 200,
        bugs: Vec::new(),
    }
}

#[test]
fn every_seed_of_a_short_sweep_passes_every_checker() {
    for seed in 1..=20 {
        let run = simulation::run(&SwarmOptions::draw(seed, &spec()));
        assert_eq!(
            run.verdict,
            Verdict::Pass,
            "seed {seed}: {:?} {:?}",
            run.findings.violations,
            run.panic
        );
        assert!(
            run.history.operations.len() >= 200,
            "seed {seed} ran its workload"
        );
    }
}

#[test]
fn a_seed_run_twice_gives_the_same_trace_hash() {
    for seed in [3, 0xdead_beef] {
        let options = SwarmOptions::draw(seed, &spec());
        let first = simulation::run(&options);
        let second = simulation::run(&options);
        assert_eq!(first.trace_hash, second.trace_hash, "seed {seed:#x}");
        assert_eq!(first.trace, second.trace, "seed {seed:#x}");
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let a = simulation::run(&SwarmOptions::draw(1, &spec()));
    let b = simulation::run(&SwarmOptions::draw(2, &spec()));
    assert_ne!(a.trace_hash, b.trace_hash);
}
