//! A three-member raft group in one process (raft-rs's `five_mem_node`): the real raft loop, WAL
//! and snapshot files on simulated disks, the in-memory transport, and a key-value state machine
//! small enough to check by eye. No simulator: plain tokio, real (short) timers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::prelude::{ConfChange, ConfState, Entry, HardState, Snapshot};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::mem_transport::MemNetwork;
use super::*;
use crate::io::{Disk, FileSystem, SimDisk, SystemClock};
use crate::pb::etcdserverpb::Member;
use crate::storage::wal::Wal;

const VOTERS: [u64; 3] = [1, 2, 3];
/// How often a wait looks, and how many looks it takes before it gives up: far more than a
/// healthy group needs (an election takes ~0.2 s here).
const POLL_INTERVAL: Duration = Duration::from_millis(5);
const POLLS_MAX: u32 = 6000;
/// Snapshots so rare that these tests never take one unless they ask.
const SNAPSHOT_COUNT_NEVER: u64 = 1_000_000;

/// What a member's state machine holds, shared with the test that reads it.
#[derive(Default)]
struct Observed {
    kv: BTreeMap<String, String>,
    /// The index of each snapshot restored (from the leader, or from disk at start).
    restored_from: Vec<u64>,
}

/// Entries are `key=value`; a snapshot is those lines for every key.
struct KvMachine {
    applied_index: u64,
    observed: Arc<Mutex<Observed>>,
}

impl StateMachine for KvMachine {
    fn applied_index(&self) -> u64 {
        self.applied_index
    }

    fn set_applied_index(&mut self, index: u64) {
        assert!(index > self.applied_index, "applied index must grow");
        self.applied_index = index;
    }

    fn apply_entry(&mut self, entry: &Entry) -> bool {
        if !entry.get_data().is_empty() {
            let text = std::str::from_utf8(entry.get_data()).unwrap();
            let (key, value) = text.split_once('=').unwrap();
            let mut observed = self.observed.lock().unwrap();
            observed.kv.insert(key.into(), value.into());
        }
        false
    }

    fn apply_conf_change(&mut self, _change: &ConfChange) -> bool {
        true
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), RaftError> {
        let text = std::str::from_utf8(&snapshot.data).unwrap();
        let mut observed = self.observed.lock().unwrap();
        observed.kv = text
            .lines()
            .map(|line| {
                let (key, value) = line.split_once('=').unwrap();
                (key.to_string(), value.to_string())
            })
            .collect();
        observed.restored_from.push(snapshot.get_metadata().index);
        self.applied_index = snapshot.get_metadata().index;
        Ok(())
    }

    fn snapshot_data(&self) -> Vec<u8> {
        let observed = self.observed.lock().unwrap();
        let lines: Vec<String> = observed
            .kv
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        lines.concat().into_bytes()
    }

    fn members(&self) -> Vec<Member> {
        VOTERS
            .iter()
            .map(|&id| Member {
                id,
                ..Default::default()
            })
            .collect()
    }

    fn reject(&self, _id: u64, _error: RaftError) {}

    fn demote(&self) {}

    fn promote(&self, _election_timeout: Duration, _term: u64) {}
}

struct Node {
    id: u64,
    disk: SimDisk,
    observed: Arc<Mutex<Observed>>,
    status: Arc<Watched<RaftStatus>>,
    inputs: mpsc::Sender<RaftInput>,
    stop: Arc<Watched<bool>>,
    task: JoinHandle<Result<(), RaftError>>,
}

