//! The `kv` workload: concurrent clients, each its own madsim node, doing put / get / delete and
//! read-modify-write txns (compare `mod_revision`, then put) over a small key space, so that
//! operations collide. Every operation is recorded with its invoke and complete times in simulated
//! time; values are unique (`c{client}-{n}`), which is what lets the checkers tell writes apart.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::runtime::{Handle, NodeHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod breadth;

use crate::client::Client;
use crate::history::{Input, Operation, Output};
use crate::options::SwarmOptions;
use crate::trace::{now_ns, Trace};

/// With the breadth mix, the share of operations drawn from it (the rest: the basic mix).
const BREADTH_SHARE: f64 = 0.4;

/// Client `index` lives at 10.0.1.{index+1}.
pub fn client_ip(index: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, index as u8 + 1))
}

/// The recorded operations, shared by all clients.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    operations: Arc<Mutex<Vec<Operation>>>,
}

impl Recorder {
    pub fn record(&self, client: u32, invoke_ns: u64, input: Input, output: Output) -> Operation {
        let id = self.invoke(client, invoke_ns, input);
        self.complete(id, output)
    }

    /// Records an operation as in flight: indeterminate and never completing, until
    /// [`Recorder::complete`] gives its output. A task aborted mid-call (the compactor, when the
    /// workload ends) leaves it so: what it sent may still take effect at any later time.
    pub fn invoke(&self, client: u32, invoke_ns: u64, input: Input) -> usize {
        let mut operations = self.operations.lock().unwrap();
        let id = operations.len();
        operations.push(Operation {
            id,
            client,
            invoke_ns,
            complete_ns: u64::MAX,
            input,
            output: Output::Indeterminate {
                error: "still in flight when the run ended".into(),
            },
        });
        id
    }

    /// The output of the in-flight operation `id` ([`Recorder::invoke`]), completing now.
    pub fn complete(&self, id: usize, output: Output) -> Operation {
        let mut operations = self.operations.lock().unwrap();
        let operation = &mut operations[id];
        assert_eq!(
            operation.complete_ns,
            u64::MAX,
            "operation {id} completes once"
        );
        operation.complete_ns = now_ns();
        operation.output = output;
        operation.clone()
    }

    pub fn operations(&self) -> Vec<Operation> {
        self.operations.lock().unwrap().clone()
    }
}

/// The client nodes, running until the shared operation budget is spent.
pub struct Workload {
    pub nodes: Vec<NodeHandle>,
    tasks: Vec<madsim::task::JoinHandle<()>>,
}

impl Workload {
    pub fn start(
        options: &SwarmOptions,
        member_urls: &[String],
        recorder: &Recorder,
        trace: &Trace,
    ) -> Workload {
        let budget = Arc::new(AtomicUsize::new(options.ops));
        let mut nodes = Vec::new();
        let mut tasks = Vec::new();
        for client in 0..options.clients {
            let node = Handle::current()
                .create_node()
                .name(format!("client{client}"))
                .ip(client_ip(client))
                .build();
            let run = client_loop(
                client,
                options.clone(),
                member_urls.to_vec(),
                budget.clone(),
                recorder.clone(),
                trace.clone(),
            );
            tasks.push(node.spawn(run));
            nodes.push(node);
        }
        Workload { nodes, tasks }
    }

    /// Waits for every client to spend the budget.
    pub async fn finished(self) {
        for task in self.tasks {
            task.await.expect("client tasks do not panic");
        }
    }
}

fn choose_input(
    rng: &mut StdRng,
    keys: u32,
    client: u32,
    sequence: &mut u64,
    last_seen: &BTreeMap<String, i64>,
) -> Input {
    let key = format!("k{}", rng.random_range(0..keys));
    let mut value = || {
        *sequence += 1;
        format!("c{client}-{sequence}")
    };
    match rng.random_range(0..100) {
        0..35 => Input::Get { key },
        35..65 => Input::Put {
            value: value(),
            key,
        },
        65..75 => Input::Delete { key },
        _ => Input::CompareAndPut {
            expected_mod_revision: last_seen.get(&key).copied().unwrap_or(0),
            value: value(),
            key,
        },
    }
}

