//! Bootstrap (etcd's `bootstrap.go`): decide who this member is and load what it has on disk.
//!
//! A new member derives its id and the cluster id from the flags and writes them into the WAL's
//! metadata before anything else; a restarted member reads them back from there and ignores the
//! bootstrap flags, as etcd does, so a restart can never silently change identity.

use std::path::Path;
use std::sync::Arc;

use prost::Message as _;
use raft::prelude::{ConfState, Entry, HardState};
use raft::storage::MemStorage;

use crate::config::{ClusterState, Config};
use crate::io::{probe_writable, Disk};
use crate::pb::detcdpb::WalMetadata;
use crate::pb::etcdserverpb::Member;
use crate::storage::wal::{Wal, WalError};

/// What bootstrap could not get past; `main` prints it and exits non-zero.
#[derive(Debug)]
pub enum BootstrapError {
    DataDir(String),
    Wal(WalError),
    Config(String),
}

impl std::fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootstrapError::DataDir(why) => write!(f, "cannot access data directory: {why}"),
            BootstrapError::Wal(error) => write!(f, "cannot open WAL: {error}"),
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

/// The member as it comes out of bootstrap: identity, raft storage primed from the WAL, and the
/// WAL open for appending.
pub struct Bootstrapped {
    pub metadata: WalMetadata,
    pub storage: MemStorage,
    pub wal: Wal,
    /// Highest log index on disk when the member started (0 for a new member).
    pub last_index_on_disk: u64,
}

impl Bootstrapped {
    pub fn member_id(&self) -> u64 {
        self.metadata.member_id
    }
}

pub fn bootstrap(config: &Config, disk: Arc<dyn Disk>) -> Result<Bootstrapped, BootstrapError> {
    if Wal::exists(disk.as_ref(), &config.wal_dir) {
        restart(disk, &config.wal_dir)
    } else {
        create(config, disk)
    }
}

fn create(config: &Config, disk: Arc<dyn Disk>) -> Result<Bootstrapped, BootstrapError> {
    if config.initial_cluster_state == ClusterState::Existing {
        return Err(BootstrapError::Config(
            "joining an existing cluster (--initial-cluster-state existing) is not supported yet"
                .into(),
        ));
    }
    probe_writable(disk.as_ref(), &config.data_dir)
        .and_then(|()| probe_writable(disk.as_ref(), &config.wal_dir))
        .map_err(|e| BootstrapError::DataDir(e.to_string()))?;
    let members: Vec<Member> = config
        .initial_cluster
        .iter()
        .map(|m| Member {
            id: member_id(&m.peer_urls, &config.initial_cluster_token),
            name: m.name.clone(),
            peer_ur_ls: m.peer_urls.clone(),
            client_ur_ls: if m.name == config.name {
                config.advertise_client_urls.clone()
            } else {
                Vec::new()
            },
            is_learner: false,
        })
        .collect();
    let local = members
        .iter()
        .find(|m| m.name == config.name)
        .expect("config validation guarantees the local member is in the initial cluster");
    let metadata = WalMetadata {
        member_id: local.id,
        cluster_id: cluster_id(&members),
        members,
    };
    let wal = Wal::create(disk, &config.wal_dir, &metadata.encode_to_vec())?;
    let storage = MemStorage::new_with_conf_state(conf_state(&metadata));
    // etcd starts a new member as a follower at term 1 (its bootstrap entries carry term 1), so
    // the first election makes term 2; starting from the same term keeps `raft_term` in every
    // response header identical to what etcd clients see from etcd.
    storage.wl().mut_hard_state().term = 1;
    Ok(Bootstrapped {
        metadata,
        storage,
        wal,
        last_index_on_disk: 0,
    })
}

fn restart(disk: Arc<dyn Disk>, wal_dir: &Path) -> Result<Bootstrapped, BootstrapError> {
    let (wal, contents) = Wal::open(disk, wal_dir)?;
    let metadata = WalMetadata::decode(contents.metadata.as_slice()).map_err(|e| {
        BootstrapError::Wal(WalError::Corrupt {
            file: wal_dir.display().to_string(),
            offset: 0,
            reason: format!("undecodable member metadata: {e}"),
        })
    })?;
    let storage = MemStorage::new_with_conf_state(conf_state(&metadata));
    let last_index_on_disk = contents.entries.last().map_or(0, |e: &Entry| e.index);
    {
        let mut core = storage.wl();
        core.append(&contents.entries)
            .expect("WAL replay yields a contiguous log");
        let mut hard_state: HardState = contents.hard_state.clone();
        // The persisted commit index can lag the entries (it is saved with the next batch);
        // it can never run ahead of them.
        assert!(
            hard_state.commit <= last_index_on_disk,
            "WAL hard state commits {} beyond its last entry {last_index_on_disk}",
            hard_state.commit
        );
        hard_state.commit = hard_state.commit.min(last_index_on_disk);
        core.set_hardstate(hard_state);
    }
    Ok(Bootstrapped {
        metadata,
        storage,
        wal,
        last_index_on_disk,
    })
}

fn conf_state(metadata: &WalMetadata) -> ConfState {
    let voters: Vec<u64> = metadata
        .members
        .iter()
        .filter(|m| !m.is_learner)
        .map(|m| m.id)
        .collect();
    ConfState::from((voters, Vec::new()))
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

fn cluster_id(members: &[Member]) -> u64 {
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
}
