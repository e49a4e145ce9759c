//! Planted bugs, compiled only with the `sim-bugs` feature, for the simulator to prove that its
//! checkers catch real mistakes (a checker that never fails proves nothing).
//!
//! Each bug is a one-line hook in server code, `if crate::planted_bug!(Name) { .. }`, that expands
//! to `false` without the feature, so a production build carries none of them. The simulator turns
//! bugs on per run with [`enable`]; the set is thread-local because madsim runs a whole simulated
//! cluster on one thread, and parallel test threads must not see each other's bugs.

use std::cell::Cell;

/// The bugs; each names the rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// The WAL "saves" without fsync, so a write is acknowledged before it is durable.
    AckBeforeFsync,
    /// Linearizable reads are served from local state without a ReadIndex round.
    ReadWithoutReadIndex,
    /// WAL replay does not verify record checksums.
    SkipWalChecksum,
    /// The WAL drops raft's hard state (term, vote, commit) instead of persisting it.
    ForgetHardState,
    /// Entries applied while no proposer waits (every entry replayed after a restart) are
    /// applied twice.
    ApplyTwiceAfterRestart,
    /// WAL open keeps a torn tail instead of truncating it, so later records follow garbage.
    KeepTornTail,
    /// A watch created with a `start_revision` (a client resuming) skips that revision's events.
    DropEventOnResume,
    /// Keys put with a lease are never attached to it, so its revoke (or expiry) deletes none.
    RevokeKeepsKeys,
    /// A range inside a txn reads the store as of before the txn, missing the txn's own earlier
    /// writes (etcd applies a txn's ops in order, each seeing the writes before it).
    TxnRangeMissesOwnWrites,
    /// A range cut short by its limit counts only the keys it returns, not every key in range.
    RangeCountStopsAtLimit,
    /// The raft loop sends the messages that wait for durability (votes, append acknowledgements)
    /// before its WAL fsync instead of after.
    FollowerAckBeforeFsync,
    /// A WAL save that fills its segment skips its fsync, "since the cut syncs", but the cut
    /// makes only the new segment durable: the old one's last records stay unsynced for good.
    CutWithoutSync,
    /// A follower stamps every third delete's tombstone with a create revision (a tombstone is
    /// only a key): its history diverges where no read looks, until a compaction drops it.
    FollowerTombstoneDrift,
    /// A follower applying a lease revoke deletes the lease's keys but keeps the lease.
    FollowerKeepsRevokedLease,
    /// A progress request is answered with the revision after the one caught up to (off by one),
    /// so the answer runs ahead of what the watches were sent.
    ProgressAheadOfEvents,
    /// A watch that filters out puts drops deletes too.
    NoPutFilterDropsDeletes,
    /// A rename (so every `write_atomic`: a new WAL segment, a snapshot file) does not fsync its
    /// directory, so a power loss can undo it.
    SkipDirSync,
    /// Snapshot files are loaded without verifying their checksum.
    SkipSnapshotChecksum,
    /// A keep-alive renews a lease for half its TTL, so it expires before the TTL it answered.
    ExpireEarly,
    /// TimeToLive answers the granted TTL instead of the remaining one.
    TtlReportsGranted,
    /// Suspect 3 undone: a leader renews a lease on its own word, without the quorum round
    /// that proves it still leads.
    RenewWithoutQuorum,
    /// The fix for seed 0x262a1bf undone: a lease duty (expiry revoke, checkpoint) applies in
    /// whatever term it was appended, so a deposed leader's late revoke, forwarded by raft to
    /// the new leader, revokes a lease the new leader promised more time.
    StaleLeaseDuties,
    /// The fix for seed 0x5f5ed34 undone: a keep-alive clears only a checkpoint that has
    /// applied, not one still on its way, which then cuts the lease short after a failover.
    RenewIgnoresCheckpointInFlight,
    /// Suspect 7 undone: old snapshot files are purged before the new file's WAL marker is
    /// durable, so a crash in between leaves a marker naming a file that is gone.
    PurgeBeforeMarker,
    /// Suspect 6 undone: a store restored from a snapshot forgets the deletes its compaction
    /// dropped, so a watch at the compaction revision silently misses them there.
    SnapshotForgetsCompactedDeletes,
}

