//! etcd 3.4's backend schema, the buckets of the bbolt file `etcdctl snapshot save` writes:
//!
//! | bucket | key | value |
//! | --- | --- | --- |
//! | `key` | revision: 8-byte big-endian main, `_`, 8-byte big-endian sub, `t` if a tombstone | `mvccpb.KeyValue` (a tombstone's holds the key only) |
//! | `meta` | `consistent_index`, `scheduledCompactRev`, `finishedCompactRev` | 8-byte big-endian index; compact revisions as revision keys (sub 0) |
//! | `lease` | 8-byte big-endian lease id | `leasepb.Lease` |
//! | `members` | member id in hex | the member as JSON |
//! | `members_removed` | member id in hex | `removed` |
//! | `cluster` | `clusterVersion` | the cluster version |
//! | `alarm` | `etcdserverpb.AlarmMember` | empty |
//! | `auth`, `authUsers`, `authRoles` | see [`super::auth_buckets`] | |
//!
//! The compact revisions are there only once a compaction ran. A restore reads `key`, `meta`,
//! `lease` and the auth buckets; membership and alarms belong to the old cluster and are left
//! behind, as `etcdctl snapshot restore` leaves them.

use prost::Message as _;

use crate::pb::detcdpb::{KvChange, KvSnapshot, LeaseSnapshot, SnapshotData};
use crate::pb::etcdserverpb::{Member, RangeRequest};
use crate::pb::mvccpb::KeyValue;
use crate::server::lease::lessor::LEASE_TTL_SECONDS_MAX;
use crate::storage::mvcc::{Crc32c, KvStore, Revision};

use super::auth_buckets;
use super::bbolt::{self, Bucket, Database};
use super::{append_trailer, verified_body, Backup, Status};

const KEY: &[u8] = b"key";
const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const MEMBERS: &[u8] = b"members";
const MEMBERS_REMOVED: &[u8] = b"members_removed";
const CLUSTER: &[u8] = b"cluster";
const ALARM: &[u8] = b"alarm";

const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
const CLUSTER_VERSION: &[u8] = b"clusterVersion";
/// The cluster version an etcd 3.4 cluster records once all members run 3.4.
const CLUSTER_VERSION_VALUE: &[u8] = b"3.4.0";

/// Far past any real store's revision (a million writes a second for 100,000 years), and far
/// enough below `i64::MAX` that the restored store's next writes never overflow it.
const MAX_REVISION: i64 = 1 << 62;

