//! The `watch` workload: 1–2 watcher nodes watch the kv workload's key space (`k`… keys, and in
//! some sessions the lease client's `lease/` keys too) while it runs, as etcd clients do: some
//! watches start from an earlier revision, some ask for `prev_kv`, some filter out puts or
//! deletes, some ask for progress notifications or send progress requests; after an error a
//! watcher reconnects (maybe to another member) and resumes from the last revision it saw + 1.
//! Every response with events, and every progress response, is recorded for `watch_guarantees`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use detcd::pb::etcdserverpb::watch_client::WatchClient;
use detcd::pb::etcdserverpb::watch_create_request::FilterType;
use detcd::pb::etcdserverpb::watch_request::RequestUnion;
use detcd::pb::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest};
use detcd::pb::mvccpb::event::EventType;
use futures::StreamExt;
use madsim::runtime::{Handle, NodeHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Versioned, WatchEvent, WatchRecord, WatchResponseRecord};
use crate::options::SwarmOptions;
use crate::recorded::Recorded;
use crate::trace::{now_ns, Trace};

/// The watched range: every key of the kv workload (`k0`…), and with [`WITH_LEASE_KEYS`] the
/// lease client's `lease/…` keys too (`liveness` is written only once the watchers stopped).
pub const WATCH_KEY: &str = "k";
pub const WATCH_RANGE_END: &str = "l";
pub const WITH_LEASE_KEYS: &str = "m";

/// How one session watches, beyond where it starts: drawn per session from the watcher's second
/// RNG, so the draws the watchers made before these options existed stay as they were.
#[derive(Debug, Clone)]
struct Breadth {
    range_end: &'static str,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    /// Send a progress request this often, if at all.
    progress_requests: Option<Duration>,
}

impl Breadth {
    fn draw(rng: &mut StdRng) -> Breadth {
        let filter = rng.random_range(0..5);
        Breadth {
            range_end: if rng.random_bool(0.5) {
                WITH_LEASE_KEYS
            } else {
                WATCH_RANGE_END
            },
            no_put: filter == 0,
            no_delete: filter == 1,
            progress_notify: rng.random_bool(0.5),
            progress_requests: rng
                .random_bool(0.5)
                .then(|| Duration::from_millis(rng.random_range(100..1_500))),
        }
    }
}

/// The recorded watch streams, shared by the watchers.
pub type WatchRecorder = Recorded<WatchRecord>;

/// Starts the watchers; they run until their tasks are aborted.
pub fn start(
    options: &SwarmOptions,
    member_urls: &[String],
    recorder: &WatchRecorder,
    trace: &Trace,
) -> Vec<(NodeHandle, madsim::task::JoinHandle<()>)> {
    let watchers = 1 + (options.seed % 2) as u32;
    (0..watchers)
        .map(|watcher| {
            let node = Handle::current()
                .create_node()
                .name(format!("watcher{watcher}"))
                .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 3, watcher as u8 + 1)))
                .build();
            let task = node.spawn(watch_loop(
                watcher,
                options.seed,
                member_urls.to_vec(),
                recorder.clone(),
                trace.clone(),
            ));
            (node, task)
        })
        .collect()
}

/// How one stream ended.
enum StreamOutcome {
    /// Error or hang: resume from the next revision.
    Broken,
    /// Canceled for compaction: start a new session from now.
    Compacted,
    /// This session ran its course: start a new one from an earlier revision.
    Done,
}

async fn watch_loop(
    watcher: u32,
    seed: u64,
    member_urls: Vec<String>,
    recorder: WatchRecorder,
    trace: Trace,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(watcher) << 36) ^ 0x3a7c4);
    let mut breadth_rng = StdRng::seed_from_u64(seed ^ (u64::from(watcher) << 36) ^ 0xb7ead);
    let mut breadth = Breadth::draw(&mut breadth_rng);
    let name = format!("watcher{watcher}");
    let mut session = 0;
    // The highest revision this watcher saw, over all sessions.
    let mut highest = 0;
    // Where the current session continues from (0: from now on).
    let mut next = 0;
    let mut prev_kv = rng.random_bool(0.5);
    let mut session_end = madsim::time::Instant::now() + random_session(&mut rng);
    loop {
        let url = member_urls[rng.random_range(0..member_urls.len())].clone();
        let index = recorder.push(WatchRecord {
            watcher,
            session,
            opened_ns: now_ns(),
            start_revision: next,
            prev_kv,
            range_end: breadth.range_end.to_string(),
            no_put: breadth.no_put,
            no_delete: breadth.no_delete,
            progress_notify: breadth.progress_notify,
            created_revision: None,
            responses: Vec::new(),
            compacted: None,
            ended: None,
        });
        let outcome =
            watch_once(&url, next, prev_kv, &breadth, session_end, &recorder, index).await;
        let record = recorder.get(index);
        // A progress response at R says every event up to R was sent: resume after R, as an
        // etcd client does.
        let seen = record
            .responses
            .iter()
            .rev()
            .find_map(|response| match response {
                WatchResponseRecord {
                    progress: true,
                    header_revision,
                    ..
                } => Some(*header_revision),
                _ => response.events.last().map(|event| event.revision),
            });
        if let Some(last) = seen {
            next = next.max(last + 1);
            highest = highest.max(last);
        }
        match outcome {
            StreamOutcome::Broken => {
                if next == 0 {
                    // Nothing seen yet on a watch from "now": a resume would miss what happened
                    // meanwhile, so start from the revision the broken watch was created at.
                    if let Some(created) = record.created_revision {
                        next = created + 1;
                    }
                }
                madsim::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
                continue;
            }
            StreamOutcome::Compacted => {
                trace.record("watch", &name, format!("session {session} compacted"));
                next = 0;
            }
            StreamOutcome::Done => {
                // A new session from an earlier revision, as a client catching up would.
                next = (highest - rng.random_range(0..10)).max(1);
                if highest == 0 || rng.random_bool(0.3) {
                    next = 0;
                }
            }
        }
        session += 1;
        prev_kv = rng.random_bool(0.5);
        breadth = Breadth::draw(&mut breadth_rng);
        session_end = madsim::time::Instant::now() + random_session(&mut rng);
    }
}