impl Bug {
    pub const ALL: &[Bug] = &[
        Bug::AckBeforeFsync,
        Bug::ReadWithoutReadIndex,
        Bug::SkipWalChecksum,
        Bug::ForgetHardState,
        Bug::ApplyTwiceAfterRestart,
        Bug::KeepTornTail,
        Bug::DropEventOnResume,
        Bug::RevokeKeepsKeys,
        Bug::TxnRangeMissesOwnWrites,
        Bug::RangeCountStopsAtLimit,
        Bug::FollowerAckBeforeFsync,
        Bug::CutWithoutSync,
        Bug::FollowerTombstoneDrift,
        Bug::FollowerKeepsRevokedLease,
        Bug::ProgressAheadOfEvents,
        Bug::NoPutFilterDropsDeletes,
        Bug::SkipDirSync,
        Bug::SkipSnapshotChecksum,
        Bug::ExpireEarly,
        Bug::TtlReportsGranted,
        Bug::RenewWithoutQuorum,
        Bug::StaleLeaseDuties,
        Bug::RenewIgnoresCheckpointInFlight,
        Bug::PurgeBeforeMarker,
        Bug::SnapshotForgetsCompactedDeletes,
    ];

    /// The kebab-case name the simulator's `--bug` flag takes.
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::ReadWithoutReadIndex => "read-without-read-index",
            Bug::SkipWalChecksum => "skip-wal-checksum",
            Bug::ForgetHardState => "forget-hard-state",
            Bug::ApplyTwiceAfterRestart => "apply-twice-after-restart",
            Bug::KeepTornTail => "keep-torn-tail",
            Bug::DropEventOnResume => "drop-event-on-resume",
            Bug::RevokeKeepsKeys => "revoke-keeps-keys",
            Bug::TxnRangeMissesOwnWrites => "txn-range-misses-own-writes",
            Bug::RangeCountStopsAtLimit => "range-count-stops-at-limit",
            Bug::FollowerAckBeforeFsync => "follower-ack-before-fsync",
            Bug::CutWithoutSync => "cut-without-sync",
            Bug::FollowerTombstoneDrift => "follower-tombstone-drift",
            Bug::FollowerKeepsRevokedLease => "follower-keeps-revoked-lease",
            Bug::ProgressAheadOfEvents => "progress-ahead-of-events",
            Bug::NoPutFilterDropsDeletes => "noput-filter-drops-deletes",
            Bug::SkipDirSync => "skip-dir-sync",
            Bug::SkipSnapshotChecksum => "skip-snapshot-checksum",
            Bug::ExpireEarly => "expire-early",
            Bug::TtlReportsGranted => "ttl-reports-granted",
            Bug::RenewWithoutQuorum => "renew-without-quorum",
            Bug::StaleLeaseDuties => "stale-lease-duties",
            Bug::RenewIgnoresCheckpointInFlight => "renew-ignores-checkpoint-in-flight",
            Bug::PurgeBeforeMarker => "purge-before-marker",
            Bug::SnapshotForgetsCompactedDeletes => "snapshot-forgets-compacted-deletes",
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.iter().copied().find(|bug| bug.name() == name)
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

thread_local! {
    static ENABLED: Cell<u32> = const { Cell::new(0) };
}

/// Turns on exactly `bugs` for this thread (an empty slice turns all off).
pub fn enable(bugs: &[Bug]) {
    ENABLED.with(|enabled| enabled.set(bugs.iter().fold(0, |bits, bug| bits | bug.bit())));
}

pub fn enabled(bug: Bug) -> bool {
    ENABLED.with(|enabled| enabled.get() & bug.bit() != 0)
}

/// `true` when the named planted bug is on; always `false` without the `sim-bugs` feature.
#[macro_export]
macro_rules! planted_bug {
    ($bug:ident) => {
        $crate::bugs::enabled($crate::bugs::Bug::$bug)
    };
}
