//! Bootstrap (etcd's `bootstrap.go`): decide who this member is and load what it has on disk.
//!
//! Three ways in:
//! - **new cluster**: derive member and cluster ids from the flags, write them into the WAL's
//!   metadata, and write the bootstrap log — one committed `AddNode` conf change per initial
//!   member at term 1, as etcd does — so that a member joining later learns the initial voters by
//!   replaying the log like everything else;
//! - **join an existing cluster**: ask the peers for the member list, find this member in it
//!   (added beforehand with `member add`), and start with an empty log that the leader fills;
//! - **restart**: read identity from the WAL metadata and ignore the bootstrap flags, as etcd
//!   does, so a restart can never silently change identity; load the last snapshot, then the
//!   entries after it.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState};
use raft::storage::MemStorage;

use crate::config::{ClusterState, Config, InitialMember};
use crate::io::{probe_writable, Clock, Disk};
use crate::pb::detcdpb::raft_peer_client::RaftPeerClient;
use crate::pb::detcdpb::{AuthSnapshot, LeaseSnapshot, MembersRequest, SnapshotData, WalMetadata};
use crate::pb::etcdserverpb::{AlarmMember, Member};
use crate::raft_node::{LogStore, SnapshotFiles};
use crate::server::membership::Membership;
use crate::storage::mvcc::KvStore;
use crate::storage::wal::{Wal, WalError};

/// How long to wait for one peer's member list when joining.
const MEMBERS_FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// What bootstrap could not get past; `main` prints it and exits non-zero.
#[derive(Debug)]
pub enum BootstrapError {
    DataDir(String),
    Wal(WalError),
    Snapshot(String),
    Config(String),
}

