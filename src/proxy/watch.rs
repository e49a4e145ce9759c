//! `etcdserverpb.Watch` through the proxy (etcd's grpcproxy `watch*.go`): client watches on the
//! same key range share one watch on the cluster (a *broadcast*), and a broadcast whose member
//! fails picks the watch up on the next endpoint from the revision it had delivered up to.
//!
//! etcd's rules: a client watch joins a broadcast of its range that is no further along than the
//! revision the watch starts at (or, for a watch "from now", one still being created the same
//! way); otherwise it gets a broadcast of its own. Once a broadcast has heard from the cluster, it
//! is merged into another broadcast of the same range that is at or behind it, so identical
//! watches end up as one. Every client watch remembers the next revision it may see, so moving it
//! between broadcasts, or a broadcast between members, sends it no event twice and skips none.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::upstream::{endpoint_failed, RESPONSE_BYTES_MAX};
use super::Shared;
use crate::pb::etcdserverpb::watch_client::WatchClient;
use crate::pb::etcdserverpb::watch_create_request::FilterType;
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::Event;

/// Responses a client stream may have waiting before the proxy calls it too slow and ends it
/// (etcd's proxy gives a stream 50 ms; a bound on queued responses keeps memory bounded the same
/// way without a timer per send).
const CLIENT_QUEUE_MAX: usize = 1024;
/// Between attempts to re-create a broadcast's watch on the cluster.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// etcd's `InvalidWatchID`: the watch id of a response that belongs to no single watch.
const NO_WATCH_ID: i64 = -1;

/// One client watch: its stream and the id the proxy gave it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct WatcherKey {
    stream: u64,
    watch_id: i64,
}

type Range = (Vec<u8>, Vec<u8>);

/// Where a client stream's responses go; a stream that stops reading is ended, not buffered.
#[derive(Clone)]
struct Outbox {
    sender: mpsc::Sender<Result<WatchResponse, Status>>,
    overflowed: Arc<Notify>,
}

impl Outbox {
    fn post(&self, response: WatchResponse) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.sender.try_send(Ok(response)) {
            self.overflowed.notify_one();
        }
    }
}

/// A client watch inside a broadcast.
struct Receiver {
    /// The first revision this watch may still be sent; 0 until a watch "from now" is created.
    next_revision: i64,
    created: bool,
    prev_kv: bool,
    progress_notify: bool,
    no_put: bool,
    no_delete: bool,
    outbox: Outbox,
}

struct Broadcast {
    range: Range,
    /// Every event before this revision has been delivered; where the cluster's watch resumes.
    /// 0 while a watch "from now" waits for the cluster to say which revision that is.
    next_revision: i64,
    /// Whether the cluster has answered (created the watch) at least once.
    started: bool,
    /// A watch is open on the cluster right now.
    connected: bool,
    header: ResponseHeader,
    receivers: BTreeMap<WatcherKey, Receiver>,
    /// Tells the broadcast's task it has been emptied.
    wake: Arc<Notify>,
}

#[derive(Default)]
pub struct Watches {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_stream: u64,
    next_broadcast: u64,
    broadcasts: BTreeMap<u64, Broadcast>,
    /// Which broadcast serves each client watch.
    watchers: BTreeMap<WatcherKey, u64>,
}

/// Counts for `/metrics`.
pub struct WatchCounts {
    pub watchers: usize,
    pub upstream_watches: usize,
}

impl Watches {
    pub fn counts(&self) -> WatchCounts {
        let registry = self.registry.lock().unwrap();
        WatchCounts {
            watchers: registry.watchers.len(),
            upstream_watches: registry.broadcasts.values().filter(|b| b.connected).count(),
        }
    }

    fn new_stream(&self) -> u64 {
        let mut registry = self.registry.lock().unwrap();
        registry.next_stream += 1;
        registry.next_stream
    }

