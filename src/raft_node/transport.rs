//! The peer transport, sending side: one task per peer and per kind of traffic, fed by bounded
//! queues, so a slow or unreachable peer never blocks the raft loop or the other peers.
//!
//! gRPC (the `RaftPeer` service) is the wire: the same tonic code runs over TCP in production and
//! over madsim's simulated network (partitions, clogs, latency) in the simulator, and HTTP/2 gives
//! framing, multiplexing and reconnects for free. Raft messages go in batches on one path;
//! snapshots (`MsgSnapshot`, possibly large) on another, so heartbeats never queue behind them.
//! Raft tolerates loss, so when a queue is full the message is dropped and the peer reported
//! unreachable; raft resends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::io::Clock;
use crate::metrics::Metrics;
use crate::pb::detcdpb::raft_peer_client::RaftPeerClient;
use crate::pb::detcdpb::MessageBatch;
use crate::pb::etcdserverpb::Member;
use crate::tls::Dialer;

use super::RaftInput;

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE_MAX: usize = 4096;
/// Messages sent in one batch.
const BATCH_MESSAGES_MAX: usize = 512;
/// How long one send (or connect) may take before the peer counts as unreachable.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed send before trying that peer again; doubles per consecutive failure.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The largest snapshot message a member accepts from a peer.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 30;

pub struct Transport {
    cluster_id: u64,
    member_id: u64,
    /// This member's peer URLs, sent with every batch (see [`Transport::learn_peer`]).
    peer_urls: Vec<String>,
    clock: Arc<dyn Clock>,
    /// Opens channels to peers (TLS for `https://` peer URLs).
    dialer: Dialer,
    /// Where senders report unreachable peers and snapshot results.
    feedback: mpsc::Sender<RaftInput>,
    peers: BTreeMap<u64, Peer>,
    metrics: Arc<Metrics>,
}