impl Node {
    /// Starts member `id` from whatever `disk` holds (nothing: a new member of the group).
    fn start(id: u64, disk: SimDisk, network: &MemNetwork, snapshot_count: u64) -> Node {
        let shared_disk: Arc<dyn Disk> = Arc::new(disk.clone());
        let wal_dir = Path::new("/wal");
        let snapshot_files = SnapshotFiles::new(shared_disk.clone(), "/snap".into());
        let voters = ConfState::from((VOTERS.to_vec(), Vec::new()));
        let observed = Arc::new(Mutex::new(Observed::default()));
        let mut machine = KvMachine {
            applied_index: 0,
            observed: observed.clone(),
        };
        let (wal, store) = if Wal::exists(shared_disk.as_ref(), wal_dir) {
            let (wal, contents) = Wal::open(shared_disk, wal_dir).unwrap();
            let snapshot = contents
                .snapshot
                .as_ref()
                .map(|metadata| snapshot_files.load(metadata).unwrap());
            if let Some(snapshot) = &snapshot {
                machine.restore(snapshot).unwrap();
            }
            let store = LogStore::recover(
                snapshot_files.clone(),
                voters,
                snapshot,
                contents.hard_state,
                &contents.entries,
            );
            (wal, store.unwrap())
        } else {
            let wal = Wal::create(shared_disk, wal_dir, &[]).unwrap();
            let store = LogStore::recover(
                snapshot_files.clone(),
                voters,
                None,
                HardState::default(),
                &[],
            );
            (wal, store.unwrap())
        };
        let (raft_inputs, inputs) = mpsc::channel(4096);
        let status = Arc::new(Watched::new(RaftStatus::default()));
        let node = RaftNode::new(
            RaftNodeConfig {
                member_id: id,
                tick_interval: Duration::from_millis(10),
                election_ticks: 10,
                seed: id,
                snapshot_count,
                applied_index: machine.applied_index,
            },
            RaftParts {
                store,
                wal,
                snapshot_files,
                state_machine: Box::new(machine),
                transport: Box::new(network.attach(id, raft_inputs.clone())),
                clock: Arc::new(SystemClock),
                inputs,
                status: status.clone(),
            },
        )
        .unwrap();
        let stop = Arc::new(Watched::new(false));
        let task = tokio::spawn(node.run(stop.clone()));
        Node {
            id,
            disk,
            observed,
            status,
            inputs: raft_inputs,
            stop,
            task,
        }
    }

    /// Stops the raft loop (which must end cleanly) and cuts the power: only what the member
    /// made durable is left on its disk.
    async fn crash(self) -> SimDisk {
        self.stop.set(true);
        self.task.await.unwrap().unwrap();
        self.disk.crash();
        self.disk
    }

    fn kv(&self) -> BTreeMap<String, String> {
        self.observed.lock().unwrap().kv.clone()
    }

    async fn put(&self, key: &str, value: &str) {
        let data = format!("{key}={value}").into_bytes();
        self.inputs
            .send(RaftInput::Propose { id: 0, data })
            .await
            .unwrap();
    }
}