async fn client_loop(
    client: u32,
    options: SwarmOptions,
    member_urls: Vec<String>,
    budget: Arc<AtomicUsize>,
    recorder: Recorder,
    trace: Trace,
) {
    let mut rng = StdRng::seed_from_u64(options.seed ^ (u64::from(client) << 40) ^ 0xc11e47);
    // Its own stream, so that seeds without the breadth mix draw exactly what they always did.
    let mut breadth_rng =
        StdRng::seed_from_u64(options.seed ^ (u64::from(client) << 40) ^ 0xb4ead7);
    let mut seen = breadth::Seen::default();
    let (keys, think_ms_max) = (options.keys, options.think_ms_max);
    let name = format!("client{client}");
    let mut connection = Client::new(member_urls[rng.random_range(0..member_urls.len())].clone());
    let mut sequence = 0;
    // The latest mod_revision this client saw per key: what its compare-and-puts expect.
    let mut last_seen: BTreeMap<String, i64> = BTreeMap::new();
    while budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok()
    {
        let input = if options.breadth && breadth_rng.random_bool(BREADTH_SHARE) {
            breadth::Chooser {
                rng: &mut breadth_rng,
                keys,
                client,
                sequence: &mut sequence,
                seen: &seen,
            }
            .choose()
        } else {
            choose_input(&mut rng, keys, client, &mut sequence, &last_seen)
        };
        let invoke_ns = now_ns();
        let output = connection.execute(&input).await;
        let operation = recorder.record(client, invoke_ns, input, output);
        trace.record(
            "client",
            &name,
            format!("{} via {}", describe(&operation), connection.url()),
        );
        seen.learn(&operation.input, &operation.output);
        match (&operation.input, &operation.output) {
            (Input::Get { key }, Output::Get { kv, .. })
            | (Input::CompareAndPut { key, .. }, Output::CompareAndPut { current: kv, .. }) => {
                last_seen.insert(key.clone(), kv.as_ref().map_or(0, |kv| kv.mod_revision));
            }
            (Input::Put { key, .. }, Output::Put { revision }) => {
                last_seen.insert(key.clone(), *revision);
            }
            (_, Output::Failed { .. } | Output::Indeterminate { .. }) => {
                // Try another member next time (the same one, when there is only one).
                connection =
                    Client::new(member_urls[rng.random_range(0..member_urls.len())].clone());
                madsim::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
            }
            _ => {}
        }
        madsim::time::sleep(Duration::from_millis(rng.random_range(0..think_ms_max))).await;
    }
}

/// One line for the trace: `put k1=c0-3 → rev 17`.
pub fn describe(operation: &Operation) -> String {
    let input = match &operation.input {
        Input::Get { key } => format!("get {key}"),
        Input::Put { key, value } => format!("put {key}={value}"),
        Input::Delete { key } => format!("delete {key}"),
        Input::CompareAndPut {
            key,
            expected_mod_revision,
            value,
        } => format!("txn if mod({key})=={expected_mod_revision} put {key}={value}"),
        Input::Request { request } => serde_json::to_string(request).expect("requests serialize"),
        Input::Compact { revision } => format!("compact {revision}"),
    };
    let output = match &operation.output {
        Output::Get { kv, revision } => match kv {
            Some(kv) => format!("{}@{} (rev {revision})", kv.value, kv.mod_revision),
            None => format!("absent (rev {revision})"),
        },
        Output::Put { revision } => format!("rev {revision}"),
        Output::Delete { deleted, revision } => format!("deleted {deleted} (rev {revision})"),
        Output::CompareAndPut {
            succeeded,
            current,
            revision,
        } => match (succeeded, current) {
            (true, _) => format!("succeeded (rev {revision})"),
            (false, Some(kv)) => {
                format!(
                    "failed, is {}@{} (rev {revision})",
                    kv.value, kv.mod_revision
                )
            }
            (false, None) => format!("failed, absent (rev {revision})"),
        },
        Output::Response { response, revision } => format!(
            "{} (rev {revision})",
            serde_json::to_string(response).expect("responses serialize")
        ),
        Output::Compacted { revision } => format!("compacted (rev {revision})"),
        Output::Failed { error } => format!("failed: {error}"),
        Output::Indeterminate { error } => format!("indeterminate: {error}"),
    };
    format!("#{} {input} → {output}", operation.id)
}
