//! The peer transport, receiving side: the `RaftPeer` gRPC service. It checks that a batch comes
//! from this cluster and from a current member, then hands the messages to the raft loop.

use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::Message;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::pb::detcdpb::raft_peer_server::RaftPeer;
use crate::pb::detcdpb::{MembersRequest, MembersResponse, MessageBatch, PeerAck};
use crate::server::EtcdServer;

use super::RaftInput;

pub struct PeerService {
    member_id: u64,
    server: Arc<EtcdServer>,
    raft_inputs: mpsc::Sender<RaftInput>,
}

impl PeerService {
    pub fn new(server: Arc<EtcdServer>, raft_inputs: mpsc::Sender<RaftInput>) -> PeerService {
        PeerService {
            member_id: server.member_id(),
            server,
            raft_inputs,
        }
    }

    async fn receive(&self, batch: MessageBatch) -> Result<Response<PeerAck>, Status> {
        let bytes = batch.messages.iter().map(Vec::len).sum();
        self.server.metrics().peer_received(batch.from, bytes);
        let from_unknown = {
            let membership = self.server.membership().lock().unwrap();
            if batch.cluster_id != membership.cluster_id() {
                return Err(Status::failed_precondition(format!(
                    "cluster ID mismatch: this member is in cluster {:x}, the sender {:x} in {:x}",
                    membership.cluster_id(),
                    batch.from,
                    batch.cluster_id
                )));
            }
            if membership.is_removed(batch.from) {
                return Err(Status::permission_denied(
                    "the member has been permanently removed from the cluster",
                ));
            }
            membership.get(batch.from).is_none()
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
        self.server
            .linearizable_read_barrier()
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        Ok(Response::new(MembersResponse {
            cluster_id: self.server.cluster_id(),
            members: self.server.members(),
        }))
    }
}
