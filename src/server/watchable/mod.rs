//! Watch streams (etcd's `watchable_store` and v3rpc `watch.go`): each gRPC Watch stream is served
//! by one task that owns its watches and pulls their events from the MVCC history.
//!
//! Why pull: the applier must never wait for a watcher. It only announces "revision R applied"
//! (`Applier::applied_revision`, a [`crate::watched::Watched`] latest revision: O(1), never
//! blocks, never queues). Each stream task then reads the events it has not sent yet from the
//! store in windows of at most [`WINDOW_REVISIONS_MAX`] revisions, filters them per watch, and
//! sends them. A slow client only slows its own task, which catches up from history later, as
//! etcd's unsynced watchers do; one that falls behind a compaction gets etcd's compacted
//! cancellation. Per stream, memory is bounded by one window of events plus
//! [`RESPONSES_QUEUED_MAX`] responses.
//!
//! Bounds: a stream holds at most `--experimental-max-watchers-per-stream` watches and the server
//! at most `--experimental-max-watchers` ([`WatcherBudget`]); a create beyond either is refused
//! with etcd's `etcdserver: too many requests` as its cancel reason, and the stream goes on.
//!
//! Guarantees (checked by the simulator's watch checker): events in revision order, every
//! revision's events in one response (or in one run of fragments), no duplicates, no gaps; a
//! progress response with revision R comes after every event at or below R.

mod budget;
mod fragment;
mod stream;
mod watcher;

pub use budget::WatcherBudget;
pub use stream::StreamEnd;

use futures::{Stream, StreamExt as _};
use tokio::sync::mpsc;

use crate::auth::Requester;
use crate::pb::etcdserverpb::{WatchRequest, WatchResponse};
use crate::server::EtcdServer;
use stream::WatchStream;

/// Revisions read from the store per step while a watch catches up (etcd's `watchBatchMaxRevs`):
/// bounds the time the store lock is held and the events held in memory.
pub const WINDOW_REVISIONS_MAX: i64 = 1000;

/// etcd's watch server splits fragments at `--max-request-bytes` plus this gRPC overhead
/// allowance (its `grpcOverheadBytes`, the same allowance the client listener adds).
pub const FRAGMENT_OVERHEAD_BYTES: usize = 512 * 1024;

/// Responses queued towards one client before its stream task waits for it to read.
pub const RESPONSES_QUEUED_MAX: usize = 16;

/// What woke a stream task.
enum Wake {
    Request(Option<WatchRequest>),
    /// A new revision was applied: catch up.
    Applied,
    ProgressTick,
    /// The server is stopping, or its raft loop (the applier) ended.
    Stopped,
}

/// Serves one watch stream until the client closes it, stops reading it for good (the response
/// receiver is dropped), or the server stops.
pub async fn serve_stream(
    server: &EtcdServer,
    requester: Requester,
    mut requests: impl Stream<Item = WatchRequest> + Unpin,
    responses: mpsc::Sender<WatchResponse>,
) -> StreamEnd {
    let applied = server.applied_revision().clone();
    let clock = server.clock();
    let interval = server.config().watch_progress_notify_interval;
    let mut progress_tick = clock.sleep(interval);
    let mut stream = WatchStream::new(server, requester, responses);
    loop {
        // Whatever is applied from here on is news to the catch-up below.
        let seen_revision = applied.get();
        if let Err(end) = stream.catch_up().await {
            return end;
        }
        let woken = tokio::select! {
            biased;
            _ = server.stopped().wait_for(|stopped| *stopped) => Wake::Stopped,
            request = requests.next() => Wake::Request(request),
            _ = applied.wait_for(|revision| *revision != seen_revision) => Wake::Applied,
            () = &mut progress_tick => Wake::ProgressTick,
        };
        let step = match woken {
            Wake::Request(Some(request)) => stream.handle(request).await,
            Wake::Request(None) => Err(StreamEnd::ClientGone),
            Wake::Applied => Ok(()),
            Wake::Stopped => Err(StreamEnd::ServerStopped),
            Wake::ProgressTick => {
                progress_tick = clock.sleep(interval);
                stream.notify_progress().await
            }
        };
        if let Err(end) = step {
            return end;
        }
    }
}
