//! etcd's format round trip and refusals; `tests/snapshot_etcd.rs` checks the same files against
//! the real etcd 3.4 and etcdctl.

use prost::Message as _;

use super::*;
use crate::pb::authpb::{permission, Permission, Role, User, UserAddOptions};
use crate::pb::detcdpb::{AuthSnapshot, LeaseSnapshot};
use crate::pb::etcdserverpb::{DeleteRangeRequest, Member, PutRequest};
use crate::storage::mvcc::KvStore;

/// A store with overwrites, a delete, a compaction and a key on a lease, like a real one.
fn data() -> SnapshotData {
    let mut store = KvStore::new();
    let put = |store: &mut KvStore, key: &str, value: &str, lease: i64| {
        let request = PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ..Default::default()
        };
        store.put(&request, &|_| true).unwrap();
    };
    for i in 0..300 {
        put(
            &mut store,
            &format!("k{}", i % 40),
            &format!("value {i}"),
            0,
        );
    }
    put(&mut store, "leased", "x", 0x1234);
    store
        .delete_range(&DeleteRangeRequest {
            key: b"k7".to_vec(),
            ..Default::default()
        })
        .unwrap();
    store.compact(200).unwrap();
    put(&mut store, "k1", "after", 0);
    SnapshotData {
        kv: Some(store.to_snapshot()),
        members: vec![Member {
            id: 0x8e9e_05c5_2164_694d,
            name: "n1".into(),
            peer_ur_ls: vec!["http://127.0.0.1:2380".into()],
            ..Default::default()
        }],
        leases: vec![LeaseSnapshot {
            id: 0x1234,
            ttl_seconds: 60,
            remaining_ttl_seconds: 0,
        }],
        ..Default::default()
    }
}

#[test]
fn an_etcd_backup_decodes_to_the_same_keys_and_leases() {
    let data = data();
    let file = encode(&data, 42);
    assert_eq!(
        file.len() % 512,
        32,
        "etcdctl's check for the sha256 trailer"
    );
    let backup = decode(&file, false).unwrap();
    let kv = data.kv.clone().unwrap();
    let mut expected = kv.clone();
    // etcd's format has no place for these (etcd itself forgets them).
    expected.deletes_at_compact_revision.clear();
    assert_eq!(backup.data.kv, Some(expected));
    assert_eq!(backup.data.leases, data.leases);
    assert_eq!(backup.status.revision, kv.current_revision);
    // Every KV revision, the lease, a member, the cluster version and three meta entries.
    assert_eq!(
        backup.status.total_keys,
        kv.changes.len() as u64 + 1 + 1 + 1 + 3
    );
    assert_eq!(backup.status.total_size_bytes, file.len() as u64 - 32);
}

#[test]
fn the_hash_is_checked_unless_skipped() {
    let mut file = encode(&data(), 1);
    let last_page = file.len() - 32 - 100;
    file[last_page] ^= 1;
    let error = decode(&file, false).unwrap_err();
    assert!(error.starts_with("expected sha256 "), "{error}");
    // The flipped byte is page padding, so with the check skipped the file still reads.
    assert!(decode(&file, true).is_ok());

    let bare = &encode(&data(), 1)[..file.len() - 32];
    let error = decode(bare, false).unwrap_err();
    assert_eq!(error, "snapshot missing hash but --skip-hash-check=false");
    assert!(decode(bare, true).is_ok());
}

#[test]
fn damaged_or_cut_files_are_refused() {
    let file = encode(&data(), 1);
    // Flips of bytes that hold something (the rest is page padding).
    let held = (0..file.len()).filter(|&at| file[at] != 0);
    for at in held.step_by(23) {
        let mut damaged = file.clone();
        damaged[at] ^= 0x04;
        assert!(decode(&damaged, false).is_err(), "flip at {at} unnoticed");
        // Unchecked, a flip may still read (in a value, say); it must never panic.
        let _ = decode(&damaged, true);
    }
    for len in (0..file.len()).step_by(61) {
        assert!(decode(&file[..len], false).is_err(), "cut to {len}");
        // Unchecked, a cut in the trailer leaves a whole database.
        if len < file.len() - 32 {
            assert!(decode(&file[..len], true).is_err(), "cut to {len}");
        }
    }
}

