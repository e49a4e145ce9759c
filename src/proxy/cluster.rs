//! `etcdserverpb.Cluster` through the proxy: forwarded to the cluster as it is.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::upstream::{Retry, RESPONSE_BYTES_MAX};
use super::{forward, Shared};
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};

pub struct ClusterProxy {
    shared: Arc<Shared>,
}

impl ClusterProxy {
    pub fn new(shared: Arc<Shared>) -> ClusterProxy {
        ClusterProxy { shared }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterProxy {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.shared.writable()?;
        forward!(
            self.shared,
            request,
            Retry::IfNotSent,
            ClusterClient,
            member_add
        )
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.shared.writable()?;
        forward!(
            self.shared,
            request,
            Retry::IfNotSent,
            ClusterClient,
            member_remove
        )
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.shared.writable()?;
        forward!(
            self.shared,
            request,
            Retry::IfNotSent,
            ClusterClient,
            member_update
        )
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        forward!(
            self.shared,
            request,
            Retry::Always,
            ClusterClient,
            member_list
        )
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.shared.writable()?;
        forward!(
            self.shared,
            request,
            Retry::IfNotSent,
            ClusterClient,
            member_promote
        )
    }
}
