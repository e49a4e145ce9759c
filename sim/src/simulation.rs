//! One seed, start to verdict (TigerBeetle's VOPR `main`): draw the swarm options, start the
//! cluster and the clients inside a fresh madsim runtime, inject faults while the workload runs
//! (safety phase), heal everything and demand progress within a bound (liveness phase), read back
//! what the checkers need, then run the checkers.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Once;
use std::time::{Duration, Instant};

use madsim::runtime::{Handle, Runtime};
use serde::{Deserialize, Serialize};

use crate::checkers::acknowledged_writes::CHECKER_CLIENT;
use crate::checkers::{self, Class, Findings};
use crate::client::Client;
use crate::cluster::{Cluster, Member};
use crate::coverage::{self, Coverage};
use crate::faults::Faults;
use crate::history::{History, Input, Output, ReplicaState, RevisionRead};
use crate::options::SwarmOptions;
use crate::schedule::{Schedule, ScheduleBook};
use crate::trace::{self, Event, Trace};
use crate::workload::{Recorder, Workload};

/// Client id of the periodic compactor, when it records its compactions.
pub const COMPACTOR_CLIENT: u32 = u32::MAX - 1;

/// After heal, a write must succeed and the replicas must agree within this much simulated time.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(60);

/// A run that takes longer than this in simulated time is stuck.
const SIMULATED_TIME_MAX: Duration = Duration::from_secs(3_600);

/// How one seed ended; the order is the exit code's priority (see `cli`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Liveness,
    /// A member (or the simulator) panicked outside an armed failpoint.
    Crash,
    Correctness,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Liveness => "liveness",
            Verdict::Crash => "crash",
            Verdict::Correctness => "correctness",
        }
    }
}

/// Everything one seed produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedRun {
    pub options: SwarmOptions,
    pub history: History,
    pub trace: Vec<Event>,
    /// The panic that ended the run, if one did.
    pub panic: Option<String>,
    pub findings: Findings,
    pub verdict: Verdict,
    pub simulated: Duration,
    pub wall: Duration,
    pub trace_hash: u64,
    /// The failpoints and fault kinds this seed reached.
    #[serde(default)]
    pub coverage: Coverage,
    /// The faults that ran: drawn from the seed, or the given schedule's (those that started).
    #[serde(default)]
    pub schedule: Schedule,
}

thread_local! {
    /// The message of the last panic on this thread while a run is in progress.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static IN_RUN: RefCell<bool> = const { RefCell::new(false) };
}

/// Panics inside a run are data (failpoint crashes, or a crash to report), not noise: keep the
/// message, print nothing. Outside a run, the default hook prints as usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_RUN.with(|in_run| *in_run.borrow()) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "<non-string panic>".to_string());
                PANIC.with(|panic| *panic.borrow_mut() = Some(format!("{message}{location}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs one seed with the given options and checks it.
///
/// Each run gets a fresh thread: madsim seeds std's `HashMap` keys from the seed only for the
/// first `RandomState` a thread creates, and every later one derives from those keys, so a second
/// run on the same thread would iterate maps in an order that depends on the runs before it.
pub fn run(options: &SwarmOptions) -> SeedRun {
    let options = options.clone();
    std::thread::Builder::new()
        .name(format!("seed-{:#x}", options.seed))
        .stack_size(16 << 20)
        .spawn(move || run_on_this_thread(&options))
        .expect("a thread for the run")
        .join()
        .expect("a run reports panics as its verdict")
}

fn run_on_this_thread(options: &SwarmOptions) -> SeedRun {
    install_panic_hook();
    set_bugs(&options.bugs);
    let started = Instant::now();
    let mut runtime = Runtime::with_seed_and_config(options.seed, madsim::Config::default());
    runtime.set_time_limit(SIMULATED_TIME_MAX);
    let trace = Trace::default();
    let recorder = Recorder::default();
    let book = ScheduleBook::new(options.schedule.as_ref());
    IN_RUN.with(|in_run| *in_run.borrow_mut() = true);
    PANIC.with(|panic| panic.borrow_mut().take());
    coverage::take();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(simulate(
            options.clone(),
            trace.clone(),
            recorder.clone(),
            book.clone(),
        ))
    }));
    drop(runtime);
    IN_RUN.with(|in_run| *in_run.borrow_mut() = false);
    set_bugs(&[]);
    let coverage = coverage::take();
    let events = trace.events();
    let (history, panic, simulated) = match outcome {
        Ok((history, simulated)) => (history, None, simulated),
        Err(_) => {
            let message = PANIC
                .with(|panic| panic.borrow_mut().take())
                .unwrap_or_else(|| "unknown panic".to_string());
            let history = History {
                operations: recorder.operations(),
                ..History::default()
            };
            let simulated = Duration::from_millis(events.last().map_or(0, |e| e.t_ms));
            (history, Some(message), simulated)
        }
    };
    SeedRun {
        coverage,
        schedule: book.ran(),
        ..finish(
            options.clone(),
            history,
            events,
            panic,
            simulated,
            started.elapsed(),
        )
    }
}

