//! The state of one watch stream: its watches by id, and the catch-up that sends each watch the
//! events it has not been sent yet.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::budget::Share;
use super::fragment::fragments;
use super::watcher::{CreateError, Watcher, AUTO_WATCH_ID};
use super::{FRAGMENT_OVERHEAD_BYTES, WINDOW_REVISIONS_MAX};
use crate::auth::Requester;
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::pb::mvccpb::Event;
use crate::server::EtcdServer;

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The client closed its side or stopped receiving.
    ClientGone,
    ServerStopped,
}

/// The `watch_id` of responses that belong to no watch (progress requested by the client).
const NO_WATCH_ID: i64 = -1;

/// etcd's `cancel_reason` for a watch its user may not read: the gRPC error's full text.
const PERMISSION_DENIED_REASON: &str =
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";

pub struct WatchStream<'a> {
    server: &'a EtcdServer,
    /// Who opened the stream: every watch on it reads as this user.
    requester: Requester,
    responses: mpsc::Sender<WatchResponse>,
    /// By id, so every pass over the watches runs in the same order.
    watchers: BTreeMap<i64, Watcher>,
    /// One slot of the server's watcher budget per entry of `watchers`.
    slots: Share<'a>,
    next_auto_id: i64,
    fragment_bytes_max: usize,
}

/// One step of catching up, read under the store lock.
struct Window {
    current_revision: i64,
    compact_revision: i64,
    /// See [`crate::storage::mvcc::KvStore::deletes_dropped_by_compaction`].
    dropped_deletes: Vec<Event>,
    /// Events of revisions up to and including `through_revision`, for the watches behind it.
    events: Vec<Event>,
    through_revision: i64,
}

impl<'a> WatchStream<'a> {
    pub fn new(
        server: &'a EtcdServer,
        requester: Requester,
        responses: mpsc::Sender<WatchResponse>,
    ) -> Self {
        WatchStream {
            server,
            requester,
            responses,
            watchers: BTreeMap::new(),
            slots: server.watcher_budget().share(),
            next_auto_id: 0,
            fragment_bytes_max: server.config().max_request_bytes + FRAGMENT_OVERHEAD_BYTES,
        }
    }

