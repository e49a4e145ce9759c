//! Watch inside madsim: a slow watch stream next to racing writers still gets every revision
//! once, in order, each revision in one response, and progress only after the events it covers.
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test --test sim_watch`.
#![cfg(madsim)]

mod sim_common;

use sim_common::{start_node, NODE_ADDR};

use std::collections::BTreeMap;
use std::time::Duration;

use detcd::io::SimDisk;
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::request_op::Request as Op;
use detcd::pb::etcdserverpb::watch_client::WatchClient;
use detcd::pb::etcdserverpb::watch_request::RequestUnion;
use detcd::pb::etcdserverpb::{
    PutRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
};
use madsim::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const WRITERS: usize = 3;
const WRITES_PER_WRITER: usize = 30;

async fn kv_client() -> KvClient<tonic::transport::Channel> {
    for _ in 0..100 {
        if let Ok(client) = KvClient::connect(format!("http://{NODE_ADDR}")).await {
            return client;
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the node never accepted a connection");
}

/// Puts (and, every fifth write, a txn of three puts: one revision, three events) until done.
async fn write(writer: usize) {
    let mut client = kv_client().await;
    for i in 0..WRITES_PER_WRITER {
        let put = |n: usize| PutRequest {
            key: format!("k{writer}-{n}").into_bytes(),
            value: format!("{i}").into_bytes(),
            ..Default::default()
        };
        loop {
            let result = if i % 5 == 0 {
                let success = (0..3)
                    .map(|n| RequestOp {
                        request: Some(Op::RequestPut(put(n))),
                    })
                    .collect();
                client
                    .txn(TxnRequest {
                        success,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            } else {
                client.put(put(i % 4)).await.map(drop)
            };
            match result {
                Ok(()) => break,
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    madsim::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("write failed: {status}"),
            }
        }
    }
}

/// What one watch received: the revisions of its events, per response.
#[derive(Debug, Default)]
struct Seen {
    created_revision: i64,
    responses: Vec<Vec<i64>>,
    /// Progress notifications: (header revision, last event revision received before it).
    progress: Vec<(i64, i64)>,
}

impl Seen {
    fn last(&self) -> i64 {
        self.responses
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(self.created_revision)
    }
}

fn create(key: &[u8], range_end: &[u8], start_revision: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            start_revision,
            progress_notify: true,
            ..Default::default()
        })),
    }
}

#[madsim::test]
async fn a_slow_watch_gets_every_revision_once_in_order_while_writers_race() {
    let handle = Handle::current();
    let _node = start_node(&handle, SimDisk::new(handle.seed()), |config| {
        config.watch_progress_notify_interval = Duration::from_millis(200);
    });
    let client_node = handle
        .create_node()
        .name("client")
        .ip("10.0.0.100".parse().unwrap())
        .build();
    let (seen, last_revision, progress_revision) = client_node
        .spawn(async move {
            let mut kv = kv_client().await;
            // Wait until the node serves writes, so the first watch starts after revision 2.
            write(WRITERS).await;
            let (requests, queued) = mpsc::channel(8);
            let mut watch = WatchClient::connect(format!("http://{NODE_ADDR}"))
                .await
                .unwrap();
            requests.send(create(b"k", b"\0", 0)).await.unwrap();
            let mut responses = watch
                .watch(ReceiverStream::new(queued))
                .await
                .unwrap()
                .into_inner();
            let writers: Vec<_> = (0..WRITERS)
                .map(|writer| madsim::task::spawn(write(writer)))
                .collect();
            madsim::time::sleep(Duration::from_millis(300)).await;
            // A second watch, replaying from the first write, joins while writes go on.
            requests.send(create(b"\0", b"\0", 2)).await.unwrap();
            for writer in writers {
                writer.await.unwrap();
            }
            let last_revision = kv
                .range(detcd::pb::etcdserverpb::RangeRequest {
                    key: b"k".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .header
                .unwrap()
                .revision;

            let mut seen: BTreeMap<i64, Seen> = BTreeMap::new();
            let mut progress_revision = None;
            while progress_revision.is_none() {
                // A slow reader: the server must buffer boundedly and catch up from history.
                madsim::time::sleep(Duration::from_millis(5)).await;
                let response = responses.message().await.unwrap().expect("stream open");
                let revision = response.header.as_ref().unwrap().revision;
                if response.watch_id == -1 {
                    progress_revision = Some(revision);
                    continue;
                }
                let watch = seen.entry(response.watch_id).or_default();
                if response.created {
                    watch.created_revision = revision;
                } else if response.events.is_empty() {
                    let last = watch.last();
                    watch.progress.push((revision, last));
                } else {
                    let revisions = response
                        .events
                        .iter()
                        .map(|e| e.kv.as_ref().unwrap().mod_revision)
                        .collect();
                    watch.responses.push(revisions);
                }
                if seen.len() == 2 && seen.values().all(|w| w.last() == last_revision) {
                    requests
                        .send(WatchRequest {
                            request_union: Some(RequestUnion::ProgressRequest(
                                WatchProgressRequest {},
                            )),
                        })
                        .await
                        .unwrap();
                }
            }
            (seen, last_revision, progress_revision.unwrap())
        })
        .await
        .unwrap();

    assert_eq!(progress_revision, last_revision);
    let expected_revisions = (WRITERS + 1) * WRITES_PER_WRITER;
    assert_eq!(last_revision, 1 + expected_revisions as i64);
    for (id, watch) in &seen {
        let first = if *id == 0 {
            watch.created_revision + 1
        } else {
            2
        };
        let mut revisions: Vec<i64> = Vec::new();
        for response in &watch.responses {
            // Atomic per revision: a response never starts inside a revision already seen.
            assert!(
                revisions.last().is_none_or(|last| response[0] > *last),
                "watch {id}: response {response:?} after revision {:?}",
                revisions.last()
            );
            revisions.extend(response);
        }
        revisions.dedup();
        assert_eq!(
            revisions,
            (first..=last_revision).collect::<Vec<_>>(),
            "watch {id}: every revision once, in order"
        );
        for (revision, last_before) in &watch.progress {
            assert!(
                revision <= last_before,
                "watch {id}: progress at {revision} before the events up to it (last {last_before})"
            );
        }
    }
}