#[test]
fn a_live_key_on_a_missing_lease_is_refused() {
    let mut data = data();
    data.leases.clear();
    let error = decode(&encode(&data, 1), false).unwrap_err();
    assert!(error.contains("carries lease 1234"), "{error}");
}

#[test]
fn a_compaction_cut_short_is_finished_on_restore() {
    // Finished at 200 but scheduled at 250: etcd finishes the compaction when it opens the file.
    let data = data();
    let mut store = KvStore::from_snapshot(data.kv.clone().unwrap());
    store.compact(250).unwrap();
    let mut buckets = bbolt::read(&encode(&data, 1)[..]).unwrap().buckets;
    buckets.retain(|bucket| bucket.name != b"meta");
    let meta = bbolt::Bucket {
        name: b"meta".to_vec(),
        entries: vec![
            (
                b"finishedCompactRev".to_vec(),
                crate::storage::mvcc::Revision::new(200, 0).backend_key(false),
            ),
            (
                b"scheduledCompactRev".to_vec(),
                crate::storage::mvcc::Revision::new(250, 0).backend_key(false),
            ),
        ],
    };
    buckets.push(meta);
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut file = bbolt::write(&buckets);
    append_trailer(&mut file);
    let restored = decode(&file, false).unwrap().data.kv.unwrap();
    let mut expected = store.to_snapshot();
    expected.deletes_at_compact_revision.clear();
    let mut restored_without_drops = restored.clone();
    restored_without_drops.deletes_at_compact_revision.clear();
    assert_eq!(restored_without_drops, expected);
    assert_eq!(restored.compact_revision, 250);
}

#[test]
fn members_are_etcds_json() {
    let member = Member {
        id: 13668033151171901709,
        name: "default".into(),
        peer_ur_ls: vec!["http://127.0.0.1:23801".into()],
        client_ur_ls: vec!["http://127.0.0.1:23791".into()],
        is_learner: false,
    };
    // As etcd 3.4 wrote this member into its own database.
    assert_eq!(
        String::from_utf8(etcd_json(&member)).unwrap(),
        r#"{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"default","clientURLs":["http://127.0.0.1:23791"]}"#
    );
    let learner = Member {
        id: 1,
        peer_ur_ls: vec!["http://a:1".into(), "http://b:2".into()],
        is_learner: true,
        ..Default::default()
    };
    assert_eq!(
        String::from_utf8(etcd_json(&learner)).unwrap(),
        r#"{"id":1,"peerURLs":["http://a:1","http://b:2"],"isLearner":true}"#
    );
}

fn etcd_json(member: &Member) -> Vec<u8> {
    let data = SnapshotData {
        members: vec![member.clone()],
        ..Default::default()
    };
    let database = bbolt::read(&encode(&data, 1)[..]).unwrap();
    database.bucket(b"members").unwrap().entries[0].1.clone()
}

#[test]
fn detcds_older_format_and_etcds_restore_the_same_member() {
    use std::path::Path;
    use std::sync::Arc;

    use crate::config::InitialMember;
    use crate::io::SimDisk;
    use crate::raft_node::SnapshotFiles;
    use crate::storage::wal::Wal;

    let data = data();
    let restored = [legacy::encode(&data), encode(&data, 7)].map(|file| {
        let disk = SimDisk::new(0);
        let options = restore::RestoreOptions {
            name: "n1".into(),
            data_dir: "/n1.etcd".into(),
            wal_dir: "/n1.etcd/member/wal".into(),
            initial_cluster: vec![InitialMember {
                name: "n1".into(),
                peer_urls: vec!["http://10.0.0.1:2380".into()],
            }],
            initial_cluster_token: "restored".into(),
            initial_advertise_peer_urls: vec!["http://10.0.0.1:2380".into()],
        };
        let backup = decode(&file, false).unwrap();
        restore::restore(Arc::new(disk.clone()), &backup, &options).unwrap();
        let (_, wal) = Wal::open(Arc::new(disk.clone()), Path::new("/n1.etcd/member/wal")).unwrap();
        let snapshot = SnapshotFiles::new(Arc::new(disk), "/n1.etcd/member/snap".into())
            .load(&wal.snapshot.expect("a snapshot marker"))
            .unwrap();
        SnapshotData::decode(&snapshot.data[..]).unwrap()
    });
    let [mut from_legacy, from_etcd] = restored;
    // Only detcd's own format keeps the deletes at the compact revision.
    let expected = data.kv.as_ref().unwrap();
    assert_eq!(
        from_legacy.kv.as_ref().unwrap().deletes_at_compact_revision,
        expected.deletes_at_compact_revision
    );
    from_legacy
        .kv
        .as_mut()
        .unwrap()
        .deletes_at_compact_revision
        .clear();
    assert_eq!(from_legacy, from_etcd);
    assert_eq!(from_etcd.leases, data.leases);
    assert_eq!(from_etcd.members.len(), 1, "the new member, not the old");
}