    pub async fn handle(&mut self, request: WatchRequest) -> Result<(), StreamEnd> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(&create).await,
            Some(RequestUnion::CancelRequest(cancel)) => self.cancel(cancel.watch_id).await,
            Some(RequestUnion::ProgressRequest(_)) => {
                let revision =
                    self.catch_up().await? + i64::from(crate::planted_bug!(ProgressAheadOfEvents));
                self.send(WatchResponse {
                    header: Some(self.server.header(revision)),
                    watch_id: NO_WATCH_ID,
                    ..Default::default()
                })
                .await
            }
            // etcd ignores requests it does not know rather than end the stream.
            None => Ok(()),
        }
    }

    async fn create(&mut self, request: &WatchCreateRequest) -> Result<(), StreamEnd> {
        let current_revision = self.current_revision();
        if !self.may_read(&request.key, &request.range_end) {
            // etcd answers with the id asked for, created and canceled at once.
            return self
                .send(WatchResponse {
                    header: Some(self.server.header(current_revision)),
                    watch_id: request.watch_id,
                    created: true,
                    canceled: true,
                    cancel_reason: PERMISSION_DENIED_REASON.to_string(),
                    ..Default::default()
                })
                .await;
        }
        let next_revision = match request.start_revision {
            0 => current_revision + 1,
            start => start.max(1) + i64::from(crate::planted_bug!(DropEventOnResume)),
        };
        let created = Watcher::new(request, next_revision).and_then(|watcher| {
            self.admit()?;
            match self.assign_id(request.watch_id) {
                Ok(id) => Ok(watcher.with_id(id)),
                Err(error) => {
                    self.slots.give_back();
                    Err(error)
                }
            }
        });
        let response = match created {
            Ok(watcher) => {
                let id = watcher.id;
                assert!(self.watchers.insert(id, watcher).is_none());
                WatchResponse {
                    header: Some(self.server.header(current_revision)),
                    watch_id: id,
                    created: true,
                    ..Default::default()
                }
            }
            Err(error) => WatchResponse {
                header: Some(self.server.header(current_revision)),
                watch_id: NO_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: error.reason().to_string(),
                ..Default::default()
            },
        };
        self.send(response).await
    }

    /// Room for one more watch, within this stream's bound and the server's; takes its slot.
    fn admit(&mut self) -> Result<(), CreateError> {
        if self.watchers.len() >= self.server.config().max_watchers_per_stream || !self.slots.take()
        {
            return Err(CreateError::TooManyWatchers);
        }
        Ok(())
    }

    /// The client's id, or the lowest unused one from a counter as etcd picks them.
    fn assign_id(&mut self, requested: i64) -> Result<i64, CreateError> {
        if requested != AUTO_WATCH_ID {
            if self.watchers.contains_key(&requested) {
                return Err(CreateError::DuplicateId);
            }
            return Ok(requested);
        }
        while self.watchers.contains_key(&self.next_auto_id) {
            self.next_auto_id += 1;
        }
        let id = self.next_auto_id;
        self.next_auto_id += 1;
        Ok(id)
    }

    /// Cancels a watch; like etcd, an unknown id gets no answer.
    async fn cancel(&mut self, id: i64) -> Result<(), StreamEnd> {
        if self.watchers.remove(&id).is_none() {
            return Ok(());
        }
        self.slots.give_back();
        let response = WatchResponse {
            header: Some(self.server.header(self.current_revision())),
            watch_id: id,
            canceled: true,
            ..Default::default()
        };
        self.send(response).await
    }

    /// etcd's periodic progress notification: every watch that asked for it and was sent no
    /// events since the last tick hears the revision it is synced to.
    pub async fn notify_progress(&mut self) -> Result<(), StreamEnd> {
        let revision = self.catch_up().await?;
        let due: Vec<i64> = self
            .watchers
            .values_mut()
            .filter(|watcher| watcher.progress_notify)
            .filter_map(|watcher| {
                std::mem::replace(&mut watcher.progress_due, true).then_some(watcher.id)
            })
            .collect();
        for id in due {
            self.send(WatchResponse {
                header: Some(self.server.header(revision)),
                watch_id: id,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }

    /// Sends every watch the events it has not been sent, up to the revision applied when this
    /// call began, which it returns: every event at or below it has then been sent. Works in
    /// windows of bounded size, taking the store lock once per window.
    pub async fn catch_up(&mut self) -> Result<i64, StreamEnd> {
        let target = self.current_revision();
        loop {
            let Some(window) = self.read_window(target) else {
                return Ok(target);
            };
            self.cancel_compacted(&window).await?;
            let ids: Vec<i64> = self.watchers.keys().copied().collect();
            for id in ids {
                let watcher = self.watchers.get_mut(&id).expect("ids were just listed");
                if !watcher.is_behind(window.through_revision) {
                    continue;
                }
                let events = watcher.take(&window.events, window.through_revision);
                if events.is_empty() {
                    continue;
                }
                let (key, range_end) = watcher.requested_range.clone();
                if !self.may_read(&key, &range_end) {
                    // Its permission was revoked since it was created: it delivers no more.
                    self.watchers.remove(&id);
                    self.send(WatchResponse {
                        header: Some(self.server.header(window.current_revision)),
                        watch_id: id,
                        canceled: true,
                        cancel_reason: PERMISSION_DENIED_REASON.to_string(),
                        ..Default::default()
                    })
                    .await?;
                    continue;
                }
                let watcher = self.watchers.get_mut(&id).expect("ids were just listed");
                watcher.progress_due = false;
                let fragment = watcher.fragment;
                let response = WatchResponse {
                    header: Some(self.server.header(window.current_revision)),
                    watch_id: id,
                    events,
                    ..Default::default()
                };
                if fragment {
                    for piece in fragments(response, self.fragment_bytes_max) {
                        self.send(piece).await?;
                    }
                } else {
                    self.send(response).await?;
                }
            }
        }
    }

    /// The next window of events for the watches behind `target`, or None if none is behind.
    fn read_window(&self, target: i64) -> Option<Window> {
        let kv = self.server.store().lock().unwrap();
        let compact_revision = kv.compacted_revision();
        let oldest = self
            .watchers
            .values()
            .filter(|watcher| watcher.is_behind(target))
            .map(|watcher| watcher.next_revision)
            .min()?;
        let from = oldest.max(compact_revision);
        let through_revision = target.min(from.saturating_add(WINDOW_REVISIONS_MAX - 1));
        let events = kv
            .events_in(from..=through_revision)
            .expect("events from the compaction revision on are kept");
        Some(Window {
            current_revision: kv.current_revision(),
            compact_revision,
            // Only a watch still at the compaction revision can need them: no work otherwise.
            dropped_deletes: if oldest <= compact_revision {
                kv.deletes_dropped_by_compaction()
            } else {
                Vec::new()
            },
            events,
            through_revision,
        })
    }

    /// Watches that still need events the compaction discarded end with etcd's compacted
    /// response: `compact_revision` set, `canceled`, and a header without revision.
    ///
    /// Watches read events from the store after they are applied, so a watch can still be at
    /// the compaction revision when the compaction drops a delete made there (its tombstone).
    /// etcd's synced watchers got that event as it was written; here a watch that covers such a
    /// key is told it was compacted, and that it can resume after the compaction revision,
    /// rather than silently miss the delete (seed 0x187fd).
    async fn cancel_compacted(&mut self, window: &Window) -> Result<(), StreamEnd> {
        let compacted: Vec<(i64, i64)> = self
            .watchers
            .values()
            .filter_map(|watcher| {
                if watcher.next_revision < window.compact_revision {
                    Some((watcher.id, window.compact_revision))
                } else if watcher.awaits_any(&window.dropped_deletes) {
                    Some((watcher.id, window.compact_revision + 1))
                } else {
                    None
                }
            })
            .collect();
        for (id, compact_revision) in compacted {
            self.watchers.remove(&id);
            self.slots.give_back();
            self.send(WatchResponse {
                header: Some(self.server.header(0)),
                watch_id: id,
                compact_revision,
                canceled: true,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }

    fn current_revision(&self) -> i64 {
        self.server.store().lock().unwrap().current_revision()
    }

    fn may_read(&self, key: &[u8], range_end: &[u8]) -> bool {
        self.server
            .auth()
            .check_read(&self.requester, key, range_end)
            .is_ok()
    }

    async fn send(&self, response: WatchResponse) -> Result<(), StreamEnd> {
        self.responses
            .send(response)
            .await
            .map_err(|_| StreamEnd::ClientGone)
    }
}
