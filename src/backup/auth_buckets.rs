//! etcd 3.4's auth buckets (its `auth.authStore` keeps them so):
//!
//! | bucket | key | value |
//! | --- | --- | --- |
//! | `auth` | `authEnabled` | one byte, 1 or 0 (absent until auth was first enabled: off) |
//! | `auth` | `authRevision` | the auth revision, 8-byte big-endian |
//! | `authUsers` | user name | `authpb.User` (its `password` is the bcrypt hash) |
//! | `authRoles` | role name | `authpb.Role` |
//!
//! etcd creates the buckets (and sets the revision to 1) when it first opens a backend, so its
//! backups always have them; detcd's leave them out while auth was never used, as its raft
//! snapshots do, and a file without them reads as no auth state.

use prost::Message as _;

use crate::pb::authpb::{permission, Permission, Role, User};
use crate::pb::detcdpb::AuthSnapshot;

use super::bbolt::{Bucket, Database};
use super::etcd::bucket;

const AUTH: &[u8] = b"auth";
const USERS: &[u8] = b"authUsers";
const ROLES: &[u8] = b"authRoles";

const ENABLED: &[u8] = b"authEnabled";
const REVISION: &[u8] = b"authRevision";

/// The three buckets holding `auth`.
pub fn buckets(auth: &AuthSnapshot) -> [Bucket; 3] {
    [
        bucket(
            AUTH,
            [
                (ENABLED.to_vec(), vec![u8::from(auth.enabled)]),
                (REVISION.to_vec(), auth.revision.to_be_bytes().to_vec()),
            ],
        ),
        bucket(
            USERS,
            auth.users
                .iter()
                .map(|user| (user.name.clone(), user.encode_to_vec())),
        ),
        bucket(
            ROLES,
            auth.roles
                .iter()
                .map(|role| (role.name.clone(), role.encode_to_vec())),
        ),
    ]
}

/// The auth state in `database`, or `None` if it has none of the auth buckets.
pub fn read(database: &Database) -> Result<Option<AuthSnapshot>, String> {
    let [auth, users, roles] = [AUTH, USERS, ROLES].map(|name| database.bucket(name));
    if auth.is_none() && users.is_none() && roles.is_none() {
        return Ok(None);
    }
    let setting = |key: &[u8]| {
        auth.and_then(|auth| auth.entries.iter().find(|(k, _)| k == key))
            .map(|(_, value)| &value[..])
    };
    let enabled = match setting(ENABLED) {
        None | Some([0]) => false,
        Some([1]) => true,
        Some(other) => return Err(format!("\"auth\" bucket: authEnabled is {other:02x?}")),
    };
    let revision = match setting(REVISION) {
        None => 0,
        Some(value) => <[u8; 8]>::try_from(value)
            .map(u64::from_be_bytes)
            .map_err(|_| format!("\"auth\" bucket: authRevision is {value:02x?}"))?,
    };
    let users = records(users, "authUsers", |user: &User| &user.name)?
        .into_iter()
        .map(|mut user| {
            // Kept sorted, as etcd's grants keep them; a role twice counts once.
            user.roles.sort();
            user.roles.dedup();
            user
        })
        .collect();
    let roles = records(roles, "authRoles", |role: &Role| &role.name)?
        .into_iter()
        .map(|mut role| {
            role.key_permission = merged_permissions(role.key_permission)?;
            Ok(role)
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("\"authRoles\" bucket: {e}"))?;
    Ok(Some(AuthSnapshot {
        enabled,
        revision,
        users,
        roles,
    }))
}

/// A bucket's records, each under its own name (a UTF-8 one: etcd's names come from strings).
fn records<T: prost::Message + Default>(
    bucket: Option<&Bucket>,
    what: &str,
    name_of: impl Fn(&T) -> &Vec<u8>,
) -> Result<Vec<T>, String> {
    let Some(bucket) = bucket else {
        return Ok(Vec::new());
    };
    bucket
        .entries
        .iter()
        .map(|(key, value)| {
            let name = std::str::from_utf8(key)
                .ok()
                .filter(|name| !name.is_empty())
                .ok_or_else(|| format!("{what:?} bucket: {key:02x?} is not a name"))?;
            let at = format!("{what:?} bucket, {name:?}");
            let record = T::decode(&value[..]).map_err(|e| format!("{at}: {e}"))?;
            if name_of(&record) != key {
                let held = String::from_utf8_lossy(name_of(&record));
                return Err(format!("{at}: holds {held:?}"));
            }
            Ok(record)
        })
        .collect()
}

/// A role's permissions sorted by key and range end, as detcd's store keeps them. etcd 3.4 can
/// hold one range twice (a grant on a key it already has with another range end appends); its
/// checks grant the union, so the two become one with the union of their types.
fn merged_permissions(perms: Vec<Permission>) -> Result<Vec<Permission>, String> {
    let mut merged: Vec<Permission> = Vec::with_capacity(perms.len());
    for perm in perms {
        if permission::Type::try_from(perm.perm_type).is_err() {
            return Err(format!(
                "permission type {} on {:?}",
                perm.perm_type,
                String::from_utf8_lossy(&perm.key)
            ));
        }
        let range = |p: &Permission| (p.key.clone(), p.range_end.clone());
        match merged.binary_search_by_key(&range(&perm), range) {
            Ok(at) if merged[at].perm_type != perm.perm_type => {
                merged[at].perm_type = permission::Type::Readwrite.into();
            }
            Ok(_) => {}
            Err(at) => merged.insert(at, perm),
        }
    }
    Ok(merged)
}
