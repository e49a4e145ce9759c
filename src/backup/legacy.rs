//! detcd's own backup format, which `Maintenance.Snapshot` streamed before it streamed etcd's
//! (`super::etcd`); `detcd snapshot status|restore` still read it.
//!
//! # Format (integers little-endian)
//!
//! ```text
//! magic "DETCDBAK" (8 bytes) | version: u32 (= 1) | payload_len: u64 | payload
//!   | zero padding to a multiple of 512 bytes | sha256: [u8; 32]
//! ```
//!
//! `payload` is the protobuf `detcdpb.SnapshotData` of the serving member at one point between
//! two applied entries: every retained KV revision (so revisions, versions and the compact
//! revision survive a restore), the leases, and the membership at that time. The trailer is
//! etcd's: a SHA-256 of everything before it, after a body whose size is a multiple of 512 bytes —
//! `etcdctl snapshot save` 3.4 refuses a stream whose size is not `32 (mod 512)` ("sha256 checksum
//! not found"), as a sign it was cut short. `HASH` in `detcd snapshot status` is a CRC-32 (IEEE)
//! of the body. A file that fails any check is refused, never partly restored.

use prost::Message as _;

use crate::pb::detcdpb::SnapshotData;

use super::{verified_body, Backup, Status, TRAILER_ALIGN_BYTES as BODY_ALIGN_BYTES};

const MAGIC: &[u8; 8] = b"DETCDBAK";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 8;

/// Whether `file` is in this format rather than etcd's.
pub fn is_legacy(file: &[u8]) -> bool {
    file.starts_with(MAGIC)
}

/// Encodes the state as a backup file (only tests still write this format).
#[cfg(test)]
pub fn encode(data: &SnapshotData) -> Vec<u8> {
    use super::SHA256_BYTES;
    let payload = data.encode_to_vec();
    let body_len = (HEADER_BYTES + payload.len()).next_multiple_of(BODY_ALIGN_BYTES);
    let mut file = Vec::with_capacity(body_len + SHA256_BYTES);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&VERSION.to_le_bytes());
    file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    file.extend_from_slice(&payload);
    file.resize(body_len, 0);
    super::append_trailer(&mut file);
    debug_assert_eq!(file.len() % BODY_ALIGN_BYTES, SHA256_BYTES);
    file
}

/// Verifies and decodes a backup file in this format; the error says what is wrong with it.
/// The hash is always checked: it is all that vouches for the payload, which is restored as it
/// is (etcd's files are checked entry by entry, so `--skip-hash-check` is for them).
pub fn decode(file: &[u8]) -> Result<Backup, String> {
    let body = verified_body(file, false)?;
    if body.len() < HEADER_BYTES || !is_legacy(body) {
        return Err("not a detcd backup".into());
    }
    let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("unsupported backup format version {version}"));
    }
    let payload_len = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes"));
    let payload_end = usize::try_from(payload_len)
        .ok()
        .and_then(|len| len.checked_add(HEADER_BYTES))
        .filter(|end| end.next_multiple_of(BODY_ALIGN_BYTES) == body.len())
        .ok_or_else(|| format!("backup payload of {payload_len} bytes does not fit its file"))?;
    if body[payload_end..].iter().any(|&byte| byte != 0) {
        return Err("backup padding is not zero".into());
    }
    let data = SnapshotData::decode(&body[HEADER_BYTES..payload_end])
        .map_err(|e| format!("undecodable backup payload: {e}"))?;
    let kv = data.kv.clone().unwrap_or_default();
    let status = Status {
        hash: crc32fast::hash(body),
        revision: kv.current_revision,
        total_keys: (kv.changes.len() + data.leases.len()) as u64,
        total_size_bytes: file.len() as u64,
    };
    Ok(Backup { data, status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::detcdpb::{KvSnapshot, LeaseSnapshot};

    fn data() -> SnapshotData {
        SnapshotData {
            kv: Some(KvSnapshot {
                current_revision: 7,
                compact_revision: -1,
                changes: Vec::new(),
                deletes_at_compact_revision: Vec::new(),
            }),
            leases: vec![LeaseSnapshot {
                id: 5,
                ttl_seconds: 60,
                remaining_ttl_seconds: 60,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn an_encoded_backup_decodes_to_the_same_state() {
        let file = encode(&data());
        assert_eq!(
            file.len() % 512,
            32,
            "etcdctl's check for the sha256 trailer"
        );
        let backup = decode(&file).unwrap();
        assert_eq!(backup.data, data());
        assert_eq!(backup.status.revision, 7);
        assert_eq!(backup.status.total_keys, 1);
        assert_eq!(backup.status.total_size_bytes, file.len() as u64);
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let file = encode(&data());
        for byte in 0..file.len() {
            let mut damaged = file.clone();
            damaged[byte] ^= 0x10;
            assert!(
                decode(&damaged).is_err(),
                "flip in byte {byte} went unnoticed"
            );
        }
    }

    #[test]
    fn a_truncated_backup_is_refused() {
        let file = encode(&data());
        for len in 0..file.len() {
            assert!(decode(&file[..len]).is_err(), "truncated to {len} bytes");
        }
    }
}