    /// Adds a client watch to a broadcast that fits it, or to a new one.
    fn join(
        &self,
        shared: &Arc<Shared>,
        key: WatcherKey,
        create: &WatchCreateRequest,
        outbox: Outbox,
    ) {
        let filters = |filter: FilterType| create.filters.contains(&(filter as i32));
        let mut receiver = Receiver {
            next_revision: create.start_revision.max(0),
            created: false,
            prev_kv: create.prev_kv,
            progress_notify: create.progress_notify,
            no_put: filters(FilterType::Noput),
            no_delete: filters(FilterType::Nodelete),
            outbox,
        };
        let range = (create.key.clone(), create.range_end.clone());
        let start = receiver.next_revision;
        let mut registry = self.registry.lock().unwrap();
        let fitting = registry.broadcasts.iter_mut().find(|(_, b)| {
            b.range == range
                && if start == 0 {
                    b.next_revision == 0
                } else {
                    b.next_revision != 0 && b.next_revision <= start
                }
        });
        let id = match fitting {
            Some((&id, broadcast)) => {
                if broadcast.started {
                    // The cluster's created response went out long ago: give this watch its own.
                    receiver.created = true;
                    let header = ResponseHeader {
                        revision: start,
                        ..broadcast.header
                    };
                    receiver.outbox.post(WatchResponse {
                        header: Some(header),
                        watch_id: key.watch_id,
                        created: true,
                        ..Default::default()
                    });
                }
                broadcast.receivers.insert(key, receiver);
                id
            }
            None => {
                registry.next_broadcast += 1;
                let id = registry.next_broadcast;
                let wake = Arc::new(Notify::new());
                registry.broadcasts.insert(
                    id,
                    Broadcast {
                        range: range.clone(),
                        next_revision: start,
                        started: false,
                        connected: false,
                        header: ResponseHeader::default(),
                        receivers: BTreeMap::from([(key, receiver)]),
                        wake: wake.clone(),
                    },
                );
                tokio::spawn(run_broadcast(shared.clone(), id, range, wake));
                id
            }
        };
        registry.watchers.insert(key, id);
    }

    /// Removes a client watch; the last one out ends its broadcast. Returns the header to cancel
    /// it with, or None if the watch was already gone (canceled by the cluster).
    fn leave(&self, key: WatcherKey) -> Option<ResponseHeader> {
        let mut registry = self.registry.lock().unwrap();
        let id = registry.watchers.remove(&key)?;
        let broadcast = registry
            .broadcasts
            .get_mut(&id)
            .expect("a registered watcher's broadcast exists");
        broadcast.receivers.remove(&key);
        let header = broadcast.header;
        if broadcast.receivers.is_empty() {
            let broadcast = registry.broadcasts.remove(&id).expect("just found");
            broadcast.wake.notify_one();
        }
        Some(header)
    }

    /// The revision up to which every watch of `stream` in `ids` has been sent all events.
    fn progress(&self, stream: u64, ids: &BTreeSet<i64>) -> Option<ResponseHeader> {
        let registry = self.registry.lock().unwrap();
        ids.iter()
            .filter_map(|&watch_id| {
                let key = WatcherKey { stream, watch_id };
                let broadcast = &registry.broadcasts[registry.watchers.get(&key)?];
                let receiver = &broadcast.receivers[&key];
                (receiver.next_revision > 0).then(|| ResponseHeader {
                    revision: receiver.next_revision - 1,
                    ..broadcast.header
                })
            })
            .min_by_key(|header| header.revision)
    }

    /// The revision the broadcast's watch on the cluster starts (again) at; None once it ended.
    fn resume_revision(&self, id: u64) -> Option<i64> {
        let registry = self.registry.lock().unwrap();
        registry.broadcasts.get(&id).map(|b| b.next_revision)
    }

    fn set_connected(&self, id: u64, connected: bool) {
        if let Some(broadcast) = self.registry.lock().unwrap().broadcasts.get_mut(&id) {
            broadcast.connected = connected;
        }
    }

