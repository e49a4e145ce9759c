//! Forwarding of the lease requests only the leader can answer — keep-alives and time-to-live,
//! since only the leader holds expiry times — from a follower to the leader, as etcd does (etcd
//! forwards over its peer HTTP API; detcd uses the leader's own client gRPC API, which runs on
//! the same network seam in both builds).
//!
//! A forwarded request is marked, and a member that is not the leader either answers a marked
//! request with `etcdserver: not leader` instead of forwarding it again, so two members that
//! briefly disagree about the leader cannot bounce a request between them.

use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::api::status::to_status;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::server::{EtcdServer, ServerError};

const FORWARDED: &str = "detcd-forwarded";

pub fn is_forwarded(metadata: &MetadataMap) -> bool {
    metadata.contains_key(FORWARDED)
}

fn mark<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED, "1".parse().expect("a valid header value"));
    request
}

/// A client of the current leader's Lease service.
async fn leader(server: &EtcdServer) -> Result<LeaseClient<Channel>, Status> {
    let leader_id = server.raft_status().leader_id;
    let url = server
        .members()
        .into_iter()
        .find(|member| member.id == leader_id && leader_id != 0)
        .and_then(|member| member.client_ur_ls.into_iter().next())
        .ok_or_else(|| to_status(ServerError::NoLeader))?;
    let channel = server
        .config()
        .dialers
        .client
        .connect(&url)
        .await
        .map_err(|_| to_status(ServerError::NoLeader))?;
    Ok(LeaseClient::new(channel))
}

pub async fn keep_alive(
    server: &EtcdServer,
    request: LeaseKeepAliveRequest,
) -> Result<LeaseKeepAliveResponse, Status> {
    let mut client = leader(server).await?;
    let mut answers = client
        .lease_keep_alive(mark(futures::stream::once(async move { request })))
        .await?
        .into_inner();
    answers
        .message()
        .await?
        .ok_or_else(|| to_status(ServerError::LeaderChanged))
}

pub async fn time_to_live(
    server: &EtcdServer,
    request: LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, Status> {
    let mut client = leader(server).await?;
    Ok(client.lease_time_to_live(mark(request)).await?.into_inner())
}
