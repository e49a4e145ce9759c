//! `etcdserverpb.Auth` through the proxy: every call forwarded unchanged, its token metadata
//! with it, as etcd's grpc-proxy does; so etcdctl's `user`, `role` and `auth` commands (and
//! `--user`, which calls Authenticate) work through a proxy. A read-only proxy refuses the calls
//! that change the auth store.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::upstream::{Retry, RESPONSE_BYTES_MAX};
use super::{forward, Shared};
use crate::pb::etcdserverpb::auth_client::AuthClient;
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::*;

pub struct AuthProxy {
    shared: Arc<Shared>,
}

impl AuthProxy {
    pub fn new(shared: Arc<Shared>) -> AuthProxy {
        AuthProxy { shared }
    }
}

/// The `Auth` impl: each listed call forwarded; `reads` retried on any failure, `writes`
/// refused by a read-only proxy and retried only when not sent (a resent change could apply
/// twice: a second `user add` answers "user name already exists").
macro_rules! auth_proxy {
    (
        reads { $($read:ident($read_req:ty) -> $read_resp:ty;)* }
        writes { $($write:ident($write_req:ty) -> $write_resp:ty;)* }
    ) => {
        #[tonic::async_trait]
        impl Auth for AuthProxy {
            $(
                async fn $read(
                    &self,
                    request: Request<$read_req>,
                ) -> Result<Response<$read_resp>, Status> {
                    forward!(self.shared, request, Retry::Always, AuthClient, $read)
                }
            )*
            $(
                async fn $write(
                    &self,
                    request: Request<$write_req>,
                ) -> Result<Response<$write_resp>, Status> {
                    self.shared.writable()?;
                    forward!(self.shared, request, Retry::IfNotSent, AuthClient, $write)
                }
            )*
        }
    };
}

auth_proxy! {
    reads {
        authenticate(AuthenticateRequest) -> AuthenticateResponse;
        user_get(AuthUserGetRequest) -> AuthUserGetResponse;
        user_list(AuthUserListRequest) -> AuthUserListResponse;
        role_get(AuthRoleGetRequest) -> AuthRoleGetResponse;
        role_list(AuthRoleListRequest) -> AuthRoleListResponse;
    }
    writes {
        auth_enable(AuthEnableRequest) -> AuthEnableResponse;
        auth_disable(AuthDisableRequest) -> AuthDisableResponse;
        user_add(AuthUserAddRequest) -> AuthUserAddResponse;
        user_delete(AuthUserDeleteRequest) -> AuthUserDeleteResponse;
        user_change_password(AuthUserChangePasswordRequest) -> AuthUserChangePasswordResponse;
        user_grant_role(AuthUserGrantRoleRequest) -> AuthUserGrantRoleResponse;
        user_revoke_role(AuthUserRevokeRoleRequest) -> AuthUserRevokeRoleResponse;
        role_add(AuthRoleAddRequest) -> AuthRoleAddResponse;
        role_delete(AuthRoleDeleteRequest) -> AuthRoleDeleteResponse;
        role_grant_permission(AuthRoleGrantPermissionRequest) -> AuthRoleGrantPermissionResponse;
        role_revoke_permission(AuthRoleRevokePermissionRequest) -> AuthRoleRevokePermissionResponse;
    }
}
