//! Watch against etcd 3.4: the same watches and writes against the real etcd (Debian's
//! `etcd-server`) and against detcd must be seen the same way, by `etcdctl watch` and by the
//! `etcd-client` crate.
#![cfg(not(madsim))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{etcdctl_with_stdin, stdout, Node};
use etcd_client::{
    Client, EventType, Txn, TxnOp, WatchFilterType, WatchOptions, WatchResponse, WatchStream,
    Watcher,
};

/// `etcdctl watch` commands that run in the background while `WRITES` happen. Each starts at
/// revision 2 (the first write), so its output does not depend on when it connected.
const WATCHES: &[&[&str]] = &[
    &["watch", "foo", "--rev=2"],
    &["watch", "foo", "--prefix", "--rev=2"],
    &["watch", "foo", "--prefix", "--prev-kv", "--rev=2"],
    &["watch", "foo", "foo3", "--rev=2"],
    &["watch", "zoo", "--rev=4", "--prev-kv"],
    &["watch", "", "--prefix", "--rev=2"],
];

/// etcdctl calls made while the watches run: puts, deletes, and txns that write several keys
/// in one revision.
const WRITES: &[(&[&str], &str)] = &[
    (&["put", "foo", "1"], ""),
    (&["put", "foo2", "a"], ""),
    (&["put", "fop", "x"], ""),
    (&["put", "zoo", "z"], ""),
    (&["put", "foo", "2"], ""),
    (&["del", "foo2"], ""),
    (&["txn"], "\nput foo3 t\nput zoo zz\nput foo 3\n\n\n"),
    (&["del", "fo", "--prefix"], ""),
    (&["put", "foo", "4"], ""),
    (&["del", "nothing"], ""),
];

/// One `etcdctl watch` running in the background, its output going to a file.
struct BackgroundWatch {
    child: Child,
    output: PathBuf,
}