/// etcd's `leasepb.Lease`.
#[derive(Clone, PartialEq, prost::Message)]
struct LeaseRecord {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

/// The state as etcd 3.4's backup of it: the bbolt database and its sha256 trailer.
/// `consistent_index` is the raft index the state is at.
pub fn encode(data: &SnapshotData, consistent_index: u64) -> Vec<u8> {
    let no_kv = KvSnapshot::default();
    let kv = data.kv.as_ref().unwrap_or(&no_kv);
    let mut meta = vec![(
        CONSISTENT_INDEX.to_vec(),
        consistent_index.to_be_bytes().to_vec(),
    )];
    if kv.compact_revision > 0 {
        let compacted = Revision::new(kv.compact_revision, 0).backend_key(false);
        meta.push((FINISHED_COMPACT.to_vec(), compacted.clone()));
        meta.push((SCHEDULED_COMPACT.to_vec(), compacted));
    }
    let mut buckets = vec![
        bucket(
            KEY,
            kv.changes.iter().map(|change| {
                let value = match &change.kv {
                    Some(kv) if change.tombstone => KeyValue {
                        key: kv.key.clone(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                    Some(kv) => kv.encode_to_vec(),
                    None => Vec::new(),
                };
                let key = Revision::new(change.main, change.sub).backend_key(change.tombstone);
                (key, value)
            }),
        ),
        bucket(META, meta),
        bucket(
            LEASE,
            data.leases.iter().map(|lease| {
                let record = LeaseRecord {
                    id: lease.id,
                    ttl: lease.ttl_seconds,
                    remaining_ttl: lease.remaining_ttl_seconds,
                };
                (lease.id.to_be_bytes().to_vec(), record.encode_to_vec())
            }),
        ),
        bucket(
            MEMBERS,
            data.members
                .iter()
                .map(|member| (member_key(member.id), member_json(member))),
        ),
        bucket(
            MEMBERS_REMOVED,
            data.removed_member_ids
                .iter()
                .map(|&id| (member_key(id), b"removed".to_vec())),
        ),
        bucket(
            CLUSTER,
            [(CLUSTER_VERSION.to_vec(), CLUSTER_VERSION_VALUE.to_vec())],
        ),
        bucket(
            ALARM,
            data.alarms
                .iter()
                .map(|alarm| (alarm.encode_to_vec(), Vec::new())),
        ),
    ];
    // `None` while auth was never used: files of such clusters stay as they were.
    if let Some(auth) = &data.auth {
        buckets.extend(auth_buckets::buckets(auth));
    }
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut file = bbolt::write(&buckets);
    append_trailer(&mut file);
    file
}

/// A bucket of `entries`, sorted as bbolt keeps them.
pub(super) fn bucket(name: &[u8], entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Bucket {
    let mut entries: Vec<_> = entries.into_iter().collect();
    entries.sort();
    Bucket {
        name: name.to_vec(),
        entries,
    }
}

/// Go's `types.ID.String()`: lower-case hex without padding.
fn member_key(id: u64) -> Vec<u8> {
    format!("{id:x}").into_bytes()
}

/// etcd's `membership.Member` as `encoding/json` writes it: the id, the raft attributes, then
/// the others, empty ones left out as their `omitempty` tags say.
fn member_json(member: &Member) -> Vec<u8> {
    let list = |urls: &[String]| {
        let urls: Vec<String> = urls.iter().map(|url| json_string(url)).collect();
        format!("[{}]", urls.join(","))
    };
    let mut json = format!(
        "{{\"id\":{},\"peerURLs\":{}",
        member.id,
        list(&member.peer_ur_ls)
    );
    if member.is_learner {
        json.push_str(",\"isLearner\":true");
    }
    if !member.name.is_empty() {
        json.push_str(&format!(",\"name\":{}", json_string(&member.name)));
    }
    if !member.client_ur_ls.is_empty() {
        json.push_str(&format!(",\"clientURLs\":{}", list(&member.client_ur_ls)));
    }
    json.push('}');
    json.into_bytes()
}

/// A JSON string as Go's `encoding/json` escapes it (HTML characters too).
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Verifies and decodes an etcd 3.4 backup (or, with `skip_hash_check`, a bare database file
/// such as a member's `member/snap/db`).
pub fn decode(file: &[u8], skip_hash_check: bool) -> Result<Backup, String> {
    let body = verified_body(file, skip_hash_check)?;
    let database =
        bbolt::read(body).map_err(|e| format!("snapshot file integrity check failed: {e}"))?;
    let kv = kv_snapshot(&database)?;
    let leases = leases(&database)?;
    check_leases_of_live_keys(&kv, &leases)?;
    let auth = auth_buckets::read(&database)?;
    Ok(Backup {
        status: status(&database),
        data: SnapshotData {
            kv: Some(kv),
            leases,
            auth,
            ..Default::default()
        },
    })
}

fn kv_snapshot(database: &Database) -> Result<KvSnapshot, String> {
    let keys = database
        .bucket(KEY)
        .ok_or("no \"key\" bucket: not an etcd backend")?;
    let mut changes: Vec<KvChange> = Vec::with_capacity(keys.entries.len());
    for (key, value) in &keys.entries {
        let (rev, tombstone) = Revision::from_backend_key(key)
            .filter(|(rev, _)| (1..=MAX_REVISION).contains(&rev.main) && rev.sub >= 0)
            .ok_or_else(|| format!("\"key\" bucket: {key:02x?} is not a revision"))?;
        let at = |what: &dyn std::fmt::Display| {
            format!("\"key\" bucket, revision {}_{}: {what}", rev.main, rev.sub)
        };
        if changes
            .last()
            .is_some_and(|last| Revision::new(last.main, last.sub) >= rev)
        {
            return Err(at(&"twice, as a put and a tombstone"));
        }
        let kv = KeyValue::decode(&value[..]).map_err(|e| at(&e))?;
        check_key_value(&kv, rev, tombstone).map_err(|e| at(&e))?;
        changes.push(KvChange {
            main: rev.main,
            sub: rev.sub,
            kv: Some(kv),
            tombstone,
        });
    }
    let finished = compact_revision(database, FINISHED_COMPACT)?;
    let scheduled = compact_revision(database, SCHEDULED_COMPACT)?;
    let newest = changes.last().map_or(1, |change| change.main);
    let snapshot = KvSnapshot {
        current_revision: newest.max(finished).max(scheduled),
        compact_revision: finished,
        changes,
        deletes_at_compact_revision: Vec::new(),
    };
    if scheduled <= finished {
        return Ok(snapshot);
    }
    // A compaction was cut short: etcd finishes it when it starts on the file, so do the same.
    let mut store = KvStore::from_snapshot(snapshot);
    store
        .compact(scheduled)
        .map_err(|e| format!("cannot finish the compaction at {scheduled}: {e}"))?;
    Ok(store.to_snapshot())
}

/// What etcd's store relies on in a revision's value, so a damaged one is refused here rather
/// than served.
fn check_key_value(kv: &KeyValue, rev: Revision, tombstone: bool) -> Result<(), String> {
    if kv.key.is_empty() {
        return Err("empty key".into());
    }
    if tombstone {
        return Ok(());
    }
    if kv.mod_revision != rev.main {
        return Err(format!("mod_revision {}", kv.mod_revision));
    }
    if !(1..=rev.main).contains(&kv.create_revision) {
        return Err(format!("create_revision {}", kv.create_revision));
    }
    if !(1..=rev.main).contains(&kv.version) {
        return Err(format!("version {}", kv.version));
    }
    if kv.lease < 0 {
        return Err(format!("lease {}", kv.lease));
    }
    Ok(())
}

/// A compact revision in `meta`, or -1 (never compacted) if it is not there.
fn compact_revision(database: &Database, name: &[u8]) -> Result<i64, String> {
    let value = database
        .bucket(META)
        .and_then(|meta| meta.entries.iter().find(|(key, _)| key == name))
        .map(|(_, value)| value);
    match value {
        None => Ok(-1),
        Some(value) => Revision::from_backend_key(value)
            .filter(|(rev, tombstone)| (1..=MAX_REVISION).contains(&rev.main) && !tombstone)
            .map(|(rev, _)| rev.main)
            .ok_or_else(|| {
                format!(
                    "\"meta\" bucket: {} is not a revision",
                    String::from_utf8_lossy(name)
                )
            }),
    }
}

fn leases(database: &Database) -> Result<Vec<LeaseSnapshot>, String> {
    let Some(bucket) = database.bucket(LEASE) else {
        return Ok(Vec::new());
    };
    bucket
        .entries
        .iter()
        .map(|(key, value)| {
            let id = <[u8; 8]>::try_from(&key[..])
                .map(i64::from_be_bytes)
                .map_err(|_| format!("\"lease\" bucket: {key:02x?} is not a lease id"))?;
            let at = format!("\"lease\" bucket, lease {id:x}");
            let record = LeaseRecord::decode(&value[..]).map_err(|e| format!("{at}: {e}"))?;
            let ttls = 1..=LEASE_TTL_SECONDS_MAX;
            if record.id != id || id <= 0 {
                return Err(format!("{at}: holds lease id {:x}", record.id));
            }
            if !ttls.contains(&record.ttl) || !(0..=record.ttl).contains(&record.remaining_ttl) {
                return Err(format!(
                    "{at}: TTL {} and remaining TTL {}",
                    record.ttl, record.remaining_ttl
                ));
            }
            Ok(LeaseSnapshot {
                id,
                ttl_seconds: record.ttl,
                remaining_ttl_seconds: record.remaining_ttl,
            })
        })
        .collect()
}

/// Every key alive now that carries a lease carries one the backup has (etcd revokes a lease
/// and deletes its keys in one step, so a live key never outlives its lease).
fn check_leases_of_live_keys(kv: &KvSnapshot, leases: &[LeaseSnapshot]) -> Result<(), String> {
    let everything = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    let live = KvStore::from_snapshot(kv.clone())
        .range(&everything)
        .map_err(|e| format!("cannot read the keys back: {e}"))?;
    match live
        .kvs
        .iter()
        .find(|kv| kv.lease != 0 && !leases.iter().any(|lease| lease.id == kv.lease))
    {
        Some(orphan) => Err(format!(
            "key {:?} carries lease {:x}, which the \"lease\" bucket lacks",
            String::from_utf8_lossy(&orphan.key),
            orphan.lease
        )),
        None => Ok(()),
    }
}

/// `etcdctl snapshot status`: a CRC-32C over every bucket's name, keys and values in file
/// order, the newest revision in `key`, and the entries of all buckets.
fn status(database: &Database) -> Status {
    let mut hash = Crc32c::new();
    let mut total_keys = 0;
    let mut revision = 0;
    for bucket in &database.buckets {
        hash.write(&bucket.name);
        for (key, value) in &bucket.entries {
            hash.write(key);
            hash.write(value);
            total_keys += 1;
        }
        if bucket.name == KEY {
            revision = bucket
                .entries
                .last()
                .and_then(|(key, _)| Revision::from_backend_key(key))
                .map_or(0, |(rev, _)| rev.main);
        }
    }
    Status {
        hash: hash.sum(),
        revision,
        total_keys,
        total_size_bytes: database.size_bytes,
    }
}
