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

use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::server::ServerError;
use crate::tls::Dialer;

const FORWARDED: &str = "detcd-forwarded";

/// Where a lease request comes from: a client, or a member that forwarded it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Client,
    Forwarded,
}

impl Origin {
    pub fn of(metadata: &MetadataMap) -> Origin {
        if metadata.contains_key(FORWARDED) {
            Origin::Forwarded
        } else {
            Origin::Client
        }
    }
}

fn mark<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED, "1".parse().expect("a valid header value"));
    request
}

/// The leader's answer, passed on to the client as it came.
fn from_leader(status: Status) -> ServerError {
    ServerError::FromLeader {
        code: status.code() as i32,
        message: status.message().to_string(),
    }
}

/// A client of the leader's Lease service at `url` (its first client URL; None while unknown).
async fn leader(dialer: &Dialer, url: Option<String>) -> Result<LeaseClient<Channel>, ServerError> {
    let url = url.ok_or(ServerError::NoLeader)?;
    let channel = dialer
        .connect(&url)
        .await
        .map_err(|_| ServerError::NoLeader)?;
    Ok(LeaseClient::new(channel))
}

pub async fn keep_alive(
    dialer: &Dialer,
    leader_url: Option<String>,
    request: LeaseKeepAliveRequest,
) -> Result<LeaseKeepAliveResponse, ServerError> {
    let mut client = leader(dialer, leader_url).await?;
    let mut answers = client
        .lease_keep_alive(mark(futures::stream::once(async move { request })))
        .await
        .map_err(from_leader)?
        .into_inner();
    answers
        .message()
        .await
        .map_err(from_leader)?
        .ok_or(ServerError::LeaderChanged)
}

pub async fn time_to_live(
    dialer: &Dialer,
    leader_url: Option<String>,
    request: LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, ServerError> {
    let mut client = leader(dialer, leader_url).await?;
    client
        .lease_time_to_live(mark(request))
        .await
        .map(tonic::Response::into_inner)
        .map_err(from_leader)
}
