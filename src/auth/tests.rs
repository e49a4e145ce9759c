//! The auth store's rules, as etcd's `auth/store.go` has them.

use std::time::{Duration, Instant};

use rand::SeedableRng;

use super::*;
use crate::pb::authpb::permission::Type as PermType;
use crate::pb::authpb::Permission;
use crate::pb::detcdpb::auth_change::Change;
use crate::pb::detcdpb::{AuthUserAdd, AuthenticateToken};
use crate::pb::etcdserverpb::*;

const TTL: Duration = Duration::from_secs(300);

fn root() -> Requester {
    Requester::Client(Some(ROOT.into()))
}

fn user(name: &str) -> Requester {
    Requester::Client(Some(name.into()))
}

fn apply(
    store: &mut AuthStore,
    by: &Requester,
    change: Change,
) -> Result<Option<String>, AuthError> {
    store.apply(by, change, 9, Instant::now(), TTL)
}

fn add_user(name: &str) -> Change {
    Change::UserAdd(AuthUserAdd {
        name: name.into(),
        hashed_password: "hash".into(),
        no_password: false,
    })
}

fn add_role(name: &str) -> Change {
    Change::RoleAdd(AuthRoleAddRequest { name: name.into() })
}

fn grant_role(user: &str, role: &str) -> Change {
    Change::UserGrantRole(AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    })
}

fn grant(role: &str, perm_type: PermType, key: &str, range_end: &[u8]) -> Change {
    Change::RoleGrantPermission(AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: Some(Permission {
            perm_type: perm_type as i32,
            key: key.into(),
            range_end: range_end.to_vec(),
        }),
    })
}

fn enable() -> Change {
    Change::Enable(AuthEnableRequest {})
}

/// Root (with the root role) and alice (role r1: read /a, readwrite prefix /p), auth enabled.
fn enabled_store() -> AuthStore {
    let mut store = AuthStore::default();
    let server = Requester::Server;
    for change in [
        add_user(ROOT),
        add_role(ROOT),
        grant_role(ROOT, ROOT),
        add_user("alice"),
        add_role("r1"),
        grant("r1", PermType::Read, "/a", b""),
        grant("r1", PermType::Readwrite, "/p", b"/q"),
        grant_role("alice", "r1"),
        enable(),
    ] {
        apply(&mut store, &server, change).unwrap();
    }
    store
}

#[test]
fn enabling_needs_a_root_user_with_the_root_role() {
    let mut store = AuthStore::default();
    let anyone = Requester::Client(None);
    assert_eq!(
        apply(&mut store, &anyone, enable()),
        Err(AuthError::RootUserNotExist)
    );
    apply(&mut store, &anyone, add_user(ROOT)).unwrap();
    assert_eq!(
        apply(&mut store, &anyone, enable()),
        Err(AuthError::RootRoleNotExist)
    );
    apply(&mut store, &anyone, add_role(ROOT)).unwrap();
    apply(&mut store, &anyone, grant_role(ROOT, ROOT)).unwrap();
    apply(&mut store, &anyone, enable()).unwrap();
    assert!(store.is_enabled());
}

