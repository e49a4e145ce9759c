//! Backups: the file `etcdctl snapshot save` writes from detcd's `Maintenance.Snapshot` stream,
//! and `detcd snapshot status|restore` reads. It is etcd 3.4's own backup format (`etcd`): a
//! bbolt database (`bbolt`) with etcd's buckets, then a SHA-256 of it. So a backup of etcd
//! restores into detcd, and a backup of detcd into etcd (`etcdctl snapshot restore`).
//! detcd's older own format (`legacy`) is still read.
//!
//! The trailer is etcd's: the SHA-256 of everything before it, after a body whose size is a
//! multiple of 512 bytes (whole pages) — `etcdctl snapshot save` refuses a stream whose size is
//! not `32 (mod 512)` ("sha256 checksum not found") as a sign it was cut short, and `restore`
//! checks the hash unless told `--skip-hash-check`. A file that fails any check is refused,
//! never partly restored.

mod auth_buckets;
pub mod bbolt;
pub mod cli;
mod etcd;
mod legacy;
pub mod restore;

use sha2::{Digest, Sha256};

use crate::pb::detcdpb::SnapshotData;

const TRAILER_ALIGN_BYTES: usize = 512;
const SHA256_BYTES: usize = 32;

/// What `snapshot status` reports about a backup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// etcd's: CRC-32C of every bucket's name, keys and values (detcd's older format: CRC-32
    /// of the body).
    pub hash: u32,
    /// The newest revision in the file.
    pub revision: i64,
    /// Entries of every bucket (etcd's count); KV revisions plus leases in the older format.
    pub total_keys: u64,
    pub total_size_bytes: u64,
}

/// A decoded, verified backup file.
#[derive(Debug, Clone)]
pub struct Backup {
    pub data: SnapshotData,
    pub status: Status,
}

/// The state as a backup file in etcd 3.4's format; `consistent_index` is the raft index it
/// is at.
pub fn encode(data: &SnapshotData, consistent_index: u64) -> Vec<u8> {
    etcd::encode(data, consistent_index)
}

pub use legacy::is_legacy;

/// Verifies and decodes a backup file, etcd's or detcd's older own; the error says what is
/// wrong with it. `skip_hash_check` is etcdctl's `--skip-hash-check`: the SHA-256 trailer of an
/// etcd file is not checked, and need not be there (a database copied out of a data dir has none).
pub fn decode(file: &[u8], skip_hash_check: bool) -> Result<Backup, String> {
    if is_legacy(file) {
        legacy::decode(file)
    } else {
        etcd::decode(file, skip_hash_check)
    }
}

fn append_trailer(body: &mut Vec<u8>) {
    debug_assert_eq!(body.len() % TRAILER_ALIGN_BYTES, 0);
    let sha = Sha256::digest(&body[..]);
    body.extend_from_slice(&sha);
}

/// The file without its trailer, once the trailer matches (etcd's checks and messages).
fn verified_body(file: &[u8], skip_hash_check: bool) -> Result<&[u8], String> {
    let has_trailer = file.len() % TRAILER_ALIGN_BYTES == SHA256_BYTES;
    if !has_trailer {
        return if skip_hash_check {
            Ok(file)
        } else {
            Err("snapshot missing hash but --skip-hash-check=false".into())
        };
    }
    let (body, sha) = file.split_at(file.len() - SHA256_BYTES);
    if !skip_hash_check {
        let actual = Sha256::digest(body);
        if actual[..] != sha[..] {
            return Err(format!(
                "expected sha256 {}, got {}: the file is damaged",
                hex(sha),
                hex(&actual)
            ));
        }
    }
    Ok(body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests;
