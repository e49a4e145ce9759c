//! Each planted bug (`detcd::bugs`) must make some checker fail within a stated number of seeds:
//! a checker that never fails proves nothing. Seeds run from 1 up, as `scripts/sim run` does, so
//! the seed that catches a bug is the one the table in `sim/README.md` lists.
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --features sim-bugs --test planted_bugs`
#![cfg(all(madsim, feature = "sim-bugs"))]

use detcd_sim::options::{FaultKind, RunSpec, SwarmOptions};
use detcd_sim::simulation::{self, Verdict};

/// The first seed in `1..=seeds_max` on which `bug` fails a check on a cluster of `nodes`, with
/// its verdict.
fn first_failing_seed(
    bug: &str,
    nodes: usize,
    faults: &[FaultKind],
    seeds_max: u64,
) -> Option<(u64, Verdict)> {
    let spec = RunSpec {
        nodes: Some(nodes),
        faults: faults.to_vec(),
        ops: 200,
        bugs: vec![bug.to_string()],
    };
    (1..=seeds_max).find_map(|seed| {
        let run = simulation::run(&SwarmOptions::draw(seed, &spec));
        (run.verdict != Verdict::Pass).then_some((seed, run.verdict))
    })
}

#[test]
fn acknowledging_before_fsync_loses_acknowledged_writes_at_a_power_loss() {
    let caught = first_failing_seed("ack-before-fsync", 1, &FaultKind::ALL, 12);
    assert!(
        matches!(caught, Some((_, Verdict::Correctness))),
        "{caught:?}"
    );
}

#[test]
fn applying_replayed_entries_twice_moves_acknowledged_writes_to_other_revisions() {
    let caught = first_failing_seed("apply-twice-after-restart", 1, &FaultKind::ALL, 5);
    assert!(
        matches!(caught, Some((_, Verdict::Correctness))),
        "{caught:?}"
    );
}

#[test]
fn keeping_a_torn_wal_tail_stops_a_later_restart() {
    let caught = first_failing_seed("keep-torn-tail", 1, &[FaultKind::Crash, FaultKind::Disk], 5);
    assert!(caught.is_some(), "not caught within 5 seeds");
}

#[test]
fn skipping_wal_checksums_lets_a_member_serve_a_flipped_bit() {
    let caught = first_failing_seed("skip-wal-checksum", 1, &[FaultKind::Crash], 10);
    assert!(caught.is_some(), "not caught within 10 seeds");
}

/// Needs peers: one member has no stale replica to read from.
#[test]
fn reading_without_read_index_returns_stale_values_from_a_lagging_member() {
    let caught = first_failing_seed("read-without-read-index", 3, &FaultKind::ALL, 25);
    assert!(
        matches!(caught, Some((_, Verdict::Correctness))),
        "{caught:?}"
    );
}

/// Needs peers: a forgotten term and vote only matter when another member campaigns. raft-rs
/// may trip over the regressed term (a crash verdict) before two leaders can serve. The bound
/// is wide since membership replacements, drawn too, leave fewer crashes to expose it.
#[test]
fn forgetting_the_raft_hard_state_is_caught_once_a_restarted_member_votes() {
    let caught = first_failing_seed("forget-hard-state", 3, &FaultKind::ALL, 30);
    assert!(caught.is_some(), "not caught within 30 seeds");
}

/// The first seed in `1..=seeds_max` on which `bug` makes `checker` report a violation.
fn first_seed_caught_by(bug: &str, checker: &str, nodes: usize, seeds_max: u64) -> Option<u64> {
    let spec = RunSpec {
        nodes: Some(nodes),
        faults: FaultKind::ALL.to_vec(),
        ops: 200,
        bugs: vec![bug.to_string()],
    };
    (1..=seeds_max).find(|&seed| {
        let run = simulation::run(&SwarmOptions::draw(seed, &spec));
        run.findings.violations.iter().any(|v| v.checker == checker)
    })
}

/// Watchers resume from the last revision they saw + 1; skipping that revision leaves a gap.
#[test]
fn dropping_the_first_event_of_a_resumed_watch_leaves_a_gap() {
    let caught = first_seed_caught_by("drop-event-on-resume", "watch_guarantees", 1, 3);
    assert!(caught.is_some(), "not caught within 3 seeds");
}

/// Keys never attached to their lease survive its revoke and its expiry.
#[test]
fn a_revoke_that_deletes_no_keys_leaves_keys_that_outlive_their_lease() {
    let caught = first_seed_caught_by("revoke-keeps-keys", "lease_safety", 1, 3);
    assert!(caught.is_some(), "not caught within 3 seeds");
}

/// A keep-alive that renews for half the TTL it answers: the lease's TimeToLive polls and later
/// keep-alives find it expired before that TTL ran out.
#[test]
fn renewing_for_half_the_ttl_expires_a_lease_before_the_ttl_its_keep_alive_answered() {
    let caught = first_seed_caught_by("expire-early", "lease_expiry", 3, 4);
    assert!(caught.is_some(), "not caught within 4 seeds");
}

/// TimeToLive answering the granted TTL near a lease's end promises more than the lease lives.
#[test]
fn time_to_live_answering_the_granted_ttl_promises_more_than_the_lease_lives() {
    let caught = first_seed_caught_by("ttl-reports-granted", "lease_time_to_live", 3, 4);
    assert!(caught.is_some(), "not caught within 4 seeds");
}

/// Needs peers and a leader cut off or paused: it keeps renewing on its own word while the new
/// leader expires or revokes the lease (seed 0x34: a keep-alive after the acknowledged revoke
/// answers a TTL; 0x4d: the lease expires before the TTL the deposed leader's keep-alive gave).
#[test]
fn renewing_without_a_quorum_round_lets_a_deposed_leader_keep_a_lease_alive() {
    let faults = [
        FaultKind::Partition,
        FaultKind::Clock,
        FaultKind::Pause,
        FaultKind::Crash,
    ];
    let caught = first_failing_seed("renew-without-quorum", 3, &faults, 52);
    assert!(
        matches!(caught, Some((_, Verdict::Correctness))),
        "{caught:?}"
    );
}