    /// Hands a response from the cluster to the broadcast's client watches. Returns false when
    /// the broadcast has ended (canceled by the cluster, or merged into another).
    fn deliver(&self, shared: &Shared, id: u64, response: WatchResponse) -> bool {
        let mut registry = self.registry.lock().unwrap();
        let Some(broadcast) = registry.broadcasts.get_mut(&id) else {
            return false;
        };
        let header = response.header.unwrap_or_default();
        broadcast.header = header;
        if response.canceled {
            // Compacted past where the watch resumes, or refused: etcd's answer, to every watch.
            for (key, receiver) in &mut broadcast.receivers {
                send_created(receiver, key.watch_id, header);
                receiver.outbox.post(WatchResponse {
                    header: Some(header),
                    watch_id: key.watch_id,
                    canceled: true,
                    compact_revision: response.compact_revision,
                    cancel_reason: response.cancel_reason.clone(),
                    ..Default::default()
                });
            }
            let broadcast = registry.broadcasts.remove(&id).expect("just found");
            for key in broadcast.receivers.keys() {
                registry.watchers.remove(key);
            }
            return false;
        }
        if response.created {
            // A watch from a given revision starts there whatever the header says (etcd).
            if broadcast.next_revision == 0 {
                broadcast.next_revision = header.revision + 1;
            }
            broadcast.started = true;
            for (key, receiver) in &mut broadcast.receivers {
                send_created(receiver, key.watch_id, header);
            }
        } else {
            // Anything before the resume point came already (from the member before this one).
            let events: Vec<Event> = response
                .events
                .into_iter()
                .filter(|event| revision_of(event) >= broadcast.next_revision)
                .collect();
            // A progress notification (no events) vouches for everything up to its header.
            let delivered_to = match events.last() {
                Some(event) => revision_of(event) + 1,
                None => header.revision + 1,
            };
            let receivers = broadcast.receivers.len() as u64;
            shared
                .metrics
                .events_coalesced(events.len() as u64 * receivers.saturating_sub(1));
            for (key, receiver) in &mut broadcast.receivers {
                let mine: Vec<Event> = events
                    .iter()
                    .filter(|event| receiver.wants(event))
                    .map(|event| {
                        let mut event = event.clone();
                        if !receiver.prev_kv {
                            event.prev_kv = None;
                        }
                        shared.namespace.event(&mut event);
                        event
                    })
                    .collect();
                if !mine.is_empty() || (events.is_empty() && receiver.progress_notify) {
                    receiver.outbox.post(WatchResponse {
                        header: Some(header),
                        watch_id: key.watch_id,
                        events: mine,
                        ..Default::default()
                    });
                }
                receiver.next_revision = receiver.next_revision.max(delivered_to);
            }
            broadcast.next_revision = broadcast.next_revision.max(delivered_to);
        }
        !registry.merge(id)
    }
}

impl Registry {
    /// etcd's coalescing: move every watch of broadcast `id` into another broadcast of the same
    /// range that has started and is no further along (its watches filter what they already
    /// saw). Returns whether `id` was merged away.
    fn merge(&mut self, id: u64) -> bool {
        let broadcast = &self.broadcasts[&id];
        let (range, next_revision) = (broadcast.range.clone(), broadcast.next_revision);
        let into = self.broadcasts.iter().find_map(|(&other, b)| {
            (other != id && b.started && b.range == range && b.next_revision <= next_revision)
                .then_some(other)
        });
        let Some(into) = into else {
            return false;
        };
        let merged = self.broadcasts.remove(&id).expect("looked up above");
        tracing::debug!(from = id, into, "coalescing watches");
        for key in merged.receivers.keys() {
            self.watchers.insert(*key, into);
        }
        let target = self.broadcasts.get_mut(&into).expect("found above");
        target.receivers.extend(merged.receivers);
        true
    }
}

