//! Limits under abuse, on real sockets: a flood of watches, oversized requests, a txn over the op
//! limit, a watch stream that is never read while writes go on, and a burst of proposals. Each
//! gets etcd's error and gRPC code or is served; the node keeps serving, its memory stays bounded
//! (it prints its RSS), and the data written before the flood is intact.
#![cfg(not(madsim))]

mod common;

use std::time::Duration;

use common::Node;
use etcd_client::{
    Client, GetOptions, Txn, TxnOp, WatchOptions, WatchResponse, WatchStream, Watcher,
};
use tonic::Code;

/// Watches the flooded node allows per stream and in all.
const WATCHERS_PER_STREAM: usize = 2000;
const WATCHERS: usize = 3000;
/// Proposals it lets wait for their apply at once.
const PENDING_PROPOSALS: usize = 64;

/// Watches on the stream that is never read, each covering every flood write.
const UNREAD_WATCHERS: usize = WATCHERS - WATCHERS_PER_STREAM;
const FLOOD_PUTS: usize = 2000;
const FLOOD_VALUE_BYTES: usize = 4096;

/// Growth of the node's RSS the flood may cause. Measured (debug build, Dec 2026): +30 MiB, most
/// of it the store, which keeps the flood's 8 MiB of values and their revisions. Were the unread
/// stream's events buffered instead of left in the store for its watchers to catch up from, they
/// would take UNREAD_WATCHERS x FLOOD_PUTS x FLOOD_VALUE_BYTES = 8 GB. Checked by planting that
/// (the stream's response queue made 2^24 long instead of 16): with only 150 flood puts, the
/// node grew by 418 MiB and this bound failed.
const RSS_GROWTH_MAX_KIB: u64 = 256 * 1024;

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("/proc/<pid>/status has VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn status_of(error: etcd_client::Error) -> tonic::Status {
    match error {
        etcd_client::Error::GRpcStatus(status) => status,
        other => panic!("expected a gRPC status, got {other}"),
    }
}

fn is_too_many_requests(status: &tonic::Status) -> bool {
    status.code() == Code::ResourceExhausted && status.message() == "etcdserver: too many requests"
}

/// A flood write, tried again while the node answers that it is overloaded: on a starved CPU
/// (CI, parallel tests) a put can time out (etcd's `request timed out`; it may still apply, and
/// putting the same value again is harmless). Any other answer fails the test.
async fn put_while_overloaded(kv: &mut etcd_client::KvClient, key: String, value: &[u8]) {
    const TRIES_MAX: usize = 5;
    for tries in 1.. {
        let Err(error) = kv.put(key.clone(), value.to_vec(), None).await else {
            return;
        };
        let status = status_of(error);
        let overloaded =
            status.message() == "etcdserver: request timed out" || is_too_many_requests(&status);
        assert!(overloaded && tries < TRIES_MAX, "{key}: {status:?}");
    }
}

async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("a watch response in time")
        .unwrap()
        .expect("the stream is open")
}

/// Watches created on one stream, and refused; the stream stays open while this lives.
struct Watches {
    created: usize,
    refused: usize,
    _stream: (Watcher, WatchStream),
}

/// Creates `count` watches on one stream, on keys nobody writes.
async fn open_watches(client: &mut Client, count: usize) -> Watches {
    let (mut watcher, mut stream) = client.watch("idle/0", None).await.unwrap();
    // `watch` read the first answer: a refused create has no id.
    let first_created = watcher.watch_id() != -1;
    let (mut created, mut refused) = (usize::from(first_created), usize::from(!first_created));
    for i in 1..count {
        watcher.watch(format!("idle/{i}"), None).await.unwrap();
    }
    while created + refused < count {
        let response = next(&mut stream).await;
        assert!(response.created(), "only creates were asked for");
        if response.canceled() {
            assert_eq!(response.cancel_reason(), "etcdserver: too many requests");
            assert_eq!(response.watch_id(), -1);
            refused += 1;
        } else {
            created += 1;
        }
    }
    Watches {
        created,
        refused,
        _stream: (watcher, stream),
    }
}