impl std::fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootstrapError::DataDir(why) => write!(f, "cannot access data directory: {why}"),
            BootstrapError::Wal(error) => write!(f, "cannot open WAL: {error}"),
            BootstrapError::Snapshot(why) => write!(f, "cannot load snapshot: {why}"),
            BootstrapError::Config(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BootstrapError {}

impl From<WalError> for BootstrapError {
    fn from(error: WalError) -> Self {
        BootstrapError::Wal(error)
    }
}

/// The cluster a joining member was added to, as its peers describe it.
#[derive(Debug, Clone)]
pub struct RemoteCluster {
    pub cluster_id: u64,
    pub members: Vec<Member>,
}

/// The member as it comes out of bootstrap: identity, the state machine as of `applied_index`,
/// raft's log primed from disk, and the WAL open for appending.
pub struct Bootstrapped {
    pub metadata: WalMetadata,
    pub store: LogStore,
    pub wal: Wal,
    pub snapshot_files: SnapshotFiles,
    pub kv: KvStore,
    pub membership: Membership,
    /// Leases as of the snapshot the member restarted from (empty otherwise).
    pub leases: Vec<LeaseSnapshot>,
    /// Alarms as of that snapshot.
    pub alarms: Vec<AlarmMember>,
    /// The auth store as of that snapshot.
    pub auth: AuthSnapshot,
    pub applied_index: u64,
}

pub async fn bootstrap(
    config: &Config,
    disk: Arc<dyn Disk>,
    remote: Option<RemoteCluster>,
) -> Result<Bootstrapped, BootstrapError> {
    let snapshot_files =
        SnapshotFiles::new(disk.clone(), config.data_dir.join("member").join("snap"))
            .keep(config.max_snapshots);
    if Wal::exists(disk.as_ref(), &config.wal_dir) {
        return restart(config, disk, snapshot_files);
    }
    probe_writable(disk.as_ref(), &config.data_dir)
        .and_then(|()| probe_writable(disk.as_ref(), &config.wal_dir))
        .map_err(|e| BootstrapError::DataDir(e.to_string()))?;
    match (&config.initial_cluster_state, remote) {
        (ClusterState::New, _) => create(config, disk, snapshot_files).await,
        (ClusterState::Existing, Some(remote)) => join(config, disk, snapshot_files, remote),
        (ClusterState::Existing, None) => Err(BootstrapError::Config(
            "--initial-cluster-state existing needs the cluster's member list from a peer".into(),
        )),
    }
}

async fn create(
    config: &Config,
    disk: Arc<dyn Disk>,
    snapshot_files: SnapshotFiles,
) -> Result<Bootstrapped, BootstrapError> {
    let members = initial_members(&config.initial_cluster, &config.initial_cluster_token);
    let local = members
        .iter()
        .find(|m| m.name == config.name)
        .expect("config validation guarantees the local member is in the initial cluster");
    let metadata = WalMetadata {
        member_id: local.id,
        cluster_id: cluster_id(&members),
        members: members.clone(),
        joined_existing: false,
    };
    let mut wal = Wal::create(disk, &config.wal_dir, &metadata.encode_to_vec())?;
    wal.set_segment_bytes_max(config.wal_segment_bytes);
    let entries = bootstrap_log(&members);
    let hard_state = HardState {
        term: 1,
        commit: entries.len() as u64,
        ..Default::default()
    };
    wal.save(Some(&hard_state), &entries).await?;
    let storage = MemStorage::new_with_conf_state(initial_conf_state(&metadata));
    {
        let mut core = storage.wl();
        core.append(&entries)
            .expect("the bootstrap log starts at index 1");
        core.set_hardstate(hard_state);
    }
    Ok(Bootstrapped {
        membership: Membership::new(metadata.cluster_id, members),
        metadata,
        store: LogStore::new(storage, snapshot_files.clone()),
        wal,
        snapshot_files,
        kv: KvStore::new(),
        leases: Vec::new(),
        alarms: Vec::new(),
        auth: AuthSnapshot::default(),
        applied_index: 0,
    })
}

fn join(
    config: &Config,
    disk: Arc<dyn Disk>,
    snapshot_files: SnapshotFiles,
    remote: RemoteCluster,
) -> Result<Bootstrapped, BootstrapError> {
    let local = remote
        .members
        .iter()
        .find(|m| {
            m.peer_ur_ls
                .iter()
                .any(|url| config.initial_advertise_peer_urls.contains(url))
        })
        .ok_or_else(|| {
            BootstrapError::Config(format!(
                "no member with peer URLs {:?} in cluster {:x}: add it first with `etcdctl member add`",
                config.initial_advertise_peer_urls, remote.cluster_id
            ))
        })?;
    let metadata = WalMetadata {
        member_id: local.id,
        cluster_id: remote.cluster_id,
        members: remote.members.clone(),
        joined_existing: true,
    };
    let mut wal = Wal::create(disk, &config.wal_dir, &metadata.encode_to_vec())?;
    wal.set_segment_bytes_max(config.wal_segment_bytes);
    Ok(Bootstrapped {
        membership: Membership::new(remote.cluster_id, remote.members),
        metadata,
        store: LogStore::new(MemStorage::new(), snapshot_files.clone()),
        wal,
        snapshot_files,
        kv: KvStore::new(),
        leases: Vec::new(),
        alarms: Vec::new(),
        auth: AuthSnapshot::default(),
        applied_index: 0,
    })
}

fn restart(
    config: &Config,
    disk: Arc<dyn Disk>,
    snapshot_files: SnapshotFiles,
) -> Result<Bootstrapped, BootstrapError> {
    let (mut wal, contents) = Wal::open(disk, &config.wal_dir)?;
    wal.set_segment_bytes_max(config.wal_segment_bytes);
    let metadata = WalMetadata::decode(contents.metadata.as_slice()).map_err(|e| {
        BootstrapError::Wal(WalError::Corrupt {
            file: config.wal_dir.display().to_string(),
            offset: 0,
            reason: format!("undecodable member metadata: {e}"),
        })
    })?;
    let mut membership = Membership::new(metadata.cluster_id, metadata.members.clone());
    let mut kv = KvStore::new();
    let mut leases = Vec::new();
    let mut alarms = Vec::new();
    let mut auth = AuthSnapshot::default();
    let snapshot = contents
        .snapshot
        .as_ref()
        .map(|snapshot_metadata| snapshot_files.load(snapshot_metadata))
        .transpose()
        .map_err(BootstrapError::Snapshot)?;
    if let Some(snapshot) = &snapshot {
        let data = SnapshotData::decode(&snapshot.data[..])
            .map_err(|e| BootstrapError::Snapshot(format!("undecodable data: {e}")))?;
        kv = KvStore::from_snapshot(data.kv.unwrap_or_default());
        membership.restore(data.members, data.removed_member_ids);
        leases = data.leases;
        alarms = data.alarms;
        auth = data.auth.unwrap_or_default();
    }
    let applied_index = snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
    let store = LogStore::recover(
        snapshot_files.clone(),
        initial_conf_state(&metadata),
        snapshot,
        contents.hard_state.clone(),
        &contents.entries,
    )
    .map_err(BootstrapError::Snapshot)?;
    Ok(Bootstrapped {
        metadata,
        store,
        wal,
        snapshot_files,
        kv,
        membership,
        leases,
        alarms,
        auth,
        applied_index,
    })
}

/// The members `--initial-cluster` names, with the ids every one of them computes alike.
pub fn initial_members(initial_cluster: &[InitialMember], cluster_token: &str) -> Vec<Member> {
    initial_cluster
        .iter()
        .map(|m| Member {
            id: member_id(&m.peer_urls, cluster_token),
            name: m.name.clone(),
            peer_ur_ls: m.peer_urls.clone(),
            client_ur_ls: Vec::new(),
            is_learner: false,
        })
        .collect()
}

/// etcd's bootstrap log: every initial member added by a conf change at term 1, indexes 1..=n,
/// all committed. A new cluster starts from it, and so does a member restored from a backup.
pub fn bootstrap_log(members: &[Member]) -> Vec<Entry> {
    members
        .iter()
        .zip(1..)
        .map(|(member, index)| {
            let mut change = ConfChange::default();
            change.set_change_type(ConfChangeType::AddNode);
            change.node_id = member.id;
            change.context = member.encode_to_vec().into();
            let mut entry = Entry::default();
            entry.set_entry_type(EntryType::EntryConfChange);
            entry.term = 1;
            entry.index = index;
            entry.data = change.write_to_bytes().expect("conf changes encode").into();
            entry
        })
        .collect()
}

/// Raft's voters before the log is applied: the initial cluster's, or none for a member that
/// joined (it learns them from the leader's log or snapshot).
fn initial_conf_state(metadata: &WalMetadata) -> ConfState {
    if metadata.joined_existing {
        return ConfState::default();
    }
    let voters: Vec<u64> = metadata.members.iter().map(|m| m.id).collect();
    ConfState::from((voters, Vec::new()))
}

/// Asks the peers named in `--initial-cluster` for the cluster's member list (etcd's
/// `GetClusterFromRemotePeers`), for a member joining with `--initial-cluster-state existing`.
pub async fn fetch_remote_cluster(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<RemoteCluster, BootstrapError> {
    let mut failures = Vec::new();
    let urls = config
        .initial_cluster
        .iter()
        .filter(|m| m.name != config.name)
        .flat_map(|m| m.peer_urls.iter());
    for url in urls {
        let attempt = async {
            let mut client = RaftPeerClient::new(config.dialers.peer.connect(url).await?);
            client
                .members(MembersRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(|e| e.to_string())
        };
        let result = tokio::select! {
            biased;
            result = attempt => result,
            () = clock.sleep(MEMBERS_FETCH_TIMEOUT) => Err("timed out".to_string()),
        };
        match result {
            Ok(response) => {
                return Ok(RemoteCluster {
                    cluster_id: response.cluster_id,
                    members: response.members,
                })
            }
            Err(error) => failures.push(format!("{url}: {error}")),
        }
    }
    Err(BootstrapError::Config(format!(
        "cannot fetch the cluster's members from any peer in --initial-cluster ({})",
        failures.join("; ")
    )))
}

/// A member id from its peer URLs and the cluster token (etcd hashes the same inputs), so each
/// member of a new cluster computes every other member's id from `--initial-cluster` alone.
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let id = fnv1a64(&[urls.join("").as_bytes(), cluster_token.as_bytes()]);
    // Raft reserves id 0 for "none".
    id.max(1)
}

/// A new member's id (for `member add`): its URLs, the cluster, and the time, so a member
/// re-added at the same URLs after removal gets a new id, as in etcd.
pub fn added_member_id(peer_urls: &[String], cluster_id: u64, wall_ms: u64) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    fnv1a64(&[
        urls.join("").as_bytes(),
        &cluster_id.to_be_bytes(),
        &wall_ms.to_be_bytes(),
    ])
    .max(1)
}

/// The cluster id of a new cluster: a hash of its initial members' ids.
pub fn cluster_id(members: &[Member]) -> u64 {
    let mut ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    let bytes: Vec<[u8; 8]> = ids.iter().map(|id| id.to_be_bytes()).collect();
    let parts: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
    fnv1a64(&parts).max(1)
}

fn fnv1a64(parts: &[&[u8]]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    parts
        .iter()
        .flat_map(|part| part.iter())
        .fold(OFFSET_BASIS, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_ignores_url_order_and_depends_on_token() {
        let a = vec!["http://a:2380".to_string(), "http://b:2380".to_string()];
        let b = vec!["http://b:2380".to_string(), "http://a:2380".to_string()];
        assert_eq!(member_id(&a, "t"), member_id(&b, "t"));
        assert_ne!(member_id(&a, "t"), member_id(&a, "u"));
    }

    #[test]
    fn a_re_added_member_gets_a_new_id() {
        let urls = vec!["http://a:2380".to_string()];
        assert_ne!(
            added_member_id(&urls, 7, 1000),
            added_member_id(&urls, 7, 1001)
        );
    }
}