impl BackgroundWatch {
    fn start(endpoint: &str, args: &[&str], output: PathBuf) -> BackgroundWatch {
        let file = std::fs::File::create(&output).unwrap();
        let child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl is installed (apt-get install etcd-client)");
        BackgroundWatch { child, output }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for BackgroundWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_watches(node: &Node, dir: &Path) -> Vec<BackgroundWatch> {
    std::fs::create_dir_all(dir).unwrap();
    WATCHES
        .iter()
        .enumerate()
        .map(|(i, args)| {
            BackgroundWatch::start(&node.endpoint(), args, dir.join(format!("{i}.out")))
        })
        .collect()
}

fn write_all(node: &Node) {
    for (args, stdin) in WRITES {
        stdout(&etcdctl_with_stdin(&node.endpoint(), args, stdin));
    }
}

/// Waits until every watch printed what `expected` holds, or the deadline passes: the outputs.
fn outputs_once_settled(watches: &[BackgroundWatch], expected: Option<&[String]>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outputs: Vec<String> = watches.iter().map(BackgroundWatch::output).collect();
        let done = match expected {
            Some(expected) => outputs == expected,
            None => false,
        };
        if done || Instant::now() > deadline {
            return outputs;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn etcdctl_watch_prints_the_same_for_detcd_as_for_etcd_3_4() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Node::start_real_etcd(&dir.path().join("etcd"));
    let watches = start_watches(&etcd, &dir.path().join("etcd-out"));
    write_all(&etcd);
    // etcd's outputs are the reference: give them time to be complete.
    std::thread::sleep(Duration::from_secs(2));
    let expected = outputs_once_settled(&watches, None);
    let compacted = etcdctl_with_stdin(&etcd.endpoint(), &["compaction", "5"], "");
    let after_compaction = etcdctl_with_stdin(&etcd.endpoint(), &["watch", "foo", "--rev=3"], "");
    drop(watches);
    drop(etcd);
    assert!(
        expected.iter().all(|output| !output.is_empty()),
        "etcd printed {expected:?}"
    );

    let detcd = Node::start(&dir.path().join("detcd"), &[]);
    let watches = start_watches(&detcd, &dir.path().join("detcd-out"));
    write_all(&detcd);
    let actual = outputs_once_settled(&watches, Some(&expected));
    for ((args, expected), actual) in WATCHES.iter().zip(&expected).zip(&actual) {
        assert_eq!(expected, actual, "etcdctl {}", args.join(" "));
    }
    let detcd_compacted = etcdctl_with_stdin(&detcd.endpoint(), &["compaction", "5"], "");
    assert_eq!(detcd_compacted.stdout, compacted.stdout);
    let detcd_after = etcdctl_with_stdin(&detcd.endpoint(), &["watch", "foo", "--rev=3"], "");
    assert_eq!(detcd_after.status.code(), after_compaction.status.code());
    assert_eq!(
        String::from_utf8_lossy(&detcd_after.stdout),
        String::from_utf8_lossy(&after_compaction.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&detcd_after.stderr),
        String::from_utf8_lossy(&after_compaction.stderr)
    );
}

/// A response as a line of text: what a client can observe, without the ids that differ by
/// nature between clusters.
fn describe(response: &WatchResponse) -> String {
    let header = response.header().map_or(-1, |h| h.revision());
    let events: Vec<String> = response
        .events()
        .iter()
        .map(|event| {
            let kv = event.kv().unwrap();
            let kind = match event.event_type() {
                EventType::Put => "PUT",
                EventType::Delete => "DELETE",
            };
            let prev = event
                .prev_kv()
                .map(|prev| {
                    format!(
                        " prev={}@{}",
                        prev.value_str().unwrap(),
                        prev.mod_revision()
                    )
                })
                .unwrap_or_default();
            format!(
                "{kind} {}={}@{} v{}{prev}",
                kv.key_str().unwrap(),
                kv.value_str().unwrap(),
                kv.mod_revision(),
                kv.version()
            )
        })
        .collect();
    format!(
        "id={} rev={header} created={} canceled={} compact={} reason={:?} events=[{}]",
        response.watch_id(),
        response.created(),
        response.canceled(),
        response.compact_revision(),
        response.cancel_reason(),
        events.join(", ")
    )
}

/// Every response that arrives until the stream is quiet, grouped by watch id (the order across
/// watches is not specified; the order within one is).
async fn drain(stream: &mut WatchStream) -> Vec<String> {
    let mut responses = Vec::new();
    while let Ok(response) =
        tokio::time::timeout(Duration::from_millis(400), stream.message()).await
    {
        responses.push(response.unwrap().expect("the stream stays open"));
    }
    responses.sort_by_key(WatchResponse::watch_id);
    responses.iter().map(describe).collect()
}

/// One scripted session on one watch stream; the transcript of what came back after each step.
async fn watch_session(endpoint: String) -> Vec<String> {
    let mut client = Client::connect([endpoint], None).await.unwrap();
    let (mut watcher, mut stream): (Watcher, WatchStream) = client
        .watch("a", Some(WatchOptions::new().with_prev_key()))
        .await
        .unwrap();
    let mut transcript = vec![format!("first watch id {}", watcher.watch_id())];
    let mut step = |name: &str, responses: Vec<String>| {
        transcript.push(format!("# {name}"));
        transcript.extend(responses);
    };
    watcher
        .watch(
            "b",
            Some(WatchOptions::new().with_prefix().with_watch_id(10)),
        )
        .await
        .unwrap();
    watcher
        .watch("c", Some(WatchOptions::new().with_watch_id(10)))
        .await
        .unwrap();
    watcher
        .watch("z", Some(WatchOptions::new().with_range("a")))
        .await
        .unwrap();
    watcher
        .watch(
            "",
            Some(
                WatchOptions::new()
                    .with_all_keys()
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .unwrap();
    step(
        "create: prefix with id 10, duplicate id 10, empty range, auto id",
        drain(&mut stream).await,
    );

    client.put("a", "1", None).await.unwrap();
    step("put a", drain(&mut stream).await);
    client.put("b1", "x", None).await.unwrap();
    client.put("a", "2", None).await.unwrap();
    step("put b1, put a", drain(&mut stream).await);
    client
        .txn(Txn::new().and_then([
            TxnOp::put("a", "3", None),
            TxnOp::put("b2", "y", None),
            TxnOp::delete("b1", None),
        ]))
        .await
        .unwrap();
    step(
        "txn writing a, b2 and deleting b1",
        drain(&mut stream).await,
    );

    watcher.request_progress().await.unwrap();
    step("progress", drain(&mut stream).await);
    watcher.cancel_by_id(0).await.unwrap();
    watcher.cancel_by_id(99).await.unwrap();
    step("cancel 0, cancel unknown 99", drain(&mut stream).await);
    client.put("a", "4", None).await.unwrap();
    step(
        "put a after its watch was canceled",
        drain(&mut stream).await,
    );

    watcher
        .watch(
            "",
            Some(WatchOptions::new().with_all_keys().with_start_revision(3)),
        )
        .await
        .unwrap();
    step("all keys from revision 3", drain(&mut stream).await);
    watcher
        .watch(
            "a",
            Some(WatchOptions::new().with_start_revision(100).with_prev_key()),
        )
        .await
        .unwrap();
    step("a from a future revision", drain(&mut stream).await);

    client.compact(5, None).await.unwrap();
    watcher
        .watch("a", Some(WatchOptions::new().with_start_revision(4)))
        .await
        .unwrap();
    watcher
        .watch("a", Some(WatchOptions::new().with_start_revision(5)))
        .await
        .unwrap();
    step(
        "after compaction at 5: a from 4, a from 5",
        drain(&mut stream).await,
    );
    transcript
}

#[tokio::test]
async fn an_etcd_client_watch_stream_sees_what_it_sees_on_etcd_3_4() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Node::start_real_etcd(&dir.path().join("etcd"));
    let expected = watch_session(etcd.url()).await;
    drop(etcd);
    let detcd = Node::start(&dir.path().join("detcd"), &[]);
    let actual = watch_session(detcd.url()).await;
    assert_eq!(expected.join("\n"), actual.join("\n"));
}

/// Progress notifications and fragments: a session on a server started with `flags`.
async fn progress_and_fragment_session(endpoint: String) -> Vec<String> {
    let mut client = Client::connect([endpoint], None).await.unwrap();
    let (mut watcher, mut stream) = client
        .watch("idle", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    watcher.watch("quiet", None).await.unwrap();
    let mut transcript = drain(&mut stream).await;
    client.put("other", "x", None).await.unwrap();
    // The interval is 1s: within 2.5s the idle watch hears the revision once or twice, the
    // watch that did not ask for it never.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2500);
    let mut notified = Vec::new();
    while let Ok(response) = tokio::time::timeout_at(deadline, stream.message()).await {
        notified.push(describe(&response.unwrap().unwrap()));
    }
    notified.dedup();
    transcript.push("# progress notifications".into());
    transcript.extend(notified);

    let value = "v".repeat(400 * 1024);
    for _ in 0..6 {
        client.put("big", value.as_str(), None).await.unwrap();
    }
    let mut sizes = Vec::new();
    for fragment in [false, true] {
        let mut options = WatchOptions::new().with_start_revision(3);
        if fragment {
            options = options.with_fragment();
        }
        let (_watcher, mut stream) = client
            .watch_client()
            .watch("big", Some(options))
            .await
            .unwrap();
        let mut counts = Vec::new();
        while counts.iter().sum::<usize>() < 6 {
            let response = stream.message().await.unwrap().unwrap();
            counts.push(response.events().len());
        }
        sizes.push(format!(
            "fragment={fragment}: events per response {counts:?}"
        ));
    }
    transcript.push("# six 400 KiB puts, replayed".into());
    transcript.extend(sizes);
    transcript
}

#[tokio::test]
async fn progress_notifications_and_fragments_are_etcd_3_4s() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--experimental-watch-progress-notify-interval=1s"];
    let etcd = Node::start_real_etcd_with(&dir.path().join("etcd"), &flags);
    let expected = progress_and_fragment_session(etcd.url()).await;
    drop(etcd);
    let detcd = Node::start(&dir.path().join("detcd"), &flags);
    let actual = progress_and_fragment_session(detcd.url()).await;
    assert_eq!(expected.join("\n"), actual.join("\n"));
    assert!(
        expected.iter().any(|line| line.starts_with("id=0 rev=2")),
        "{expected:?}"
    );
}