fn random_session(rng: &mut StdRng) -> Duration {
    Duration::from_millis(rng.random_range(1_000..8_000))
}

async fn watch_once(
    url: &str,
    start_revision: i64,
    prev_kv: bool,
    breadth: &Breadth,
    session_end: madsim::time::Instant,
    recorder: &WatchRecorder,
    index: usize,
) -> StreamOutcome {
    let connect = madsim::time::timeout(
        Duration::from_secs(5),
        WatchClient::connect(url.to_string()),
    );
    let mut client = match connect.await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => return broken(recorder, index, error.to_string()),
        Err(_) => return broken(recorder, index, "connect timeout".to_string()),
    };
    let filters = [
        (breadth.no_put, FilterType::Noput),
        (breadth.no_delete, FilterType::Nodelete),
    ]
    .into_iter()
    .filter_map(|(on, filter)| on.then_some(filter as i32))
    .collect();
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: WATCH_KEY.into(),
            range_end: breadth.range_end.into(),
            start_revision,
            prev_kv,
            filters,
            progress_notify: breadth.progress_notify,
            ..Default::default()
        })),
    };
    // The request side stays open (closing it would end the watch), sending progress requests.
    let progress_requests =
        futures::stream::unfold(breadth.progress_requests, |every| async move {
            match every {
                Some(every) => madsim::time::sleep(every).await,
                None => std::future::pending().await,
            }
            let request = WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
            };
            Some((request, every))
        });
    let requests = futures::stream::iter([create]).chain(progress_requests);
    let call = madsim::time::timeout(Duration::from_secs(5), client.watch(requests));
    let mut responses = match call.await {
        Ok(Ok(responses)) => responses.into_inner(),
        Ok(Err(status)) => return broken(recorder, index, status.to_string()),
        Err(_) => return broken(recorder, index, "watch timeout".to_string()),
    };
    loop {
        let response = match madsim::time::timeout(
            session_end.saturating_duration_since(madsim::time::Instant::now()),
            responses.next(),
        )
        .await
        {
            Err(_) => return StreamOutcome::Done,
            Ok(None) => return broken(recorder, index, "stream ended".to_string()),
            Ok(Some(Err(status))) => return broken(recorder, index, status.to_string()),
            Ok(Some(Ok(response))) => response,
        };
        let header_revision = response.header.as_ref().map_or(0, |h| h.revision);
        if response.created {
            recorder.update(index, |r| r.created_revision = Some(header_revision));
        }
        if response.compact_revision != 0 {
            recorder.update(index, |r| r.compacted = Some(response.compact_revision));
            return StreamOutcome::Compacted;
        }
        if response.canceled {
            return broken(recorder, index, response.cancel_reason);
        }
        if response.events.is_empty() {
            if !response.created {
                let progress = WatchResponseRecord {
                    received_ns: now_ns(),
                    header_revision,
                    events: Vec::new(),
                    progress: true,
                };
                recorder.update(index, |r| r.responses.push(progress));
            }
            continue;
        }
        let events = response
            .events
            .iter()
            .map(|event| {
                let kv = event.kv.clone().unwrap_or_default();
                WatchEvent {
                    delete: event.r#type() == EventType::Delete,
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    value: String::from_utf8_lossy(&kv.value).into_owned(),
                    revision: kv.mod_revision,
                    prev: event.prev_kv.as_ref().map(|prev| Versioned {
                        value: String::from_utf8_lossy(&prev.value).into_owned(),
                        mod_revision: prev.mod_revision,
                    }),
                }
            })
            .collect();
        let received = WatchResponseRecord {
            received_ns: now_ns(),
            header_revision,
            events,
            progress: false,
        };
        recorder.update(index, |r| r.responses.push(received));
    }
}

fn broken(recorder: &WatchRecorder, index: usize, error: String) -> StreamOutcome {
    recorder.update(index, |r| r.ended = Some(error));
    StreamOutcome::Broken
}