fn start_group(network: &MemNetwork, snapshot_count: u64) -> Vec<Node> {
    VOTERS
        .iter()
        .map(|&id| Node::start(id, SimDisk::new(id), network, snapshot_count))
        .collect()
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..POLLS_MAX {
        if condition() {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!("gave up waiting until {what}");
}

/// Waits until one of `nodes` leads and all of them agree on it; returns its position.
async fn leader(nodes: &[Node]) -> usize {
    wait_until("the members agree on a leader", || {
        let leader = nodes[0].status.get().leader_id;
        leader != 0 && nodes.iter().all(|n| n.status.get().leader_id == leader)
    })
    .await;
    let leader = nodes[0].status.get().leader_id;
    nodes.iter().position(|n| n.id == leader).unwrap()
}

/// Proposes `count` keys `{prefix}{i}` on the leader; returns what they make the store hold.
async fn put_keys(leader: &Node, prefix: &str, count: usize) -> BTreeMap<String, String> {
    let mut expected = BTreeMap::new();
    for i in 0..count {
        let (key, value) = (format!("{prefix}{i:03}"), format!("v{i}"));
        leader.put(&key, &value).await;
        expected.insert(key, value);
    }
    expected
}

async fn wait_for_kv(nodes: &[&Node], expected: &BTreeMap<String, String>) {
    wait_until("every member applied the writes", || {
        nodes.iter().all(|n| n.kv() == *expected)
    })
    .await;
}

#[tokio::test]
async fn a_group_elects_a_leader_and_replicates_in_order() {
    let network = MemNetwork::default();
    let nodes = start_group(&network, SNAPSHOT_COUNT_NEVER);
    let leader = leader(&nodes).await;
    let mut expected = put_keys(&nodes[leader], "a", 30).await;
    // Later writes to one key win on every member alike: entries apply in log order.
    nodes[leader].put("a000", "last").await;
    expected.insert("a000".into(), "last".into());
    wait_for_kv(&nodes.iter().collect::<Vec<_>>(), &expected).await;
    let statuses: Vec<RaftStatus> = nodes.iter().map(|n| n.status.get()).collect();
    assert!(
        statuses
            .iter()
            .all(|s| s.applied_index == statuses[0].applied_index),
        "{statuses:?}"
    );
    assert!(nodes
        .iter()
        .all(|n| n.observed.lock().unwrap().restored_from.is_empty()));
}

#[tokio::test]
async fn a_follower_restarts_from_its_own_disk() {
    let network = MemNetwork::default();
    let mut nodes = start_group(&network, SNAPSHOT_COUNT_NEVER);
    let leader = leader(&nodes).await;
    let mut expected = put_keys(&nodes[leader], "b", 20).await;
    wait_for_kv(&nodes.iter().collect::<Vec<_>>(), &expected).await;
    // Give the follower a heartbeat to learn (and persist) the final commit index.
    let follower = (leader + 1) % nodes.len();
    let commit = nodes[leader].status.get().commit_index;
    wait_until("the follower knows the final commit index", || {
        nodes[follower].status.get().commit_index == commit
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = nodes[follower].id;
    let disk = nodes.remove(follower).crash().await;
    // Cut off, the restarted member can only have what its own disk held.
    network.isolate(id);
    let restarted = Node::start(id, disk, &network, SNAPSHOT_COUNT_NEVER);
    wait_for_kv(&[&restarted], &expected).await;
    network.heal(id);
    let leader = leader_of(&nodes);
    expected.extend(put_keys(&nodes[leader], "c", 10).await);
    nodes.push(restarted);
    wait_for_kv(&nodes.iter().collect::<Vec<_>>(), &expected).await;
}

#[tokio::test]
async fn a_follower_far_behind_catches_up_by_snapshot() {
    let network = MemNetwork::default();
    let nodes = start_group(&network, 10);
    let leader = leader(&nodes).await;
    let lagging = (leader + 1) % nodes.len();
    network.isolate(nodes[lagging].id);
    // Far more than the entries kept behind a snapshot (`snapshot_count`, 10 here).
    let expected = put_keys(&nodes[leader], "d", 60).await;
    let up_to_date: Vec<&Node> = nodes.iter().filter(|n| n.id != nodes[lagging].id).collect();
    wait_for_kv(&up_to_date, &expected).await;
    assert!(
        nodes[lagging].kv().is_empty(),
        "an isolated member got writes"
    );
    network.heal(nodes[lagging].id);
    wait_for_kv(&[&nodes[lagging]], &expected).await;
    let restored = nodes[lagging]
        .observed
        .lock()
        .unwrap()
        .restored_from
        .clone();
    assert!(
        restored.iter().any(|&index| index > 10),
        "caught up without a snapshot: {restored:?}"
    );
    let written = nodes[lagging]
        .disk
        .list(Path::new("/snap"))
        .unwrap_or_default();
    assert!(!written.is_empty(), "the installed snapshot is not on disk");
}

/// The leader among members that already agree on one (no waiting).
fn leader_of(nodes: &[Node]) -> usize {
    let leader = nodes[0].status.get().leader_id;
    nodes.iter().position(|n| n.id == leader).unwrap()
}