/// Checks a finished run and classifies it.
pub fn finish(
    options: SwarmOptions,
    history: History,
    trace: Vec<Event>,
    panic: Option<String>,
    simulated: Duration,
    wall: Duration,
) -> SeedRun {
    let findings = checkers::check_all(&history);
    let verdict = if findings
        .violations
        .iter()
        .any(|v| v.class == Class::Correctness)
    {
        Verdict::Correctness
    } else if let Some(message) = &panic {
        // A hang is a liveness failure, not a crash.
        if message.contains("time limit exceeded") || message.contains("block forever") {
            Verdict::Liveness
        } else {
            Verdict::Crash
        }
    } else if findings.violations.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Liveness
    };
    let trace_hash = fingerprint(&trace, &history);
    SeedRun {
        options,
        history,
        trace,
        panic,
        findings,
        verdict,
        simulated,
        wall,
        trace_hash,
        coverage: Coverage::default(),
        schedule: Schedule::default(),
    }
}

/// The run's fingerprint: its timeline and its history, to the nanosecond.
pub fn fingerprint(events: &[Event], history: &History) -> u64 {
    let timeline = trace::to_json_lines(events);
    let history = serde_json::to_string(history).expect("histories serialize");
    trace::fingerprint([timeline.as_str(), history.as_str()])
}

#[cfg(feature = "sim-bugs")]
fn set_bugs(names: &[String]) {
    let bugs: Vec<detcd::bugs::Bug> = names
        .iter()
        .map(|name| detcd::bugs::Bug::from_name(name).expect("bug names are checked by the CLI"))
        .collect();
    detcd::bugs::enable(&bugs);
}

#[cfg(not(feature = "sim-bugs"))]
fn set_bugs(names: &[String]) {
    assert!(
        names.is_empty(),
        "planted bugs need the sim-bugs feature (the CLI checks this)"
    );
}

async fn simulate(
    options: SwarmOptions,
    trace: Trace,
    recorder: Recorder,
    book: ScheduleBook,
) -> (History, Duration) {
    trace.record(
        "phase",
        "",
        format!("safety: {}", options.describe_options()),
    );
    let cluster = Cluster::start(&options, &trace);
    let urls = cluster.client_urls();
    let workload = Workload::start(&options, &urls, &recorder, &trace);
    let watch_recorder = crate::watchers::WatchRecorder::default();
    let watchers = crate::watchers::start(&options, &urls, &watch_recorder, &trace);
    let lease_recorder = crate::leases::LeaseRecorder::default();
    let leaser = crate::leases::start(&options, &urls, &lease_recorder, &trace);
    // Every client node, so that client-link clogs reach watch and lease streams too.
    let client_ids: Vec<madsim::task::NodeId> = workload
        .nodes
        .iter()
        .chain(watchers.iter().map(|(node, _)| node))
        .chain(std::iter::once(&leaser))
        .map(|node| node.id())
        .collect();
    let observer = Handle::current()
        .create_node()
        .name("observer")
        .ip("10.0.2.1".parse().expect("an ip"))
        .build();
    let leaders = observer.spawn(watch_leaders(urls.clone(), trace.clone()));
    let compactor = options.compaction_interval_ms.map(|interval_ms| {
        observer.spawn(compact_periodically(
            urls.clone(),
            Duration::from_millis(interval_ms),
            trace.clone(),
            options.breadth.then(|| recorder.clone()),
        ))
    });
    let state_hashes = crate::state_hashes::StateHashRecorder::default();
    let auditor = observer.spawn(crate::state_hashes::audit(
        urls.clone(),
        options.seed,
        state_hashes.clone(),
    ));
    let mut faults = Faults::new(
        &cluster,
        client_ids.clone(),
        &options,
        observer.clone(),
        book,
    );
    tokio::select! {
        biased;
        () = workload.finished() => {}
        () = faults.run() => unreachable!("the fault schedule runs until cancelled"),
    }
    if let Some(compactor) = compactor {
        compactor.abort();
    }
    for (_, task) in &watchers {
        task.abort();
    }
    auditor.abort();
    // Killing the node stops the lease client with every task it spawned.
    Handle::current().kill(leaser.id());
    trace.record(
        "phase",
        "",
        "liveness: heal, then a write and equal replicas within the bound",
    );
    faults.heal().await;
    let mut history = observer
        .spawn(check_after_heal(
            urls.clone(),
            recorder.clone(),
            trace.clone(),
        ))
        .await
        .expect("the checks after heal do not panic");
    if history.liveness_failure.is_none() {
        let election_timeout_ms = options.election_timeout_ms;
        let (lease_trace, lease_recorder) = (trace.clone(), lease_recorder.clone());
        history.leases = observer
            .spawn(async move {
                crate::leases::read_after_heal(
                    &urls,
                    &lease_recorder,
                    election_timeout_ms,
                    &lease_trace,
                )
                .await
            })
            .await
            .expect("the lease read after heal does not panic");
    }
    history.watches = watch_recorder.all();
    history.state_hashes = state_hashes.all();
    leaders.abort();
    if !faults.problems.is_empty() {
        let problems = faults.problems.join("; ");
        history.liveness_failure = Some(match history.liveness_failure.take() {
            Some(failure) => format!("{problems}; {failure}"),
            None => problems,
        });
    }
    history.undetected_corruption = faults.undetected_corruption.clone();
    history.operations = recorder.operations();
    trace.record("phase", "", "done");
    let simulated = madsim::time::TimeHandle::current().elapsed();
    let nodes = cluster
        .members
        .iter()
        .map(Member::id)
        .chain(client_ids)
        .chain([observer.id()]);
    stop_every_node(nodes).await;
    (history, simulated)
}

