//! The replicated auth store (etcd's `auth.authStore`): users, roles, their key-range
//! permissions, whether auth is enabled, and the auth revision, which every change bumps.
//! Changes arrive only through applied raft entries, so every member holds the same store; it is
//! carried in snapshots ([`AuthStore::to_snapshot`]). BTreeMaps keep every listing in name order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::range_perm::{self, Access};
use super::tokens::SimpleTokens;
use super::{AuthError, Requester};
use crate::pb::authpb::{Permission, Role, User, UserAddOptions};
use crate::pb::detcdpb::auth_change::Change;
use crate::pb::detcdpb::AuthSnapshot;

/// The user and role whose holders may do anything (etcd's `rootUser`, `rootRole`).
pub const ROOT: &str = "root";

#[derive(Debug, Default)]
pub struct AuthStore {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// This member's simple tokens: not replicated state, never in a snapshot.
    tokens: SimpleTokens,
}

/// What a user may see of the store: its password hash stays inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Hash(String),
    NoPassword,
}

impl AuthStore {
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The named user's client identity check (etcd's `IsAdminPermitted`): with auth enabled,
    /// only a holder of the root role passes.
    pub fn check_admin(&self, requester: &Requester) -> Result<(), AuthError> {
        let Some(user) = self.checked_user(requester)? else {
            return Ok(());
        };
        let user = self.users.get(user).ok_or(AuthError::UserNotFound)?;
        if has_root_role(user) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Whether `requester` may `access` every key of (key, range_end) (etcd's `isOpPermitted`).
    pub fn check(
        &self,
        requester: &Requester,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        let Some(user) = self.checked_user(requester)? else {
            return Ok(());
        };
        let user = self.users.get(user).ok_or(AuthError::PermissionDenied)?;
        if has_root_role(user) {
            return Ok(());
        }
        let perms = user
            .roles
            .iter()
            .filter_map(|role| self.roles.get(role))
            .flat_map(|role| role.key_permission.iter());
        if range_perm::covers(perms, access, key, range_end) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// The user a check is about, or `None` when nothing is checked (auth disabled, or the
    /// server's own request).
    fn checked_user<'r>(&self, requester: &'r Requester) -> Result<Option<&'r str>, AuthError> {
        match requester {
            _ if !self.enabled => Ok(None),
            Requester::Server => Ok(None),
            Requester::Client(None) => Err(AuthError::UserEmpty),
            Requester::Client(Some(user)) => Ok(Some(user)),
        }
    }

    /// What Authenticate verifies a password against (outside any lock: bcrypt is slow).
    pub fn credentials(&self, name: &str) -> Option<Credentials> {
        let user = self.users.get(name)?;
        Some(
            if user
                .options
                .as_ref()
                .is_some_and(|options| options.no_password)
            {
                Credentials::NoPassword
            } else {
                Credentials::Hash(String::from_utf8_lossy(&user.password).into_owned())
            },
        )
    }

    /// The user a token names, if it is live; auth disabled, tokens name nobody.
    pub fn user_of_token(&mut self, token: &str, now: Instant, ttl: Duration) -> Option<String> {
        if !self.enabled {
            return None;
        }
        self.tokens.user_of(token, now, ttl)
    }

    /// A user's roles: for root, or for the user itself (etcd 3.4 lets a user read its own).
    pub fn user_get(&self, requester: &Requester, name: &str) -> Result<Vec<String>, AuthError> {
        let is_self = matches!(requester, Requester::Client(Some(user)) if user == name);
        if !is_self {
            self.check_admin(requester)?;
        }
        self.users
            .get(name)
            .map(|user| user.roles.clone())
            .ok_or(AuthError::UserNotFound)
    }

    /// A role's permissions: for root, or for a user holding the role.
    pub fn role_get(
        &self,
        requester: &Requester,
        role: &str,
    ) -> Result<Vec<Permission>, AuthError> {
        let holds_role = match requester {
            Requester::Client(Some(user)) => self
                .users
                .get(user)
                .is_some_and(|user| user.roles.iter().any(|r| r == role)),
            _ => false,
        };
        if !holds_role {
            self.check_admin(requester)?;
        }
        self.roles
            .get(role)
            .map(|role| role.key_permission.clone())
            .ok_or(AuthError::RoleNotFound)
    }

    pub fn user_list(&self, requester: &Requester) -> Result<Vec<String>, AuthError> {
        self.check_admin(requester)?;
        Ok(self.users.keys().cloned().collect())
    }

    pub fn role_list(&self, requester: &Requester) -> Result<Vec<String>, AuthError> {
        self.check_admin(requester)?;
        Ok(self.roles.keys().cloned().collect())
    }

    /// Applies one committed change proposed by `requester`; `index` is its raft entry's (simple
    /// tokens carry it). Returns the token an Authenticate assigned. Every change that alters the
    /// store bumps the auth revision, as etcd's `commitRevision`.
    pub fn apply(
        &mut self,
        requester: &Requester,
        change: Change,
        index: u64,
        now: Instant,
        token_ttl: Duration,
    ) -> Result<Option<String>, AuthError> {
        if let Change::Authenticate(authenticate) = change {
            if !self.enabled {
                return Err(AuthError::AuthNotEnabled);
            }
            if !self.users.contains_key(&authenticate.name) {
                return Err(AuthError::AuthFailed);
            }
            let token = format!("{}.{index}", authenticate.token_prefix);
            self.tokens
                .assign(token.clone(), authenticate.name, now, token_ttl);
            return Ok(Some(token));
        }
        self.check_admin(requester)?;
        let changed = self.change(change)?;
        if changed {
            self.revision += 1;
        }
        Ok(None)
    }

    /// Returns whether the store changed.
    fn change(&mut self, change: Change) -> Result<bool, AuthError> {
        match change {
            Change::Authenticate(_) => unreachable!("applied above"),
            Change::Enable(_) => {
                if self.enabled {
                    return Ok(false);
                }
                let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
                if !has_root_role(root) {
                    return Err(AuthError::RootRoleNotExist);
                }
                self.enabled = true;
                tracing::info!("authentication enabled");
            }
            Change::Disable(_) => {
                if !self.enabled {
                    return Ok(false);
                }
                self.enabled = false;
                self.tokens.clear();
                tracing::info!("authentication disabled");
            }
            Change::UserAdd(add) => {
                if add.name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(&add.name) {
                    return Err(AuthError::UserAlreadyExist);
                }
                let user = User {
                    name: add.name.clone().into_bytes(),
                    password: add.hashed_password.into_bytes(),
                    roles: Vec::new(),
                    options: Some(UserAddOptions {
                        no_password: add.no_password,
                    }),
                };
                self.users.insert(add.name, user);
            }
            Change::UserDelete(delete) => {
                if self.enabled && delete.name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users
                    .remove(&delete.name)
                    .ok_or(AuthError::UserNotFound)?;
                self.tokens.invalidate_user(&delete.name);
            }
            Change::UserChangePassword(change) => {
                let user = self
                    .users
                    .get_mut(&change.name)
                    .ok_or(AuthError::UserNotFound)?;
                user.password = change.hashed_password.into_bytes();
                self.tokens.invalidate_user(&change.name);
            }
            Change::UserGrantRole(grant) => {
                let user = self
                    .users
                    .get_mut(&grant.user)
                    .ok_or(AuthError::UserNotFound)?;
                if !self.roles.contains_key(&grant.role) {
                    return Err(AuthError::RoleNotFound);
                }
                match user.roles.binary_search(&grant.role) {
                    Ok(_) => return Ok(false),
                    Err(at) => user.roles.insert(at, grant.role),
                }
            }
            Change::UserRevokeRole(revoke) => {
                if self.enabled && revoke.name == ROOT && revoke.role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let user = self
                    .users
                    .get_mut(&revoke.name)
                    .ok_or(AuthError::UserNotFound)?;
                let at = user
                    .roles
                    .binary_search(&revoke.role)
                    .map_err(|_| AuthError::RoleNotGranted)?;
                user.roles.remove(at);
            }
            Change::RoleAdd(add) => {
                if add.name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(&add.name) {
                    return Err(AuthError::RoleAlreadyExist);
                }
                let role = Role {
                    name: add.name.clone().into_bytes(),
                    key_permission: Vec::new(),
                };
                self.roles.insert(add.name, role);
            }
            Change::RoleDelete(delete) => {
                if self.enabled && delete.role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles
                    .remove(&delete.role)
                    .ok_or(AuthError::RoleNotFound)?;
                // Users lose the deleted role, as in etcd.
                for user in self.users.values_mut() {
                    user.roles.retain(|role| *role != delete.role);
                }
            }
            Change::RoleGrantPermission(grant) => {
                let role = self
                    .roles
                    .get_mut(&grant.name)
                    .ok_or(AuthError::RoleNotFound)?;
                let perm = grant.perm.unwrap_or_default();
                let perms = &mut role.key_permission;
                match perms.binary_search_by(|p| perm_order(p).cmp(&perm_order(&perm))) {
                    // The same range again: its type changes.
                    Ok(at) => perms[at].perm_type = perm.perm_type,
                    Err(at) => perms.insert(at, perm),
                }
            }
            Change::RoleRevokePermission(revoke) => {
                let role = self
                    .roles
                    .get_mut(&revoke.role)
                    .ok_or(AuthError::RoleNotFound)?;
                let wanted = (&revoke.key[..], &revoke.range_end[..]);
                let at = role
                    .key_permission
                    .binary_search_by(|p| perm_order(p).cmp(&wanted))
                    .map_err(|_| AuthError::PermissionNotGranted)?;
                role.key_permission.remove(at);
            }
        }
        Ok(true)
    }

    pub fn to_snapshot(&self) -> AuthSnapshot {
        AuthSnapshot {
            enabled: self.enabled,
            revision: self.revision,
            users: self.users.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
        }
    }

    /// Replaces the replicated state with a snapshot's; this member's tokens are forgotten.
    pub fn restore(&mut self, snapshot: &AuthSnapshot) {
        *self = AuthStore {
            enabled: snapshot.enabled,
            revision: snapshot.revision,
            users: snapshot
                .users
                .iter()
                .map(|user| {
                    (
                        String::from_utf8_lossy(&user.name).into_owned(),
                        user.clone(),
                    )
                })
                .collect(),
            roles: snapshot
                .roles
                .iter()
                .map(|role| {
                    (
                        String::from_utf8_lossy(&role.name).into_owned(),
                        role.clone(),
                    )
                })
                .collect(),
            tokens: SimpleTokens::default(),
        };
    }
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|role| role == ROOT)
}

/// Permissions are kept sorted by key, then range end (etcd's `permSlice`).
fn perm_order(perm: &Permission) -> (&[u8], &[u8]) {
    (&perm.key, &perm.range_end)
}
