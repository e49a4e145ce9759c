//! The `watch` workload: 1–2 watcher nodes watch the kv workload's key space (`k`… keys) while it
//! runs, as etcd clients do: some watches start from an earlier revision, some ask for `prev_kv`,
//! and after an error a watcher reconnects (maybe to another member) and resumes from the last
//! revision it saw + 1. Every response with events is recorded for `watch_guarantees`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use detcd::pb::etcdserverpb::watch_client::WatchClient;
use detcd::pb::etcdserverpb::watch_request::RequestUnion;
use detcd::pb::etcdserverpb::{WatchCreateRequest, WatchRequest};
use detcd::pb::mvccpb::event::EventType;
use futures::StreamExt;
use madsim::runtime::{Handle, NodeHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Versioned, WatchEvent, WatchRecord, WatchResponseRecord};
use crate::options::SwarmOptions;
use crate::recorded::Recorded;
use crate::trace::{now_ns, Trace};

/// The watched range: every key of the kv workload (`k0`…), nothing else (`lease/…`, `liveness`).
pub const WATCH_KEY: &str = "k";
pub const WATCH_RANGE_END: &str = "l";

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
            created_revision: None,
            responses: Vec::new(),
            compacted: None,
            ended: None,
        });
        let outcome = watch_once(&url, next, prev_kv, session_end, &recorder, index).await;
        let record = recorder.get(index);
        if let Some(last) = record
            .responses
            .last()
            .and_then(|response| response.events.last())
        {
            next = last.revision + 1;
            highest = highest.max(last.revision);
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
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: WATCH_KEY.into(),
            range_end: WATCH_RANGE_END.into(),
            start_revision,
            prev_kv,
            ..Default::default()
        })),
    };
    // The request side stays open: closing it would end the watch.
    let requests = futures::stream::iter([create]).chain(futures::stream::pending());
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
        };
        recorder.update(index, |r| r.responses.push(received));
    }
}

fn broken(recorder: &WatchRecorder, index: usize, error: String) -> StreamOutcome {
    recorder.update(index, |r| r.ended = Some(error));
    StreamOutcome::Broken
}