/// Kills every node of the run and lets the executor drop their tasks.
///
/// madsim frees a task only when it runs or is dropped; a runtime that is dropped with tasks still
/// pending leaks them, since a pending task is held by the wakers it left in channels and timers
/// that other pending tasks (or it itself) own. Every run would then leak its whole cluster —
/// servers, raft logs, MVCC stores — and a sweep process grows by megabytes a seed. Killing a node
/// wakes its tasks, and the executor drops a killed node's tasks the next time it runs them.
async fn stop_every_node(nodes: impl Iterator<Item = madsim::task::NodeId>) {
    let handle = Handle::current();
    for node in nodes {
        handle.kill(node);
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
}

/// Traces every change of the leader each member reports.
async fn watch_leaders(urls: Vec<String>, trace: Trace) {
    let mut known = vec![None; urls.len()];
    loop {
        for (i, url) in urls.iter().enumerate() {
            let leader = Client::new(url.clone())
                .status()
                .await
                .ok()
                .map(|status| (status.leader, status.raft_term));
            if let Some((leader, term)) = leader.filter(|seen| Some(*seen) != known[i]) {
                trace.record(
                    "leader",
                    format!("n{}", i + 1),
                    format!("leader {leader:x} term {term}"),
                );
                known[i] = Some((leader, term));
            }
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Compacts a few revisions behind the head, as an operator's auto-compaction would: through the
/// first member, or, recording each compaction in the history (the breadth mix, whose reads at past
/// revisions are checked against the compactions), through each member in turn.
async fn compact_periodically(
    urls: Vec<String>,
    interval: Duration,
    trace: Trace,
    recorder: Option<Recorder>,
) {
    let mut clients: Vec<Client> = urls.iter().cloned().map(Client::new).collect();
    let mut compacted = 0;
    for round in 0.. {
        madsim::time::sleep(interval).await;
        let client = match recorder {
            Some(_) => &mut clients[round % urls.len()],
            None => &mut clients[0],
        };
        let Ok(status) = client.status().await else {
            continue;
        };
        let target = status.header.map_or(0, |h| h.revision) - 5;
        if target <= compacted {
            continue;
        }
        let done = match &recorder {
            None => client.compact(target).await.is_ok(),
            Some(recorder) => {
                // Recorded before the call: the task is aborted when the workload ends, maybe
                // mid-call, and a compaction it sent may still apply (seed 0x262704d: one sent to
                // a member just partitioned away applied elsewhere, and a read refused as
                // compacted looked like a compaction nobody had asked for).
                let input = Input::Compact { revision: target };
                let id = recorder.invoke(COMPACTOR_CLIENT, trace::now_ns(), input.clone());
                let output = client.execute(&input).await;
                let done = matches!(output, Output::Compacted { .. });
                recorder.complete(id, output);
                done
            }
        };
        if done {
            trace.record("compact", "", format!("compacted to revision {target}"));
            compacted = target;
        }
    }
}

/// The liveness phase and the read-backs: a write within the bound, equal `HashKV` across members
/// at one revision, each key's final value, and each acknowledged put read at its revision.
async fn check_after_heal(urls: Vec<String>, recorder: Recorder, trace: Trace) -> History {
    let mut history = History::default();
    let deadline = madsim::time::Instant::now() + LIVENESS_BOUND;
    let mut written = None;
    let mut attempt = 0;
    while written.is_none() && madsim::time::Instant::now() < deadline {
        let mut client = Client::new(urls[attempt % urls.len()].clone());
        let put = Input::Put {
            key: "liveness".into(),
            value: format!("probe-{attempt}"),
        };
        if let Output::Put { revision } = client.execute(&put).await {
            written = Some(revision);
        } else {
            madsim::time::sleep(Duration::from_millis(200)).await;
        }
        attempt += 1;
    }
    let Some(revision) = written else {
        history.liveness_failure = Some(format!(
            "no write succeeded within {LIVENESS_BOUND:?} after heal"
        ));
        trace.record("check", "", "liveness: no write succeeded");
        return history;
    };
    trace.record(
        "check",
        "",
        format!("liveness: a write succeeded at revision {revision}"),
    );
    match converged_hashes(&urls, revision, deadline).await {
        Ok(hashes) => history.replica_hashes = hashes,
        Err(failure) => {
            trace.record("check", "", format!("liveness: {failure}"));
            history.liveness_failure = Some(failure);
            return history;
        }
    }
    history.replica_states = replica_states(&urls, deadline).await;
    // Final reads, recorded as operations so that linearizability covers them too.
    let mut client = Client::new(urls[0].clone());
    let keys: std::collections::BTreeSet<String> = recorder
        .operations()
        .iter()
        .flat_map(|op| {
            op.input
                .keys()
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    for key in keys {
        let input = Input::Get { key };
        let invoke_ns = trace::now_ns();
        let output = client.execute(&input).await;
        recorder.record(CHECKER_CLIENT, invoke_ns, input, output);
    }
    for op in recorder.operations() {
        for (key, _, revision) in op.acknowledged_puts() {
            let result = client.get_at(key, revision).await;
            history.revision_reads.push(RevisionRead {
                key: key.to_string(),
                revision,
                result,
            });
        }
    }
    history
}

/// Each replica's leases, member list and state hash, once every member reports one applied index before and
/// after reading them (expiring leases keep the index moving for a while after heal). Empty if
/// the index did not stand still before `deadline`: there is nothing to compare then.
async fn replica_states(urls: &[String], deadline: madsim::time::Instant) -> Vec<ReplicaState> {
    let applied_index = || async {
        let mut indexes = BTreeSet::new();
        for url in urls {
            let status = Client::new(url.clone()).status().await.ok()?;
            indexes.insert(status.raft_applied_index);
        }
        (indexes.len() == 1).then(|| indexes.into_iter().next().expect("one index"))
    };
    while madsim::time::Instant::now() < deadline {
        if let Some(index) = applied_index().await {
            let mut states = Vec::new();
            for (i, url) in urls.iter().enumerate() {
                let client = Client::new(url.clone());
                let (Ok(leases), Ok(members), Ok(state_hash)) = (
                    client.lease_ids().await,
                    client.member_list().await,
                    client.hash().await,
                ) else {
                    break;
                };
                let mut members: Vec<(u64, String)> = members
                    .iter()
                    .map(|m| {
                        let line = format!(
                            "{:x} {} {:?} {:?}{}",
                            m.id,
                            m.name,
                            m.peer_ur_ls,
                            m.client_ur_ls,
                            if m.is_learner { " learner" } else { "" }
                        );
                        (m.id, line)
                    })
                    .collect();
                members.sort();
                states.push(ReplicaState {
                    member: format!("n{}", i + 1),
                    applied_index: index,
                    state_hash,
                    leases,
                    members: members.into_iter().map(|(_, line)| line).collect(),
                });
            }
            if states.len() == urls.len() && applied_index().await == Some(index) {
                return states;
            }
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    Vec::new()
}

/// Waits until every member reports the same revision (at least `revision`), then takes `HashKV`
/// of each at it.
async fn converged_hashes(
    urls: &[String],
    revision: i64,
    deadline: madsim::time::Instant,
) -> Result<Vec<(String, i64, u32)>, String> {
    let mut last = String::new();
    while madsim::time::Instant::now() < deadline {
        let mut revisions = Vec::new();
        for url in urls {
            let status = Client::new(url.clone()).status().await;
            revisions.push(status.map(|s| s.header.map_or(0, |h| h.revision)));
        }
        last = format!("member revisions {revisions:?}");
        let all: Result<Vec<i64>, String> = revisions.into_iter().collect();
        if let Ok(all) = all {
            if all.iter().all(|&r| r == all[0] && r >= revision) {
                let mut hashes = Vec::new();
                for (i, url) in urls.iter().enumerate() {
                    let hash = Client::new(url.clone()).hash_kv(all[0]).await?;
                    hashes.push((format!("n{}", i + 1), all[0], hash.hash));
                }
                return Ok(hashes);
            }
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "replicas did not reach one revision within {LIVENESS_BOUND:?} after heal ({last})"
    ))
}