struct Peer {
    peer_urls: Vec<String>,
    /// Learned from the peer's own messages, not (yet) from the applied member list.
    learned: bool,
    messages: mpsc::Sender<Message>,
    snapshots: mpsc::Sender<Message>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Peer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Transport {
    pub fn new(
        cluster_id: u64,
        member_id: u64,
        peer_urls: Vec<String>,
        clock: Arc<dyn Clock>,
        dialer: Dialer,
        feedback: mpsc::Sender<RaftInput>,
        metrics: Arc<Metrics>,
    ) -> Transport {
        Transport {
            cluster_id,
            member_id,
            peer_urls,
            clock,
            dialer,
            feedback,
            peers: BTreeMap::new(),
            metrics,
        }
    }

    /// Makes the set of peers the given members (minus this one): starts senders for new ones,
    /// stops those of removed ones, and restarts those whose URLs changed. A learned peer stays
    /// until the members include it.
    pub fn set_peers(&mut self, members: &[Member]) {
        let wanted: BTreeMap<u64, &Member> = members
            .iter()
            .filter(|m| m.id != self.member_id)
            .map(|m| (m.id, m))
            .collect();
        self.peers.retain(|id, peer| match wanted.get(id) {
            Some(member) => member.peer_ur_ls == peer.peer_urls,
            None => peer.learned,
        });
        for (id, member) in wanted {
            match self.peers.get_mut(&id) {
                Some(peer) => peer.learned = false,
                None => {
                    let peer = self.start_peer(id, member.peer_ur_ls.clone(), false);
                    self.peers.insert(id, peer);
                }
            }
        }
    }

    /// A message came from `id`, which this member does not know: it was added while this
    /// member was down or cut off, and this member learns of it only by applying entries that
    /// the sender (maybe the leader) has to send it first. So answer it at the URLs it sent.
    /// (The peer service refuses removed members before this.)
    pub fn learn_peer(&mut self, id: u64, peer_urls: Vec<String>) {
        if id == self.member_id || peer_urls.is_empty() || self.peers.contains_key(&id) {
            return;
        }
        tracing::info!(
            peer = format_args!("{id:x}"),
            ?peer_urls,
            "answering a member not yet in the applied member list"
        );
        let peer = self.start_peer(id, peer_urls, true);
        self.peers.insert(id, peer);
    }

    fn start_peer(&self, to: u64, peer_urls: Vec<String>, learned: bool) -> Peer {
        let (messages, message_queue) = mpsc::channel(PEER_QUEUE_MAX);
        let (snapshots, snapshot_queue) = mpsc::channel(1);
        let sender = PeerSender {
            cluster_id: self.cluster_id,
            from: self.member_id,
            from_peer_urls: self.peer_urls.clone(),
            to,
            peer_urls: peer_urls.clone(),
            clock: self.clock.clone(),
            dialer: self.dialer.clone(),
            feedback: self.feedback.clone(),
            client: None,
            mismatch_reported: false,
            metrics: self.metrics.clone(),
        };
        let snapshot_sender = sender.clone_config();
        Peer {
            peer_urls,
            learned,
            messages,
            snapshots,
            tasks: [
                tokio::spawn(sender.run(message_queue, Lane::Messages)),
                tokio::spawn(snapshot_sender.run(snapshot_queue, Lane::Snapshots)),
            ],
        }
    }

    /// Queues messages for their peers without waiting.
    pub fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            let to = message.to;
            let Some(peer) = self.peers.get(&to) else {
                tracing::debug!(
                    to = format_args!("{to:x}"),
                    "message for an unknown peer dropped"
                );
                continue;
            };
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            let queue = if is_snapshot {
                &peer.snapshots
            } else {
                &peer.messages
            };
            if queue.try_send(message).is_err() {
                let report = if is_snapshot {
                    RaftInput::SnapshotStatus {
                        to,
                        delivered: false,
                    }
                } else {
                    RaftInput::Unreachable { to }
                };
                let _ = self.feedback.try_send(report);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    Messages,
    Snapshots,
}

struct PeerSender {
    cluster_id: u64,
    from: u64,
    from_peer_urls: Vec<String>,
    to: u64,
    peer_urls: Vec<String>,
    clock: Arc<dyn Clock>,
    dialer: Dialer,
    feedback: mpsc::Sender<RaftInput>,
    client: Option<RaftPeerClient<tonic::transport::Channel>>,
    /// A cluster mismatch is logged once per sender, not at every retry.
    mismatch_reported: bool,
    metrics: Arc<Metrics>,
}

impl PeerSender {
    fn clone_config(&self) -> PeerSender {
        PeerSender {
            cluster_id: self.cluster_id,
            from: self.from,
            from_peer_urls: self.from_peer_urls.clone(),
            to: self.to,
            peer_urls: self.peer_urls.clone(),
            clock: self.clock.clone(),
            dialer: self.dialer.clone(),
            feedback: self.feedback.clone(),
            client: None,
            mismatch_reported: false,
            metrics: self.metrics.clone(),
        }
    }

    async fn run(mut self, mut queue: mpsc::Receiver<Message>, lane: Lane) {
        let mut url_index = 0;
        let mut backoff = RETRY_BACKOFF_MIN;
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            if lane == Lane::Messages {
                while batch.len() < BATCH_MESSAGES_MAX {
                    match queue.try_recv() {
                        Ok(message) => batch.push(message),
                        Err(_) => break,
                    }
                }
            }
            let delivered = self
                .deliver(&batch, lane, &self.peer_urls[url_index].clone())
                .await;
            let report = match (lane, delivered) {
                (Lane::Snapshots, delivered) => Some(RaftInput::SnapshotStatus {
                    to: self.to,
                    delivered,
                }),
                (Lane::Messages, true) => None,
                (Lane::Messages, false) => Some(RaftInput::Unreachable { to: self.to }),
            };
            if let Some(report) = report {
                let _ = self.feedback.send(report).await;
            }
            if delivered {
                backoff = RETRY_BACKOFF_MIN;
            } else {
                // Try the peer's next URL next time, after a growing pause; what queued meanwhile
                // is mostly stale, and raft will resend what matters. A dropped snapshot must be
                // reported all the same: until it hears how a snapshot went, raft's progress for
                // the peer waits in its snapshot state and sends it nothing else, for ever.
                url_index = (url_index + 1) % self.peer_urls.len();
                self.clock.sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                while queue.try_recv().is_ok() {
                    if lane == Lane::Snapshots {
                        let failed = RaftInput::SnapshotStatus {
                            to: self.to,
                            delivered: false,
                        };
                        let _ = self.feedback.send(failed).await;
                    }
                }
            }
        }
    }

    async fn deliver(&mut self, batch: &[Message], lane: Lane, url: &str) -> bool {
        let request = MessageBatch {
            cluster_id: self.cluster_id,
            from: self.from,
            to: self.to,
            from_peer_urls: self.from_peer_urls.clone(),
            messages: batch
                .iter()
                .map(|m| m.write_to_bytes().expect("raft messages encode"))
                .collect(),
        };
        let clock = self.clock.clone();
        let bytes = request.messages.iter().map(Vec::len).sum();
        let attempt = async {
            if self.client.is_none() {
                let channel = match self.dialer.connect(url).await {
                    Ok(channel) => channel,
                    Err(error) => {
                        tracing::debug!(to = format_args!("{:x}", self.to), %error, "cannot reach peer");
                        return None;
                    }
                };
                self.client = Some(
                    RaftPeerClient::new(channel)
                        .max_encoding_message_size(SNAPSHOT_BYTES_MAX)
                        .max_decoding_message_size(SNAPSHOT_BYTES_MAX),
                );
            }
            let client = self.client.as_mut()?;
            let sent_at = clock.now();
            let result = match lane {
                Lane::Messages => client.send(request).await,
                Lane::Snapshots => client.send_snapshot(request).await,
            };
            match result {
                Ok(_) => {
                    let round_trip = clock.now() - sent_at;
                    self.metrics.peer_delivered(self.to, bytes, round_trip);
                    Some(())
                }
                Err(status) => {
                    match status.code() {
                        // Peers refuse a removed member: that is how it learns of its removal
                        // when it missed the commit.
                        tonic::Code::PermissionDenied => {
                            let _ = self.feedback.try_send(RaftInput::RemovedFromCluster);
                        }
                        // Another cluster (or token) at that URL: an operator's mistake to show.
                        tonic::Code::FailedPrecondition if !self.mismatch_reported => {
                            self.mismatch_reported = true;
                            tracing::error!(to = format_args!("{:x}", self.to), %status, "peer rejected this member");
                        }
                        _ => {}
                    }
                    tracing::debug!(to = format_args!("{:x}", self.to), %status, "peer refused messages");
                    None
                }
            }
        };
        let delivered = tokio::select! {
            biased;
            result = attempt => result.is_some(),
            () = clock.sleep(SEND_TIMEOUT) => false,
        };
        if !delivered {
            self.client = None;
        }
        delivered
    }
}

impl super::PeerTransport for Transport {
    fn set_peers(&mut self, members: &[Member]) {
        Transport::set_peers(self, members);
    }

    fn learn_peer(&mut self, id: u64, peer_urls: Vec<String>) {
        Transport::learn_peer(self, id, peer_urls);
    }

    fn send(&mut self, messages: Vec<Message>) {
        Transport::send(self, messages);
    }
}
