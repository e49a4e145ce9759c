//! `etcdserverpb.Lease` (etcd's v3rpc `lease.go`): grant, revoke, the keep-alive stream,
//! time-to-live and the lease list.
//!
//! Keep-alives and time-to-live reaching a follower are forwarded to the leader by the server
//! ([`crate::server::lease::forward`]); a forwarded request carries a mark, read here. Two answers are not errors, as in etcd: a keep-alive for a lease that does not exist answers
//! TTL 0, and a time-to-live for one answers TTL -1.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::api::requester::requester;
use crate::api::status::to_status;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::server::lease::Origin;
use crate::server::EtcdServer;

pub struct LeaseService {
    server: Arc<EtcdServer>,
}

impl LeaseService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        LeaseService { server }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        // Any client may grant a lease (etcd 3.4), but a token must be valid.
        let requester = requester(&self.server, &request)?;
        self.server
            .leases()
            .grant(&requester, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        self.server
            .leases()
            .revoke(&requester, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    /// One answer per request, in order; the first error ends the stream, as etcd's does.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let origin = Origin::of(request.metadata());
        let state = Some((self.server.clone(), request.into_inner()));
        let answers = futures::stream::unfold(state, move |state| async move {
            let (server, mut requests) = state?;
            let answer = match requests.next().await? {
                Ok(request) => server
                    .leases()
                    .keep_alive(request.id, origin)
                    .await
                    .map_err(to_status),
                Err(status) => Err(status),
            };
            let next = answer.is_ok().then_some((server, requests));
            Some((answer, next))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let origin = Origin::of(request.metadata());
        self.server
            .leases()
            .time_to_live(request.into_inner(), origin)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        Ok(Response::new(self.server.leases().leases()))
    }
}