/// Auth as etcd 3.4 holds it after `user add root`, `user add alice`, `role add root`,
/// `role add app`, a readwrite grant on the prefix `/app/`, the grants and `auth enable`.
fn auth() -> AuthSnapshot {
    let hash = |password| crate::auth::password::hash(password, 4, [3; 16]).into_bytes();
    let user = |name: &str, password, roles: &[&str]| User {
        name: name.into(),
        password: hash(password),
        roles: roles.iter().map(|role| role.to_string()).collect(),
        options: Some(UserAddOptions { no_password: false }),
    };
    AuthSnapshot {
        enabled: true,
        revision: 9,
        users: vec![
            user("alice", "alicepw", &["app"]),
            user("root", "rootpw", &["root"]),
        ],
        roles: vec![
            Role {
                name: b"app".to_vec(),
                key_permission: vec![Permission {
                    perm_type: permission::Type::Readwrite.into(),
                    key: b"/app/".to_vec(),
                    range_end: b"/app0".to_vec(),
                }],
            },
            Role {
                name: b"root".to_vec(),
                key_permission: Vec::new(),
            },
        ],
    }
}

#[test]
fn users_roles_and_the_auth_flag_round_trip_in_etcds_buckets() {
    let data = SnapshotData {
        auth: Some(auth()),
        ..data()
    };
    let file = encode(&data, 3);
    assert_eq!(decode(&file, false).unwrap().data.auth, data.auth);

    // Laid out as etcd 3.4's auth store keeps them.
    let database = bbolt::read(&file[..file.len() - 32]).unwrap();
    let entries = |name: &[u8]| database.bucket(name).unwrap().entries.clone();
    assert_eq!(
        entries(b"auth"),
        vec![
            (b"authEnabled".to_vec(), vec![1]),
            (b"authRevision".to_vec(), vec![0, 0, 0, 0, 0, 0, 0, 9]),
        ]
    );
    let users = entries(b"authUsers");
    let names: Vec<&[u8]> = users.iter().map(|(name, _)| &name[..]).collect();
    assert_eq!(names, [&b"alice"[..], b"root"]);
    let alice = User::decode(&users[0].1[..]).unwrap();
    assert_eq!(alice, auth().users[0]);
    assert!(String::from_utf8(alice.password)
        .unwrap()
        .starts_with("$2a$04$"));
    let roles = entries(b"authRoles");
    assert_eq!(roles[0].0, b"app");
    assert_eq!(Role::decode(&roles[0].1[..]).unwrap(), auth().roles[0]);
}

#[test]
fn a_store_that_never_used_auth_has_no_auth_buckets() {
    let file = encode(&data(), 3);
    let database = bbolt::read(&file[..file.len() - 32]).unwrap();
    assert!(database
        .buckets
        .iter()
        .all(|bucket| !bucket.name.starts_with(b"auth")));
    assert_eq!(decode(&file, false).unwrap().data.auth, None);
}

