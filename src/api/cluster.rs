//! `etcdserverpb.Cluster`: the member list and membership changes, each a raft conf change.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::requester::requester;
use crate::api::status::to_status;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use crate::server::EtcdServer;

pub struct ClusterService {
    server: Arc<EtcdServer>,
}

impl ClusterService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        ClusterService { server }
    }

    /// Membership changes are root's, with auth enabled (etcd's
    /// `checkMembershipOperationPermission`); the list is anyone's.
    fn check_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let requester = requester(&self.server, request)?;
        self.server
            .auth()
            .check_admin(&requester)
            .map_err(to_status)
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.check_admin(&request)?;
        let request = request.into_inner();
        let (member, members) = self
            .server
            .cluster()
            .member_add(request.peer_ur_ls, request.is_learner)
            .await
            .map_err(to_status)?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.server.header(0)),
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.check_admin(&request)?;
        let members = self
            .server
            .cluster()
            .member_remove(request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.server.header(0)),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.check_admin(&request)?;
        let request = request.into_inner();
        let members = self
            .server
            .cluster()
            .member_update(request.id, request.peer_ur_ls)
            .await
            .map_err(to_status)?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.server.header(0)),
            members,
        }))
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: Some(self.server.header(0)),
            members: self.server.cluster().members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.check_admin(&request)?;
        let members = self
            .server
            .cluster()
            .member_promote(request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.server.header(0)),
            members,
        }))
    }
}
