//! Schedules as input, and shrinking: a seed's drawn fault schedule, given back explicitly, is
//! the same run (same trace hash); the shrinker makes planted bugs' failing runs smaller, and the
//! smaller run, read back from its file, fails the same checker again.
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --features sim-bugs --test shrink`
#![cfg(all(madsim, feature = "sim-bugs"))]

use detcd_sim::options::{FaultKind, RunSpec, SwarmOptions};
use detcd_sim::shrink::{self, Size};
use detcd_sim::simulation;

fn spec(nodes: Option<usize>, bugs: &[&str]) -> RunSpec {
    RunSpec {
        nodes,
        faults: FaultKind::ALL.to_vec(),
        ops: 200,
        bugs: bugs.iter().map(|b| b.to_string()).collect(),
    }
}

/// Through JSON, as `schedule.json` carries it.
fn through_a_file(options: &SwarmOptions) -> SwarmOptions {
    let text = serde_json::to_string_pretty(options).expect("options serialize");
    serde_json::from_str(&text).expect("options read back")
}

#[test]
fn a_drawn_schedule_given_back_is_the_same_run() {
    let mut faults = 0;
    let mut nested = 0;
    // Drawn cluster sizes and every fault kind: nested faults, replacements, media faults.
    for seed in 1..=5 {
        let options = SwarmOptions::draw(seed, &spec(None, &[]));
        let drawn = simulation::run(&options);
        assert!(options.schedule.is_none());
        faults += drawn.schedule.len();
        nested += drawn.schedule.len() - drawn.schedule.faults.len();
        let given = through_a_file(&SwarmOptions {
            schedule: Some(drawn.schedule.clone()),
            ..options
        });
        let again = simulation::run(&given);
        assert_eq!(again.trace, drawn.trace, "seed {seed:#x}");
        assert_eq!(again.trace_hash, drawn.trace_hash, "seed {seed:#x}");
        assert_eq!(again.schedule, drawn.schedule, "seed {seed:#x}");
    }
    assert!(
        faults >= 20 && nested >= 2,
        "{faults} faults, {nested} nested"
    );
}

#[test]
fn a_given_schedule_drives_the_faults_and_the_seed_the_rest() {
    let options = SwarmOptions::draw(1, &spec(Some(1), &[]));
    let drawn = simulation::run(&options);
    let mut schedule = drawn.schedule.clone();
    assert!(schedule.faults.len() > 2, "{}", schedule.describe());
    schedule.faults.truncate(1);
    let fewer = simulation::run(&SwarmOptions {
        schedule: Some(schedule),
        ..options
    });
    assert_eq!(fewer.schedule.faults.len(), 1);
    assert_ne!(fewer.trace_hash, drawn.trace_hash);
    let faults_traced =
        |run: &simulation::SeedRun| run.trace.iter().filter(|e| e.kind == "fault").count();
    assert!(faults_traced(&fewer) < faults_traced(&drawn));
}

/// Shrinks `bug`'s failing `seed` within `max_runs` re-runs; the result must be smaller and
/// must fail the same checker when replayed from its file.
fn shrinks(bug: &str, seed: u64, nodes: usize, max_runs: usize) {
    let options = SwarmOptions::draw(seed, &spec(Some(nodes), &[bug]));
    let shrunk = shrink::shrink(&options, None, max_runs, &mut |line| println!("{line}"))
        .unwrap_or_else(|| panic!("{bug} seed {seed:#x} does not fail"));
    let after = Size::of(&shrunk.options);
    println!("{bug}: {} → {}", shrunk.before.describe(), after.describe());
    assert!(shrunk.runs <= max_runs);
    assert!(
        after.faults < shrunk.before.faults || after.operations < shrunk.before.operations,
        "{bug}: nothing shrank: {}",
        after.describe()
    );
    let replayed = simulation::run(&through_a_file(&shrunk.options));
    assert_eq!(replayed.trace_hash, shrunk.run.trace_hash, "{bug}");
    assert!(
        shrink::failures(&replayed).contains(&shrunk.checker),
        "{bug}: the shrunk run no longer fails {}: {:?}",
        shrunk.checker,
        shrink::failures(&replayed)
    );
}

#[test]
fn shrinking_keeps_a_lost_acknowledged_write() {
    shrinks("apply-twice-after-restart", 1, 1, 30);
}

#[test]
fn shrinking_keeps_keys_that_outlive_their_lease() {
    shrinks("revoke-keeps-keys", 1, 1, 30);
}