/// `data()` with auth, its buckets changed by `damage`, written back as a file.
fn with_auth_buckets(damage: impl FnOnce(&mut Vec<bbolt::Bucket>)) -> Vec<u8> {
    let data = SnapshotData {
        auth: Some(auth()),
        ..data()
    };
    let file = encode(&data, 1);
    let mut buckets = bbolt::read(&file[..file.len() - 32]).unwrap().buckets;
    damage(&mut buckets);
    let mut file = bbolt::write(&buckets);
    append_trailer(&mut file);
    file
}

fn set(buckets: &mut [bbolt::Bucket], bucket: &[u8], key: &[u8], value: Vec<u8>) {
    let bucket = buckets.iter_mut().find(|b| b.name == bucket).unwrap();
    bucket.entries.retain(|(k, _)| k != key);
    bucket.entries.push((key.to_vec(), value));
    bucket.entries.sort();
}

/// A bucket, a key, the value put there, and what the refusal says.
type AuthDamage<'a> = (&'a [u8], &'a [u8], Vec<u8>, &'a str);

#[test]
fn damaged_auth_records_are_refused() {
    let alice_as_bob = User {
        name: b"bob".to_vec(),
        ..auth().users[0].clone()
    };
    let mut bad_type = auth().roles[0].clone();
    bad_type.key_permission[0].perm_type = 7;
    let cases: Vec<AuthDamage> = vec![
        (b"auth", b"authEnabled", vec![2], "authEnabled is [02]"),
        (
            b"auth",
            b"authRevision",
            vec![0, 1],
            "authRevision is [00, 01]",
        ),
        (
            b"authUsers",
            b"alice",
            vec![0xff],
            "\"authUsers\" bucket, \"alice\": ",
        ),
        (
            b"authUsers",
            b"alice",
            alice_as_bob.encode_to_vec(),
            "holds \"bob\"",
        ),
        (b"authUsers", &[0xc3], Vec::new(), "is not a name"),
        (
            b"authRoles",
            b"app",
            bad_type.encode_to_vec(),
            "permission type 7 on \"/app/\"",
        ),
    ];
    for (bucket, key, value, error) in cases {
        let file = with_auth_buckets(|buckets| set(buckets, bucket, key, value));
        let refused = decode(&file, false).unwrap_err();
        assert!(refused.contains(error), "{refused}");
    }
}

#[test]
fn etcds_fresh_store_and_its_repeated_grants_read_as_detcd_keeps_them() {
    // A fresh etcd store: the buckets, revision 1, no authEnabled key, nothing else.
    let file = with_auth_buckets(|buckets| {
        for bucket in buckets.iter_mut().filter(|b| b.name.starts_with(b"auth")) {
            bucket.entries.clear();
        }
        set(
            buckets,
            b"auth",
            b"authRevision",
            1u64.to_be_bytes().to_vec(),
        );
    });
    let fresh = decode(&file, false).unwrap().data.auth.unwrap();
    assert_eq!(
        fresh,
        AuthSnapshot {
            revision: 1,
            ..Default::default()
        }
    );

    // etcd 3.4 can append a range a role already has; roles it keeps sorted.
    let perm = |perm_type: permission::Type, key: &[u8], range_end: &[u8]| Permission {
        perm_type: perm_type.into(),
        key: key.to_vec(),
        range_end: range_end.to_vec(),
    };
    let role = Role {
        name: b"app".to_vec(),
        key_permission: vec![
            perm(permission::Type::Read, b"b", b""),
            perm(permission::Type::Read, b"a", b"c"),
            perm(permission::Type::Write, b"b", b""),
        ],
    };
    let user = User {
        roles: vec!["b".into(), "a".into(), "b".into()],
        ..auth().users[0].clone()
    };
    let file = with_auth_buckets(|buckets| {
        set(buckets, b"authRoles", b"app", role.encode_to_vec());
        set(buckets, b"authUsers", b"alice", user.encode_to_vec());
    });
    let read = decode(&file, false).unwrap().data.auth.unwrap();
    assert_eq!(
        read.roles[0].key_permission,
        [
            perm(permission::Type::Read, b"a", b"c"),
            perm(permission::Type::Readwrite, b"b", b""),
        ]
    );
    assert_eq!(read.users[0].roles, ["a", "b"]);
}