#[test]
fn once_enabled_only_root_changes_the_store() {
    let mut store = enabled_store();
    let revision = store.revision();
    assert_eq!(
        apply(&mut store, &Requester::Client(None), add_user("bob")),
        Err(AuthError::UserEmpty)
    );
    assert_eq!(
        apply(&mut store, &user("alice"), add_user("bob")),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(
        apply(&mut store, &user("ghost"), add_user("bob")),
        Err(AuthError::UserNotFound)
    );
    assert_eq!(store.revision(), revision, "refusals change nothing");
    apply(&mut store, &root(), add_user("bob")).unwrap();
    assert_eq!(store.revision(), revision + 1);
}

#[test]
fn names_and_duplicates_get_etcds_errors() {
    let mut store = enabled_store();
    let by = root();
    assert_eq!(
        apply(&mut store, &by, add_user("")),
        Err(AuthError::UserEmpty)
    );
    assert_eq!(
        apply(&mut store, &by, add_user("alice")),
        Err(AuthError::UserAlreadyExist)
    );
    assert_eq!(
        apply(&mut store, &by, add_role("")),
        Err(AuthError::RoleEmpty)
    );
    assert_eq!(
        apply(&mut store, &by, add_role("r1")),
        Err(AuthError::RoleAlreadyExist)
    );
    assert_eq!(
        apply(&mut store, &by, grant_role("nobody", "r1")),
        Err(AuthError::UserNotFound)
    );
    assert_eq!(
        apply(&mut store, &by, grant_role("alice", "nope")),
        Err(AuthError::RoleNotFound)
    );
    let revoke_role = Change::UserRevokeRole(AuthUserRevokeRoleRequest {
        name: ROOT.into(),
        role: "r1".into(),
    });
    assert_eq!(
        apply(&mut store, &by, revoke_role),
        Err(AuthError::RoleNotGranted)
    );
    let revoke_perm = Change::RoleRevokePermission(AuthRoleRevokePermissionRequest {
        role: "r1".into(),
        key: b"/zz".to_vec(),
        range_end: Vec::new(),
    });
    assert_eq!(
        apply(&mut store, &by, revoke_perm),
        Err(AuthError::PermissionNotGranted)
    );
}

#[test]
fn root_cannot_be_removed_while_auth_is_enabled() {
    let mut store = enabled_store();
    let by = root();
    let delete_root = Change::UserDelete(AuthUserDeleteRequest { name: ROOT.into() });
    assert_eq!(
        apply(&mut store, &by, delete_root),
        Err(AuthError::InvalidAuthMgmt)
    );
    let delete_role = Change::RoleDelete(AuthRoleDeleteRequest { role: ROOT.into() });
    assert_eq!(
        apply(&mut store, &by, delete_role),
        Err(AuthError::InvalidAuthMgmt)
    );
    let revoke = Change::UserRevokeRole(AuthUserRevokeRoleRequest {
        name: ROOT.into(),
        role: ROOT.into(),
    });
    assert_eq!(
        apply(&mut store, &by, revoke),
        Err(AuthError::InvalidAuthMgmt)
    );
}

#[test]
fn permissions_follow_roles_and_revocations_take_effect_at_once() {
    let mut store = enabled_store();
    let alice = user("alice");
    assert_eq!(store.check(&alice, Access::Read, b"/a", b""), Ok(()));
    assert_eq!(
        store.check(&alice, Access::Write, b"/a", b""),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(store.check(&alice, Access::Write, b"/p/x", b""), Ok(()));
    assert_eq!(
        store.check(&root(), Access::Write, b"/anything", &[0]),
        Ok(())
    );
    assert_eq!(
        store.check(&Requester::Client(None), Access::Read, b"/a", b""),
        Err(AuthError::UserEmpty)
    );
    assert_eq!(
        store.check(&Requester::Server, Access::Write, b"/a", b""),
        Ok(())
    );
    let revoke = Change::RoleRevokePermission(AuthRoleRevokePermissionRequest {
        role: "r1".into(),
        key: b"/p".to_vec(),
        range_end: b"/q".to_vec(),
    });
    apply(&mut store, &root(), revoke).unwrap();
    assert_eq!(
        store.check(&alice, Access::Write, b"/p/x", b""),
        Err(AuthError::PermissionDenied)
    );
    let delete_role = Change::RoleDelete(AuthRoleDeleteRequest { role: "r1".into() });
    apply(&mut store, &root(), delete_role).unwrap();
    assert_eq!(
        store.user_get(&root(), "alice"),
        Ok(Vec::new()),
        "users lose a deleted role"
    );
    assert_eq!(
        store.check(&alice, Access::Read, b"/a", b""),
        Err(AuthError::PermissionDenied)
    );
}

#[test]
fn granting_the_same_range_again_changes_its_type() {
    let mut store = enabled_store();
    apply(&mut store, &root(), grant("r1", PermType::Write, "/a", b"")).unwrap();
    let perms = store.role_get(&root(), "r1").unwrap();
    assert_eq!(perms.len(), 2);
    assert_eq!(perms[0].key, b"/a");
    assert_eq!(perms[0].perm_type(), PermType::Write);
}

#[test]
fn users_read_themselves_and_their_roles_only() {
    let store = enabled_store();
    let alice = user("alice");
    assert_eq!(store.user_get(&alice, "alice"), Ok(vec!["r1".to_string()]));
    assert_eq!(
        store.user_get(&alice, ROOT),
        Err(AuthError::PermissionDenied)
    );
    assert!(store.role_get(&alice, "r1").is_ok());
    assert_eq!(
        store.role_get(&alice, ROOT),
        Err(AuthError::PermissionDenied)
    );
    assert_eq!(store.user_list(&alice), Err(AuthError::PermissionDenied));
    assert_eq!(
        store.user_list(&root()),
        Ok(vec!["alice".to_string(), ROOT.to_string()])
    );
}

#[test]
fn tokens_name_users_until_their_password_changes() {
    let mut store = enabled_store();
    let now = Instant::now();
    let authenticate = Change::Authenticate(AuthenticateToken {
        name: "alice".into(),
        token_prefix: "abcdefghijklmnop".into(),
    });
    let token = store
        .apply(&Requester::Client(None), authenticate, 42, now, TTL)
        .unwrap()
        .unwrap();
    assert_eq!(token, "abcdefghijklmnop.42");
    assert_eq!(
        store.user_of_token(&token, now, TTL).as_deref(),
        Some("alice")
    );
    let change = Change::UserChangePassword(crate::pb::detcdpb::AuthUserChangePassword {
        name: "alice".into(),
        hashed_password: "new".into(),
    });
    apply(&mut store, &root(), change).unwrap();
    assert_eq!(store.user_of_token(&token, now, TTL), None);
}

#[test]
fn a_snapshot_restores_the_same_store_without_tokens() {
    let mut store = enabled_store();
    let now = Instant::now();
    let authenticate = Change::Authenticate(AuthenticateToken {
        name: "alice".into(),
        token_prefix: "p".into(),
    });
    let token = store
        .apply(&Requester::Client(None), authenticate, 1, now, TTL)
        .unwrap()
        .unwrap();
    let mut restored = AuthStore::default();
    restored.restore(&store.to_snapshot());
    assert_eq!(restored.to_snapshot(), store.to_snapshot());
    assert!(restored.is_enabled());
    assert_eq!(
        restored.check(&user("alice"), Access::Read, b"/a", b""),
        Ok(())
    );
    assert_eq!(restored.user_of_token(&token, now, TTL), None);
}

// Simple tokens (here, not in `tokens`: only the seams and tests.rs files may read the host clock).

#[test]
fn a_token_lives_for_its_ttl_after_its_last_use() {
    let mut tokens = tokens::SimpleTokens::default();
    let start = Instant::now();
    let ttl = TTL;
    tokens.assign("abc.7".into(), "alice".into(), start, ttl);
    let later = start + Duration::from_secs(200);
    assert_eq!(
        tokens.user_of("abc.7", later, ttl).as_deref(),
        Some("alice")
    );
    assert_eq!(
        tokens
            .user_of("abc.7", later + Duration::from_secs(299), ttl)
            .as_deref(),
        Some("alice")
    );
    assert_eq!(
        tokens.user_of("abc.7", later + Duration::from_secs(900), ttl),
        None
    );
    assert_eq!(tokens.user_of("nope.1", start, ttl), None);
}

#[test]
fn invalidating_a_user_drops_only_its_tokens() {
    let mut tokens = tokens::SimpleTokens::default();
    let now = Instant::now();
    let ttl = TTL;
    tokens.assign("a.1".into(), "alice".into(), now, ttl);
    tokens.assign("b.2".into(), "bob".into(), now, ttl);
    tokens.invalidate_user("alice");
    assert_eq!(tokens.user_of("a.1", now, ttl), None);
    assert_eq!(tokens.user_of("b.2", now, ttl).as_deref(), Some("bob"));
}

#[test]
fn prefixes_are_letters_of_etcds_length() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let prefix = tokens::random_prefix(&mut rng);
    assert_eq!(prefix.len(), tokens::PREFIX_LEN);
    assert!(prefix.bytes().all(|b| b.is_ascii_alphabetic()));
    assert_ne!(prefix, tokens::random_prefix(&mut rng));
}
