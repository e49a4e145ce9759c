//! `etcdserverpb.Auth`: users, roles, permissions, auth enable/disable and Authenticate, every
//! RPC etcdctl's `user`, `role` and `auth` commands use. The work is the server's
//! (`server::auth`); this module adapts requests and answers.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::requester::requester;
use crate::api::status::to_status;
use crate::pb::detcdpb::auth_change::Change;
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::*;
use crate::server::{EtcdServer, ServerError};

pub struct AuthService {
    server: Arc<EtcdServer>,
}

impl AuthService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        AuthService { server }
    }

    /// Proposes `change` for the request's requester; the answer is the response header.
    async fn change<T>(
        &self,
        request: &Request<T>,
        change: Change,
    ) -> Result<ResponseHeader, Status> {
        let requester = requester(&self.server, request)?;
        self.server
            .auth()
            .auth_change(&requester, change)
            .await
            .map_err(to_status)
    }
}

fn answer<T>(result: Result<T, ServerError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(to_status)
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let change = Change::Enable(*request.get_ref());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthEnableResponse {
            header: Some(header),
        }))
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let change = Change::Disable(*request.get_ref());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthDisableResponse {
            header: Some(header),
        }))
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let request = request.into_inner();
        answer(
            self.server
                .auth()
                .authenticate(&request.name, &request.password)
                .await
                .map(|(token, header)| AuthenticateResponse {
                    header: Some(header),
                    token,
                }),
        )
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        answer(
            self.server
                .auth()
                .user_add(&requester, request.into_inner())
                .await
                .map(|header| AuthUserAddResponse {
                    header: Some(header),
                }),
        )
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        let name = request.into_inner().name;
        answer(
            self.server
                .auth()
                .auth_read(|auth| auth.user_get(&requester, &name))
                .await
                .map(|(roles, header)| AuthUserGetResponse {
                    header: Some(header),
                    roles,
                }),
        )
    }

    async fn user_list(
        &self,
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        answer(
            self.server
                .auth()
                .auth_read(|auth| auth.user_list(&requester))
                .await
                .map(|(users, header)| AuthUserListResponse {
                    header: Some(header),
                    users,
                }),
        )
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let change = Change::UserDelete(request.get_ref().clone());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthUserDeleteResponse {
            header: Some(header),
        }))
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        answer(
            self.server
                .auth()
                .user_change_password(&requester, request.into_inner())
                .await
                .map(|header| AuthUserChangePasswordResponse {
                    header: Some(header),
                }),
        )
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let change = Change::UserGrantRole(request.get_ref().clone());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthUserGrantRoleResponse {
            header: Some(header),
        }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let change = Change::UserRevokeRole(request.get_ref().clone());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthUserRevokeRoleResponse {
            header: Some(header),
        }))
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let change = Change::RoleAdd(request.get_ref().clone());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthRoleAddResponse {
            header: Some(header),
        }))
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        let role = request.into_inner().role;
        answer(
            self.server
                .auth()
                .auth_read(|auth| auth.role_get(&requester, &role))
                .await
                .map(|(perm, header)| AuthRoleGetResponse {
                    header: Some(header),
                    perm,
                }),
        )
    }

    async fn role_list(
        &self,
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let requester = requester(&self.server, &request)?;
        answer(
            self.server
                .auth()
                .auth_read(|auth| auth.role_list(&requester))
                .await
                .map(|(roles, header)| AuthRoleListResponse {
                    header: Some(header),
                    roles,
                }),
        )
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let change = Change::RoleDelete(request.get_ref().clone());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthRoleDeleteResponse {
            header: Some(header),
        }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let change = Change::RoleGrantPermission(request.get_ref().clone());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse {
            header: Some(header),
        }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let change = Change::RoleRevokePermission(request.get_ref().clone());
        let header = self.change(&request, change).await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse {
            header: Some(header),
        }))
    }
}
