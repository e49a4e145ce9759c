//! The peer transport, receiving side: the `RaftPeer` gRPC service. It checks that a batch comes
//! from this cluster and from a current member, then hands the messages to the raft loop.

use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::Message;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::metrics::Metrics;
use crate::pb::detcdpb::raft_peer_server::RaftPeer;
use crate::pb::detcdpb::{MembersRequest, MembersResponse, MessageBatch, PeerAck};
use crate::pb::etcdserverpb::Member;

use super::RaftInput;

/// Who a sender is to this member's cluster, as its applied member list says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Member,
    /// Not (yet) in the applied member list: added while this member was down or cut off.
    Unknown,
    /// Removed from the cluster, for ever.
    Removed,
}

/// What the peer service asks of the server (which implements it).
#[tonic::async_trait]
pub trait PeerCluster: Send + Sync + 'static {
    fn cluster_id(&self) -> u64;

    fn standing(&self, member_id: u64) -> Standing;

    /// The members as of a linearizable read (see [`RaftPeer::members`] below for why).
    async fn linearizable_members(&self) -> Result<Vec<Member>, String>;
}

pub struct PeerService {
    member_id: u64,
    cluster: Arc<dyn PeerCluster>,
    raft_inputs: mpsc::Sender<RaftInput>,
    /// Counts the bytes peers send (`etcd_network_peer_received_bytes_total`).
    metrics: Arc<Metrics>,
}

impl PeerService {
    pub fn new(
        member_id: u64,
        cluster: Arc<dyn PeerCluster>,
        raft_inputs: mpsc::Sender<RaftInput>,
        metrics: Arc<Metrics>,
    ) -> PeerService {
        PeerService {
            member_id,
            cluster,
            raft_inputs,
            metrics,
        }
    }

    async fn receive(&self, batch: MessageBatch) -> Result<Response<PeerAck>, Status> {
        let bytes = batch.messages.iter().map(Vec::len).sum();
        self.metrics.peer_received(batch.from, bytes);
        let cluster_id = self.cluster.cluster_id();
        if batch.cluster_id != cluster_id {
            return Err(Status::failed_precondition(format!(
                "cluster ID mismatch: this member is in cluster {:x}, the sender {:x} in {:x}",
                cluster_id, batch.from, batch.cluster_id
            )));
        }
        let from_unknown = match self.cluster.standing(batch.from) {
            Standing::Member => false,
            Standing::Unknown => true,
            Standing::Removed => {
                return Err(Status::permission_denied(
                    "the member has been permanently removed from the cluster",
                ))
            }
        };
        if batch.to != self.member_id {
            return Err(Status::failed_precondition(format!(
                "messages for member {:x} reached member {:x}",
                batch.to, self.member_id
            )));
        }
        if from_unknown {
            let learn = RaftInput::LearnPeer {
                id: batch.from,
                peer_urls: batch.from_peer_urls.clone(),
            };
            self.raft_inputs
                .send(learn)
                .await
                .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        }
        for bytes in &batch.messages {
            let message = Message::parse_from_bytes(bytes)
                .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))?;
            self.raft_inputs
                .send(RaftInput::Step(Box::new(message)))
                .await
                .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        }
        Ok(Response::new(PeerAck {}))
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn send(&self, request: Request<MessageBatch>) -> Result<Response<PeerAck>, Status> {
        self.receive(request.into_inner()).await
    }

    async fn send_snapshot(
        &self,
        request: Request<MessageBatch>,
    ) -> Result<Response<PeerAck>, Status> {
        self.receive(request.into_inner()).await
    }

    /// The member list for a member joining the cluster, as of a linearizable read: a member
    /// that has not yet applied the latest changes would still list the removed member at the
    /// joining member's URLs (and not yet its new id), and the joining member would take the
    /// removed id and never hear from the leader (seed 0xf5433).
    async fn members(
        &self,
        _: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        let members = self
            .cluster
            .linearizable_members()
            .await
            .map_err(Status::unavailable)?;
        Ok(Response::new(MembersResponse {
            cluster_id: self.cluster.cluster_id(),
            members,
        }))
    }
}