impl Receiver {
    fn wants(&self, event: &Event) -> bool {
        let filtered = match event.r#type() {
            EventType::Put => self.no_put,
            EventType::Delete => self.no_delete,
        };
        revision_of(event) >= self.next_revision && !filtered
    }
}

fn send_created(receiver: &mut Receiver, watch_id: i64, header: ResponseHeader) {
    if receiver.created {
        return;
    }
    receiver.created = true;
    if receiver.next_revision == 0 {
        receiver.next_revision = header.revision + 1;
    }
    receiver.outbox.post(WatchResponse {
        header: Some(header),
        watch_id,
        created: true,
        ..Default::default()
    });
}

fn revision_of(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// A broadcast's watch on the cluster, kept open (moving between endpoints) until its last
/// client watch leaves.
async fn run_broadcast(shared: Arc<Shared>, id: u64, range: Range, wake: Arc<Notify>) {
    let watches = &shared.watches;
    let mut retry = RETRY_MIN;
    while let Some(start_revision) = watches.resume_revision(id) {
        let picked = shared.upstream.pick();
        let (requests, request_stream) = mpsc::channel(1);
        let create = WatchCreateRequest {
            key: range.0.clone(),
            range_end: range.1.clone(),
            start_revision,
            progress_notify: true,
            prev_kv: true,
            ..Default::default()
        };
        requests
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            })
            .await
            .expect("the receiving half is alive");
        let opened = WatchClient::new(picked.channel)
            .max_decoding_message_size(RESPONSE_BYTES_MAX)
            .watch(ReceiverStream::new(request_stream))
            .await;
        let mut responses = match opened {
            Ok(responses) => responses.into_inner(),
            Err(status) => {
                shared.upstream.failed(picked.index, &status);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        watches.set_connected(id, true);
        let ended = loop {
            tokio::select! {
                biased;
                () = wake.notified() => {
                    if watches.resume_revision(id).is_none() {
                        break true;
                    }
                }
                message = responses.message() => match message {
                    Ok(Some(response)) => {
                        retry = RETRY_MIN;
                        if !watches.deliver(&shared, id, response) {
                            break true;
                        }
                    }
                    Ok(None) => {
                        shared.upstream.failed(picked.index, &"watch stream closed by the member");
                        break false;
                    }
                    Err(status) if endpoint_failed(&status) || status.code() == tonic::Code::Unknown => {
                        shared.upstream.failed(picked.index, &status);
                        break false;
                    }
                    Err(status) => {
                        cancel_all(&shared, id, &status);
                        break true;
                    }
                }
            }
        };
        watches.set_connected(id, false);
        drop(requests);
        if ended {
            break;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// The cluster refused the watch for good (e.g. permission denied): end every client watch.
fn cancel_all(shared: &Shared, id: u64, status: &Status) {
    shared.watches.deliver(
        shared,
        id,
        WatchResponse {
            canceled: true,
            cancel_reason: status.message().to_string(),
            ..Default::default()
        },
    );
}

pub struct WatchProxy {
    shared: Arc<Shared>,
}

impl WatchProxy {
    pub fn new(shared: Arc<Shared>) -> WatchProxy {
        WatchProxy { shared }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchProxy {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let incoming = request.into_inner();
        let (sender, receiver) = mpsc::channel(CLIENT_QUEUE_MAX);
        let outbox = Outbox {
            sender,
            overflowed: Arc::new(Notify::new()),
        };
        let overflowed = outbox.overflowed.clone();
        tokio::spawn(serve_stream(self.shared.clone(), incoming, outbox));
        let responses = futures::stream::unfold(Some(receiver), move |receiver| {
            let overflowed = overflowed.clone();
            async move {
                let mut receiver = receiver?;
                tokio::select! {
                    biased;
                    () = overflowed.notified() => Some((
                        Err(Status::resource_exhausted(
                            "grpc-proxy: watch stream closed: the client does not read its events",
                        )),
                        None,
                    )),
                    response = receiver.recv() => response.map(|response| (response, Some(receiver))),
                }
            }
        });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// A client's watch stream: creates and cancels watches as it asks, and removes them all when
/// it goes away.
async fn serve_stream(shared: Arc<Shared>, mut incoming: Streaming<WatchRequest>, outbox: Outbox) {
    let stream = shared.watches.new_stream();
    let mut next_watch_id = 0;
    let mut mine = BTreeSet::new();
    loop {
        let request = tokio::select! {
            biased;
            () = outbox.sender.closed() => break,
            request = incoming.message() => request,
        };
        let Ok(Some(request)) = request else {
            break;
        };
        match request.request_union {
            Some(RequestUnion::CreateRequest(mut create)) => {
                // Like etcd's proxy, ids are the proxy's own, counted per stream.
                let key = WatcherKey {
                    stream,
                    watch_id: next_watch_id,
                };
                next_watch_id += 1;
                shared.namespace.watch_request(&mut create);
                shared.watches.join(&shared, key, &create, outbox.clone());
                mine.insert(key.watch_id);
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                let key = WatcherKey {
                    stream,
                    watch_id: cancel.watch_id,
                };
                if mine.remove(&key.watch_id) {
                    if let Some(header) = shared.watches.leave(key) {
                        outbox.post(WatchResponse {
                            header: Some(header),
                            watch_id: key.watch_id,
                            canceled: true,
                            ..Default::default()
                        });
                    }
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                if let Some(header) = shared.watches.progress(stream, &mine) {
                    outbox.post(WatchResponse {
                        header: Some(header),
                        watch_id: NO_WATCH_ID,
                        ..Default::default()
                    });
                }
            }
            None => {}
        }
    }
    for watch_id in mine {
        shared.watches.leave(WatcherKey { stream, watch_id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::mvccpb::KeyValue;

    fn shared() -> Shared {
        Shared {
            upstream: super::super::upstream::Upstream::new(
                &["http://127.0.0.1:1".into()],
                &Default::default(),
            )
            .unwrap(),
            cache: Default::default(),
            watches: Watches::default(),
            namespace: Default::default(),
            metrics: Default::default(),
            read_only: false,
        }
    }

    fn outbox() -> (Outbox, mpsc::Receiver<Result<WatchResponse, Status>>) {
        let (sender, receiver) = mpsc::channel(16);
        let overflowed = Arc::new(Notify::new());
        (Outbox { sender, overflowed }, receiver)
    }

    /// A broadcast as `join` makes it, without the task that would talk to a cluster.
    fn broadcast(shared: &Shared, key: WatcherKey, start: i64, outbox: Outbox) -> u64 {
        let mut registry = shared.watches.registry.lock().unwrap();
        registry.next_broadcast += 1;
        let id = registry.next_broadcast;
        let receiver = Receiver {
            next_revision: start,
            created: false,
            prev_kv: false,
            progress_notify: false,
            no_put: false,
            no_delete: false,
            outbox,
        };
        registry.broadcasts.insert(
            id,
            Broadcast {
                range: (b"k".to_vec(), Vec::new()),
                next_revision: start,
                started: false,
                connected: true,
                header: ResponseHeader::default(),
                receivers: BTreeMap::from([(key, receiver)]),
                wake: Arc::new(Notify::new()),
            },
        );
        registry.watchers.insert(key, id);
        id
    }

    fn header(revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            revision,
            ..Default::default()
        })
    }

    fn created(revision: i64) -> WatchResponse {
        WatchResponse {
            header: header(revision),
            created: true,
            ..Default::default()
        }
    }

    fn events(revisions: &[i64]) -> WatchResponse {
        WatchResponse {
            header: header(*revisions.last().unwrap()),
            events: revisions
                .iter()
                .map(|&mod_revision| Event {
                    kv: Some(KeyValue {
                        key: b"k".to_vec(),
                        mod_revision,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The revisions of the events a client watch was sent, and whether it saw `created`.
    fn seen(receiver: &mut mpsc::Receiver<Result<WatchResponse, Status>>) -> (bool, Vec<i64>) {
        let mut created = false;
        let mut revisions = Vec::new();
        while let Ok(response) = receiver.try_recv() {
            let response = response.unwrap();
            created |= response.created;
            revisions.extend(response.events.iter().map(revision_of));
        }
        (created, revisions)
    }

    #[tokio::test]
    async fn a_later_identical_watch_is_merged_and_sees_each_event_once() {
        let shared = shared();
        let watches = &shared.watches;
        let (first_out, mut first) = outbox();
        let (second_out, mut second) = outbox();
        let first_key = WatcherKey {
            stream: 1,
            watch_id: 0,
        };
        let second_key = WatcherKey {
            stream: 2,
            watch_id: 0,
        };
        let a = broadcast(&shared, first_key, 0, first_out);
        assert!(watches.deliver(&shared, a, created(10)));
        assert!(watches.deliver(&shared, a, events(&[11, 12])));
        assert_eq!(seen(&mut first), (true, vec![11, 12]));

        // A second "from now" watch gets its own broadcast until the cluster answers it; then
        // it is at the first one's revision and joins it.
        let b = broadcast(&shared, second_key, 0, second_out);
        assert_eq!(watches.counts().upstream_watches, 2);
        assert!(!watches.deliver(&shared, b, created(12)), "merged away");
        assert_eq!(watches.counts().upstream_watches, 1);
        assert_eq!(watches.counts().watchers, 2);

        assert!(watches.deliver(&shared, a, events(&[13])));
        // The member the broadcast moved to sends 13 again: nobody sees it twice.
        assert!(watches.deliver(&shared, a, events(&[13, 14])));
        assert_eq!(seen(&mut first), (false, vec![13, 14]));
        assert_eq!(seen(&mut second), (true, vec![13, 14]));

        // The last watch out ends the broadcast.
        watches.leave(first_key);
        watches.leave(second_key);
        assert_eq!(watches.counts().upstream_watches, 0);
        assert!(!watches.deliver(&shared, a, events(&[15])));
    }

    #[tokio::test]
    async fn a_stream_that_is_not_read_is_flagged_instead_of_buffered() {
        let (sender, mut receiver) = mpsc::channel(2);
        let outbox = Outbox {
            sender,
            overflowed: Arc::new(Notify::new()),
        };
        for revision in 1..=3 {
            outbox.post(events(&[revision]));
        }
        // The third did not fit: the stream is told to end (a stored permit: resolves now).
        tokio::time::timeout(Duration::from_secs(1), outbox.overflowed.notified())
            .await
            .expect("overflow flagged");
        assert_eq!(seen(&mut receiver), (false, vec![1, 2]));
    }

    #[tokio::test]
    async fn a_watch_from_an_old_revision_is_not_merged_into_one_further_along() {
        let shared = shared();
        let watches = &shared.watches;
        let (first_out, _first) = outbox();
        let (second_out, mut second) = outbox();
        let a = broadcast(
            &shared,
            WatcherKey {
                stream: 1,
                watch_id: 0,
            },
            0,
            first_out,
        );
        assert!(watches.deliver(&shared, a, created(10)));
        assert!(watches.deliver(&shared, a, events(&[11, 12])));
        // Starts at 5: the first broadcast is at 13, so merging would skip 5..=12.
        let b = broadcast(
            &shared,
            WatcherKey {
                stream: 2,
                watch_id: 0,
            },
            5,
            second_out,
        );
        assert!(watches.deliver(&shared, b, created(12)));
        assert!(watches.deliver(&shared, b, events(&[5, 9])));
        assert_eq!(seen(&mut second), (true, vec![5, 9]));
        assert_eq!(watches.counts().upstream_watches, 2);
        // Caught up to the first one: now they merge.
        assert!(!watches.deliver(&shared, b, events(&[11, 12])));
        assert_eq!(watches.counts().upstream_watches, 1);
    }
}
