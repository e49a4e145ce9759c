//! The leader's lease duties (etcd's `lessor.runLoop`): every half second, propose revokes for
//! expired leases and checkpoints for long ones. (Promotion and demotion happen in the raft loop,
//! as leadership changes: `raft_node`.)
//!
//! Only the leader proposes these, and all members apply them, so expiry is decided in one place
//! by one clock (the Clock seam), and a revoke is a log entry like any other write.
//!
//! The task polls once per heartbeat rather than awaiting `watch` changes: tokio's `watch` wakes
//! concurrent waiters in an order drawn from a thread-local RNG that madsim does not control,
//! which makes simulator runs of the same seed diverge.

use std::sync::Arc;
use std::time::Duration;

use crate::server::ServerError;
use crate::watched::Watched;

use super::Leases;

/// How often expired leases and due checkpoints are looked for (etcd's 500 ms).
const DUTY_INTERVAL: Duration = Duration::from_millis(500);

/// Revokes proposed per turn: etcd's `leaseRevokeRate` of 1000/s, per half second.
const REVOKES_PER_TURN_MAX: usize = 500;

/// etcd's `maxLeaseCheckpointBatchSize`.
const CHECKPOINTS_PER_BATCH_MAX: usize = 1000;

/// Runs the duties until the server stops.
pub async fn run(leases: Arc<Leases>, stop: Arc<Watched<bool>>) {
    let clock = leases.clock.clone();
    let mut next_duty = clock.now() + DUTY_INTERVAL;
    while !stop.get() {
        if clock.now() >= next_duty {
            next_duty = clock.now() + DUTY_INTERVAL;
            propose_revokes_and_checkpoints(&leases);
        }
        clock.sleep(leases.config.heartbeat_interval).await;
    }
}

fn propose_revokes_and_checkpoints(leases: &Arc<Leases>) {
    let (term, expired, checkpoints) = {
        let mut lessor = leases.lessor.lock().unwrap();
        let Some(term) = lessor.primary_term() else {
            return;
        };
        (
            term,
            lessor.expired_leases(REVOKES_PER_TURN_MAX),
            lessor.due_checkpoints(CHECKPOINTS_PER_BATCH_MAX),
        )
    };
    for id in expired {
        let leases = leases.clone();
        tokio::spawn(async move {
            match leases.revoke_expired(term, id).await {
                // Revoked by a client, or by an earlier try, in the meantime.
                Ok(()) | Err(ServerError::LeaseNotFound) => {}
                Err(error) => {
                    tracing::warn!(lease = format_args!("{id:x}"), %error, "revoking an expired lease failed; will retry");
                }
            }
        });
    }
    if !checkpoints.is_empty() {
        let leases = leases.clone();
        tokio::spawn(async move {
            if let Err(error) = leases.checkpoint(Some(term), checkpoints).await {
                tracing::warn!(%error, "checkpointing lease TTLs failed");
            }
        });
    }
}
