//! `etcdserverpb.Auth` through the proxy: every call forwarded unchanged, its token metadata
//! with it, as etcd's grpc-proxy does; so etcdctl's `user`, `role` and `auth` commands (and
//! `--user`, which calls Authenticate) work through a proxy. A read-only proxy refuses the calls
//! that change the auth store.

use super::forwarding_service;
use super::upstream::RESPONSE_BYTES_MAX;
use crate::pb::etcdserverpb::auth_client::AuthClient;
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::*;

forwarding_service! {
    AuthProxy: Auth via AuthClient {
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
}
