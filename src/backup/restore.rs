//! `detcd snapshot restore`: a new member data dir from a backup, as `etcdctl snapshot restore`
//! makes one from an etcd backup. The member gets a new identity (ids from `--initial-cluster`
//! and `--initial-cluster-token`, like a new cluster's) and the backup's keys and leases at the
//! backup's revisions, and its users, roles and auth setting.
//!
//! What is written, so that a plain `detcd --data-dir DIR` restarts from it:
//! 1. the WAL, with the new member and cluster ids in its metadata, the bootstrap log (one
//!    `AddNode` per initial member, term 1, indexes 1..=n) and a hard state committing it;
//! 2. a raft snapshot file at index n, term 1, whose conf state is the initial members and whose
//!    data is the backup's KV, leases and auth store with the new membership;
//! 3. the WAL's snapshot marker for it — after the file, as a raft snapshot always is, so the
//!    marker never points at a file that is not there.
//!
//! Every member of the new cluster is restored from the same backup with its own `--name`, so
//! all of them start from the same state at the same index.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message as _;
use raft::prelude::{ConfState, HardState, Snapshot};

use crate::config::InitialMember;
use crate::io::{probe_writable, Disk};
use crate::pb::detcdpb::{SnapshotData, WalMetadata};
use crate::raft_node::SnapshotFiles;
use crate::server::bootstrap::{bootstrap_log, cluster_id, initial_members};
use crate::storage::wal::Wal;

use super::Backup;

/// The new member and cluster, as `etcdctl snapshot restore`'s flags give them.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub name: String,
    pub data_dir: PathBuf,
    pub wal_dir: PathBuf,
    pub initial_cluster: Vec<InitialMember>,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: Vec<String>,
}

/// What was restored, for the command's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub member_id: u64,
    pub cluster_id: u64,
}

pub fn restore(
    disk: Arc<dyn Disk>,
    backup: &Backup,
    options: &RestoreOptions,
) -> Result<Restored, String> {
    for dir in [&options.data_dir, &options.wal_dir] {
        if disk.exists(dir) {
            return Err(format!("data-dir {:?} exists", dir.display().to_string()));
        }
    }
    let members = initial_members(&options.initial_cluster, &options.initial_cluster_token);
    let local = members
        .iter()
        .find(|m| m.name == options.name)
        .ok_or_else(|| {
            format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                options.name
            )
        })?;
    if sorted(&local.peer_ur_ls) != sorted(&options.initial_advertise_peer_urls) {
        return Err(format!(
            "--initial-cluster has {}={:?} but --initial-advertise-peer-urls is {:?}",
            local.name, local.peer_ur_ls, options.initial_advertise_peer_urls
        ));
    }
    let metadata = WalMetadata {
        member_id: local.id,
        cluster_id: cluster_id(&members),
        members: members.clone(),
        joined_existing: false,
    };
    let io_error =
        |what: &str, dir: &Path, e: std::io::Error| format!("{what} {}: {e}", dir.display());
    probe_writable(disk.as_ref(), &options.data_dir)
        .map_err(|e| io_error("cannot create", &options.data_dir, e))?;
    probe_writable(disk.as_ref(), &options.wal_dir)
        .map_err(|e| io_error("cannot create", &options.wal_dir, e))?;

    let entries = bootstrap_log(&members);
    let bootstrap_index = entries.len() as u64;
    let mut wal = Wal::create(disk.clone(), &options.wal_dir, &metadata.encode_to_vec())
        .map_err(|e| e.to_string())?;
    let hard_state = HardState {
        term: 1,
        commit: bootstrap_index,
        ..Default::default()
    };
    // Offline, on a disk whose fsync blocks and resolves at once (the real one), so the WAL's
    // futures need no runtime.
    futures::executor::block_on(wal.save(Some(&hard_state), &entries))
        .map_err(|e| e.to_string())?;

    let data = SnapshotData {
        kv: backup.data.kv.clone(),
        members: members.clone(),
        removed_member_ids: Vec::new(),
        leases: backup.data.leases.clone(),
        // Alarms belong to the old members; the new cluster starts without any.
        alarms: Vec::new(),
        // Users, roles and whether auth is on are the cluster's data: a restore keeps them.
        auth: backup.data.auth.clone(),
    };
    let mut snapshot = Snapshot {
        data: data.encode_to_vec().into(),
        ..Default::default()
    };
    let snapshot_metadata = snapshot.mut_metadata();
    snapshot_metadata.index = bootstrap_index;
    snapshot_metadata.term = 1;
    let voters: Vec<u64> = members.iter().map(|m| m.id).collect();
    snapshot_metadata.set_conf_state(ConfState::from((voters, Vec::new())));
    let snapshot_metadata = snapshot_metadata.clone();
    SnapshotFiles::new(disk, options.data_dir.join("member").join("snap")).save(&snapshot)?;
    futures::executor::block_on(wal.save_snapshot_marker(&snapshot_metadata))
        .map_err(|e| e.to_string())?;
    Ok(Restored {
        member_id: metadata.member_id,
        cluster_id: metadata.cluster_id,
    })
}

fn sorted(urls: &[String]) -> Vec<String> {
    let mut urls = urls.to_vec();
    urls.sort();
    urls
}
