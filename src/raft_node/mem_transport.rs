//! An in-memory peer transport (raft-rs's `five_mem_node` mailboxes): every member's raft loop
//! in one process, messages handed straight to the receiver's input queue. Tests cut members off
//! to make them fall behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use raft::prelude::{Message, MessageType};
use tokio::sync::mpsc;

use crate::pb::etcdserverpb::Member;

use super::{PeerTransport, RaftInput};

/// The members' input queues, and which members are cut off from all others.
#[derive(Clone, Default)]
pub struct MemNetwork {
    inner: Arc<Mutex<Network>>,
}

#[derive(Default)]
struct Network {
    inputs: BTreeMap<u64, mpsc::Sender<RaftInput>>,
    isolated: BTreeSet<u64>,
}

impl MemNetwork {
    /// Attaches member `id` whose raft loop reads `inputs` (replacing an earlier run's queue),
    /// and returns its transport.
    pub fn attach(&self, id: u64, inputs: mpsc::Sender<RaftInput>) -> MemTransport {
        self.inner.lock().unwrap().inputs.insert(id, inputs.clone());
        MemTransport {
            network: self.clone(),
            feedback: inputs,
        }
    }

    /// Cuts `id` off: nothing it sends arrives, nothing sent to it arrives.
    pub fn isolate(&self, id: u64) {
        self.inner.lock().unwrap().isolated.insert(id);
    }

    pub fn heal(&self, id: u64) {
        self.inner.lock().unwrap().isolated.remove(&id);
    }
}

pub struct MemTransport {
    network: MemNetwork,
    /// This member's own input queue, for delivery reports.
    feedback: mpsc::Sender<RaftInput>,
}

impl PeerTransport for MemTransport {
    /// Every attached member is a peer already.
    fn set_peers(&mut self, _members: &[Member]) {}

    fn learn_peer(&mut self, _id: u64, _peer_urls: Vec<String>) {}

    fn send(&mut self, messages: Vec<Message>) {
        let network = self.network.inner.lock().unwrap();
        for message in messages {
            let (from, to) = (message.from, message.to);
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            let cut = network.isolated.contains(&from) || network.isolated.contains(&to);
            let delivered = !cut
                && network.inputs.get(&to).is_some_and(|inputs| {
                    inputs.try_send(RaftInput::Step(Box::new(message))).is_ok()
                });
            let report = match (is_snapshot, delivered) {
                (true, delivered) => Some(RaftInput::SnapshotStatus { to, delivered }),
                (false, true) => None,
                (false, false) => Some(RaftInput::Unreachable { to }),
            };
            if let Some(report) = report {
                let _ = self.feedback.try_send(report);
            }
        }
    }
}