async fn open_watchers(node: &Node) -> usize {
    let (_, body) = common::http_get(node.client_port, "/metrics").unwrap();
    let line = body
        .lines()
        .find(|line| line.starts_with("etcd_debugging_mvcc_watcher_total "))
        .expect("the watcher gauge is exported");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_gets_etcds_errors_and_leaves_the_node_serving_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        &dir.path().join("n1.etcd"),
        &[
            &format!("--experimental-max-watchers-per-stream={WATCHERS_PER_STREAM}"),
            &format!("--experimental-max-watchers={WATCHERS}"),
            &format!("--experimental-max-pending-proposals={PENDING_PROPOSALS}"),
        ],
    );
    let mut client = Client::connect([node.url()], None).await.unwrap();
    for i in 0..100 {
        client
            .put(format!("before/{i:03}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    let rss_before = rss_kib(node.pid());

    // Thousands of watches: one stream takes its maximum, the rest is refused with etcd's error.
    let held = open_watches(&mut client, WATCHERS_PER_STREAM + 500).await;
    assert_eq!((held.created, held.refused), (WATCHERS_PER_STREAM, 500));

    // A stream that is never read, on its own connection, whose watches see every flood write.
    let mut unread_client = Client::connect([node.url()], None).await.unwrap();
    let prefix = WatchOptions::new().with_prefix();
    let (mut unread, unread_stream) = unread_client
        .watch("flood/", Some(prefix.clone()))
        .await
        .unwrap();
    for _ in 1..UNREAD_WATCHERS {
        unread.watch("flood/", Some(prefix.clone())).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while open_watchers(&node).await < WATCHERS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watches not created"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server now holds its maximum: a watch on any stream is refused.
    let over = open_watches(&mut client, 3).await;
    assert_eq!((over.created, over.refused), (0, 3));
    let flood_from = client.get("before/000", None).await.unwrap();
    let flood_from = flood_from.header().unwrap().revision() + 1;

    // Writes while the stream goes unread: its watches fall behind, and the store keeps the events.
    let value = vec![b'x'; FLOOD_VALUE_BYTES];
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (mut kv, value) = (client.kv_client(), value.clone());
            tokio::spawn(async move {
                for i in (w..FLOOD_PUTS).step_by(16) {
                    put_while_overloaded(&mut kv, format!("flood/{i:05}"), &value).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    // Oversized requests: over --max-request-bytes gets etcd's error; over it plus gRPC's
    // overhead, gRPC's own limit refuses it before it is read whole.
    let mut big = client.kv_client().max_encoding_message_size(16 << 20);
    for (bytes, code, text) in [
        (
            1600 * 1024,
            Code::InvalidArgument,
            "etcdserver: request is too large",
        ),
        (
            3 << 20,
            Code::ResourceExhausted,
            "grpc: received message larger than max (",
        ),
    ] {
        let status = status_of(big.put("big", vec![0u8; bytes], None).await.unwrap_err());
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().starts_with(text), "{status:?}");
    }

    // A txn over --max-txn-ops (128).
    let ops: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("txn/{i}"), "v", None))
        .collect();
    let status = status_of(client.txn(Txn::new().and_then(ops)).await.unwrap_err());
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );

    // A burst of proposals well past the waiting bound: each is applied or refused at once.
    let burst: Vec<_> = (0..2000)
        .map(|i| {
            let mut kv = client.kv_client();
            tokio::spawn(async move { kv.put(format!("burst/{i:04}"), "v", None).await })
        })
        .collect();
    let (mut applied, mut too_many) = (0, 0);
    for put in burst {
        match put.await.unwrap() {
            Ok(_) => applied += 1,
            Err(error) => {
                let status = status_of(error);
                assert!(is_too_many_requests(&status), "{status:?}");
                too_many += 1;
            }
        }
    }
    println!("burst of 2000 puts: {applied} applied, {too_many} refused (too many requests)");
    assert!(applied >= PENDING_PROPOSALS && too_many > 0);

    // Still serving, with everything written before the flood intact.
    let rss_after = rss_kib(node.pid());
    client.put("after", "ok", None).await.unwrap();
    let before = client
        .get("before/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    let values: Vec<String> = before
        .kvs()
        .iter()
        .map(|kv| format!("{}={}", kv.key_str().unwrap(), kv.value_str().unwrap()))
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("before/{i:03}=v{i}")).collect();
    assert_eq!(values, expected);
    let flood = client
        .get(
            "flood/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(flood.count(), FLOOD_PUTS as i64);

    println!(
        "detcd RSS: {} KiB before the flood, {} KiB after ({:+} KiB)",
        rss_before,
        rss_after,
        rss_after as i64 - rss_before as i64
    );
    assert!(
        rss_after < rss_before + RSS_GROWTH_MAX_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // The unread stream, once read, resumes from where it fell behind: the first flood write.
    let mut unread_stream = unread_stream;
    let first = loop {
        let response = next(&mut unread_stream).await;
        if let Some(event) = response.events().first() {
            break event.kv().unwrap().mod_revision();
        }
    };
    assert_eq!(first, flood_from);
    drop((unread, held, over));
}

/// `--max-concurrent-streams`: a connection holding its maximum of streams waits for one to end
/// before it opens another; other connections are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_opens_at_most_max_concurrent_streams() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n1.etcd"), &["--max-concurrent-streams=2"]);
    let mut client = Client::connect([node.url()], None).await.unwrap();
    let first = client.watch("a", None).await.unwrap();
    let _second = client.watch("b", None).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_secs(1), client.put("k", "v", None)).await;
    assert!(waiting.is_err(), "a third stream opened: {waiting:?}");

    let mut other = Client::connect([node.url()], None).await.unwrap();
    other.put("k", "other", None).await.unwrap();

    drop(first);
    let put = tokio::time::timeout(Duration::from_secs(10), client.put("k", "v", None)).await;
    assert!(put.expect("the stream ended frees a place").is_ok());
}
