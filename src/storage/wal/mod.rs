//! The raft write-ahead log.
//!
//! Raft may only acknowledge a vote or an entry once it is on stable storage.
//! The WAL is that storage: [`Wal::save`] appends hard state and entries and
//! resolves once they are fsynced (an fsync takes time, during which the rest of
//! the member runs: the future is awaited, not blocked on); [`Wal::open`] replays everything after a restart.
//! This doc comment is the on-disk format specification.
//!
//! # Files
//!
//! A WAL directory holds *segments* named `{seq:016x}-{first_index:016x}.wal`
//! (lower-case hex). `seq` starts at 0 and increases by exactly one per
//! segment; `first_index` is the raft index the segment's first new entry was
//! expected to have (last index + 1 when it was cut; 1 for the first segment).
//! Files with other names (e.g. a `*.wal.tmp` left by a crash during
//! [`crate::io::Disk::write_atomic`]) are ignored. Segments are only ever
//! appended to, and only the last one is written.
//!
//! # Records
//!
//! A segment is a sequence of records, each framed as (integers little-endian):
//!
//! ```text
//! len: u32 | len_inv: u32 (= !len) | type: u8 | crc: u32 | payload: [u8; len]
//! ```
//!
//! `len_inv` makes a damaged length detectable, so corruption of a length field
//! is never mistaken for a torn write. `crc` is CRC-32 (IEEE) over
//! `type | len | payload`, **seeded with the previous record's crc**: the chain
//! runs across all records and all segments, so a record spliced in from a stale
//! or foreign segment fails verification. Record types and payloads:
//!
//! | type | name        | payload                                                   |
//! |------|-------------|-----------------------------------------------------------|
//! | 1    | segment     | `"DETCDWAL" \| seq u64 \| first_index u64 \| prev_crc u32`|
//! | 2    | metadata    | opaque bytes given to [`Wal::create`]                     |
//! | 3    | hard state  | protobuf `eraftpb.HardState`                              |
//! | 4    | entry       | protobuf `eraftpb.Entry`                                  |
//! | 5    | snapshot    | protobuf `eraftpb.SnapshotMetadata` (a marker, not data)  |
//!
//! Every segment starts with a *prologue*, written atomically with the file
//! itself: a segment record (its crc seeded with `prev_crc`, which must equal the
//! last crc of the previous segment; 0 for the very first segment), then the
//! metadata record, then — in segments after the first — the hard state and the
//! latest snapshot marker at the time of the cut. The prologue makes each segment
//! self-sufficient, so older segments can be deleted by [`Wal::release_to`].
//! A [`Wal::save`] writes its entries first and its hard state last, so a
//! partially persisted save never leaves a commit index ahead of the entries.
//!
//! # Segment cut
//!
//! Before writing, if the last segment is larger than the configured maximum
//! ([`SEGMENT_BYTES_MAX`] by default), a new segment is created with its
//! prologue. Records never span segments, so a segment may exceed the maximum by
//! one save.
//!
//! # Recovery
//!
//! Segments are replayed in `seq` order; a gap in `seq`, a broken crc chain
//! between segments, a metadata record differing between segments, or an entry
//! index that leaves a hole in the log (or between the last snapshot marker and
//! the entries after it) is corruption. Replay applies records in
//! order: an entry with index `i` replaces every entry `>= i` (raft log
//! truncation); a snapshot marker at index `s` discards entries `<= s`; the last
//! hard state wins. Returned entries are exactly those after the last snapshot
//! marker.
//!
//! Only the **end of the last segment** may be damaged by a crash: a record that
//! runs past the end of the file, or a tail of zero bytes, is a torn write of a
//! save that never returned. It is truncated away durably and logged with a
//! warning. Anything else — a crc mismatch (even in the last complete record,
//! which may have been acknowledged), a bad length, an unknown type, an
//! unparsable payload, or an incomplete record in an earlier segment — is
//! [`WalError::Corrupt`] and the member refuses to start rather than silently
//! dropping acknowledged data.
//!
//! # Failure while writing
//!
//! If an append or fsync fails, the state of the unsynced bytes is unknown
//! (they may or may not reach the disk), so the [`Wal`] poisons itself and
//! every later write returns [`WalError::Poisoned`]; the member must restart
//! and replay.

mod record;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protobuf::Message;
use raft::prelude::{Entry, HardState, SnapshotMetadata};

use self::record::{
    chain_crc, decode_at, encode, parse_segment_header, segment_header, Decoded, TYPE_ENTRY,
    TYPE_HARD_STATE, TYPE_METADATA, TYPE_SEGMENT, TYPE_SNAPSHOT,
};
use crate::io::{Disk, DiskFile};
use crate::metrics::WalMetrics;

/// Default size after which a new segment is cut.
pub const SEGMENT_BYTES_MAX: u64 = 64 << 20;

/// What [`Wal::open`] recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct WalContents {
    pub metadata: Vec<u8>,
    pub hard_state: HardState,
    /// Contiguous entries after the last snapshot marker (or from the start).
    pub entries: Vec<Entry>,
    /// The last snapshot marker, if any.
    pub snapshot: Option<SnapshotMetadata>,
}

#[derive(Debug)]
pub enum WalError {
    Io(io::Error),
    /// The WAL is damaged; `offset` is the byte offset of the bad record in `file`.
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    /// [`Wal::create`] found an existing WAL.
    AlreadyExists(PathBuf),
    /// [`Wal::open`] found no WAL.
    NotFound(PathBuf),
    /// An earlier write failed; the WAL must be reopened.
    Poisoned,
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io(e) => write!(f, "WAL I/O error: {e}"),
            WalError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "WAL is corrupt: {file} at byte {offset}: {reason}; refusing to start \
                 (restore this member's data from a backup or remove and re-add the member)"
            ),
            WalError::AlreadyExists(dir) => {
                write!(f, "a WAL already exists in {}", dir.display())
            }
            WalError::NotFound(dir) => write!(f, "no WAL found in {}", dir.display()),
            WalError::Poisoned => write!(
                f,
                "WAL is unusable after an earlier write or fsync failure; restart the member"
            ),
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for WalError {
    fn from(e: io::Error) -> Self {
        WalError::Io(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    seq: u64,
    first_index: u64,
}

impl Segment {
    fn name(&self) -> String {
        format!("{:016x}-{:016x}.wal", self.seq, self.first_index)
    }

    fn parse(name: &str) -> Option<Segment> {
        let stem = name.strip_suffix(".wal")?;
        let (seq, first) = stem.split_once('-')?;
        if seq.len() != 16 || first.len() != 16 {
            return None;
        }
        let hex = |s: &str| {
            if s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                u64::from_str_radix(s, 16).ok()
            } else {
                None
            }
        };
        Some(Segment {
            seq: hex(seq)?,
            first_index: hex(first)?,
        })
    }
}

/// An open write-ahead log. See the module docs for the format.
pub struct Wal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    /// Live segments in `seq` order; the last one is open in `tail`.
    segments: Vec<Segment>,
    tail: Box<dyn DiskFile>,
    tail_bytes: u64,
    /// Checksum of the last record written.
    crc: u32,
    segment_bytes_max: u64,
    metadata: Vec<u8>,
    hard_state: HardState,
    snapshot: Option<SnapshotMetadata>,
    /// Index of the last entry in the log (or of the snapshot, if later).
    last_index: u64,
    poisoned: bool,
    /// Where fsync latencies and written bytes go (etcd's WAL metrics), once the server says.
    metrics: Option<WalMetrics>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments)
            .field("tail_bytes", &self.tail_bytes)
            .field("last_index", &self.last_index)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

fn encode_msg(m: &dyn Message) -> Vec<u8> {
    m.write_to_bytes()
        .expect("encoding a proto3 raft message cannot fail")
}

/// Replay state accumulated across segments.
#[derive(Default)]
struct Replay {
    metadata: Option<Vec<u8>>,
    hard_state: HardState,
    entries: Vec<Entry>,
    snapshot: Option<SnapshotMetadata>,
}

impl Replay {
    fn apply_entry(&mut self, e: Entry) -> Result<(), String> {
        // With an empty log (after a snapshot marker, or at the start of a
        // segment whose predecessors were released) any index is accepted here;
        // whether the log joins the final snapshot is checked after replay.
        if let (Some(first), Some(last)) = (self.entries.first(), self.entries.last()) {
            let (first, last) = (first.index, last.index);
            if e.index < first {
                self.entries.clear();
            } else if e.index <= last {
                self.entries.truncate((e.index - first) as usize);
            } else if e.index != last + 1 {
                return Err(format!(
                    "entry index {} leaves a gap after index {last}",
                    e.index
                ));
            }
        }
        self.entries.push(e);
        Ok(())
    }

    fn apply_snapshot(&mut self, s: SnapshotMetadata) {
        self.entries.retain(|e| e.index > s.index);
        self.snapshot = Some(s);
    }
}

impl Wal {
    /// Whether `dir` holds a WAL (at least one segment file).
    pub fn exists(disk: &dyn Disk, dir: &Path) -> bool {
        disk.list(dir)
            .map(|names| names.iter().any(|n| Segment::parse(n).is_some()))
            .unwrap_or(false)
    }

    /// Creates a new WAL in `dir` (must not contain one) with opaque `metadata`
    /// (node id / cluster id, chosen by the server).
    pub fn create(disk: Arc<dyn Disk>, dir: &Path, metadata: &[u8]) -> Result<Wal, WalError> {
        if Wal::exists(&*disk, dir) {
            return Err(WalError::AlreadyExists(dir.to_path_buf()));
        }
        disk.create_dir_all(dir)?;
        let seg = Segment {
            seq: 0,
            first_index: 1,
        };
        let mut buf = Vec::new();
        let mut crc = 0;
        encode(&mut buf, &mut crc, TYPE_SEGMENT, &segment_header(0, 1, 0));
        encode(&mut buf, &mut crc, TYPE_METADATA, metadata);
        let path = dir.join(seg.name());
        disk.write_atomic(&path, &buf)?;
        let tail = disk.open_append(&path)?;
        Ok(Wal {
            disk,
            dir: dir.to_path_buf(),
            segments: vec![seg],
            tail,
            tail_bytes: buf.len() as u64,
            crc,
            segment_bytes_max: SEGMENT_BYTES_MAX,
            metadata: metadata.to_vec(),
            hard_state: HardState::default(),
            snapshot: None,
            last_index: 0,
            poisoned: false,
            metrics: None,
        })
    }

    /// Opens an existing WAL and replays it. A torn tail (incomplete last record
    /// in the LAST segment) is truncated away (durably) and logged with
    /// `tracing::warn`; a checksum mismatch or bad record anywhere else is
    /// [`WalError::Corrupt`].
    pub fn open(disk: Arc<dyn Disk>, dir: &Path) -> Result<(Wal, WalContents), WalError> {
        let names = match disk.list(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(WalError::NotFound(dir.to_path_buf()))
            }
            Err(e) => return Err(e.into()),
        };
        // Names are fixed-width hex, so the sorted listing is in seq order.
        let segments: Vec<Segment> = names.iter().filter_map(|n| Segment::parse(n)).collect();
        if segments.is_empty() {
            return Err(WalError::NotFound(dir.to_path_buf()));
        }
        for w in segments.windows(2) {
            if w[1].seq != w[0].seq + 1 {
                return Err(WalError::Corrupt {
                    file: w[1].name(),
                    offset: 0,
                    reason: format!("segment {:016x} is missing", w[0].seq + 1),
                });
            }
        }

        let mut replay = Replay::default();
        let mut crc = None;
        let mut tail_bytes = 0;
        for (i, seg) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            let path = dir.join(seg.name());
            let data = disk.read(&path)?;
            let (valid, end_crc) = replay_segment(&data, seg, crc, is_last, &mut replay)?;
            if valid < data.len() && !crate::planted_bug!(KeepTornTail) {
                tracing::warn!(
                    file = %path.display(),
                    offset = valid,
                    dropped_bytes = data.len() - valid,
                    "WAL ends with a torn write (a save that never completed); truncating it"
                );
                disk.truncate(&path, valid as u64)?;
            }
            crc = Some(end_crc);
            tail_bytes = valid as u64;
        }

        let snapshot = replay.snapshot.clone();
        if let Some(s) = &snapshot {
            replay.entries.retain(|e| e.index > s.index);
        }
        if let (Some(s), Some(first)) = (&snapshot, replay.entries.first()) {
            if first.index != s.index + 1 {
                return Err(WalError::Corrupt {
                    file: segments.last().expect("at least one segment").name(),
                    offset: 0,
                    reason: format!(
                        "log starts at index {} but the last snapshot is at index {}",
                        first.index, s.index
                    ),
                });
            }
        }
        for w in replay.entries.windows(2) {
            assert_eq!(
                w[1].index,
                w[0].index + 1,
                "replayed entries must be contiguous"
            );
        }
        let last_index = replay
            .entries
            .last()
            .map(|e| e.index)
            .or(snapshot.as_ref().map(|s| s.index))
            .unwrap_or(0);
        let metadata = replay.metadata.clone().unwrap_or_default();
        let tail_seg = segments.last().expect("at least one segment");
        let tail = disk.open_append(&dir.join(tail_seg.name()))?;
        let wal = Wal {
            disk,
            dir: dir.to_path_buf(),
            segments,
            tail,
            tail_bytes,
            crc: crc.expect("at least one segment"),
            segment_bytes_max: SEGMENT_BYTES_MAX,
            metadata: metadata.clone(),
            hard_state: replay.hard_state.clone(),
            snapshot: snapshot.clone(),
            last_index,
            poisoned: false,
            metrics: None,
        };
        Ok((
            wal,
            WalContents {
                metadata,
                hard_state: replay.hard_state,
                entries: replay.entries,
                snapshot,
            },
        ))
    }

    /// Sets the size after which a new segment is cut (`--experimental-wal-segment-size`;
    /// the simulator and tests use tiny ones).
    pub fn set_segment_bytes_max(&mut self, bytes: u64) {
        self.segment_bytes_max = bytes;
    }

    /// Reports fsync latencies and written bytes to `metrics` from now on.
    pub fn report_to(&mut self, metrics: WalMetrics) {
        self.metrics = Some(metrics);
    }

    /// Names of the live segment files, oldest first.
    pub fn segment_names(&self) -> Vec<String> {
        self.segments.iter().map(Segment::name).collect()
    }

    /// Appends hard state (if Some) and entries, then fsyncs before returning.
    /// Entries may overwrite a suffix of the log (raft truncation): on replay an
    /// entry with index i replaces every entry >= i.
    ///
    /// # Panics
    ///
    /// If `entries` are not contiguous or would leave a gap after the last
    /// entry (or snapshot marker): that is a bug in the caller. Save the
    /// snapshot marker of an installed snapshot *before* the entries following it.
    pub async fn save(
        &mut self,
        hard_state: Option<&HardState>,
        entries: &[Entry],
    ) -> Result<(), WalError> {
        self.check_poisoned()?;
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        if let Some(first) = entries.first() {
            assert!(
                first.index >= 1 && first.index <= self.last_index + 1,
                "WAL save: first entry index {} leaves a gap after last index {}",
                first.index,
                self.last_index
            );
        }
        for w in entries.windows(2) {
            assert_eq!(
                w[1].index,
                w[0].index + 1,
                "WAL save: entries must be contiguous"
            );
        }
        self.maybe_cut()?;
        let mut buf = Vec::new();
        let mut crc = self.crc;
        for e in entries {
            encode(&mut buf, &mut crc, TYPE_ENTRY, &encode_msg(e));
        }
        if let Some(hs) = hard_state.filter(|_| !crate::planted_bug!(ForgetHardState)) {
            encode(&mut buf, &mut crc, TYPE_HARD_STATE, &encode_msg(hs));
        }
        self.write_synced(&buf, crc).await?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records that a snapshot at (index, term) exists; later, segments wholly
    /// below it can be released. Replay drops entries at or below it.
    pub async fn save_snapshot_marker(&mut self, meta: &SnapshotMetadata) -> Result<(), WalError> {
        self.check_poisoned()?;
        self.maybe_cut()?;
        let mut buf = Vec::new();
        let mut crc = self.crc;
        encode(&mut buf, &mut crc, TYPE_SNAPSHOT, &encode_msg(meta));
        self.write_synced(&buf, crc).await?;
        self.snapshot = Some(meta.clone());
        self.last_index = self.last_index.max(meta.index);
        Ok(())
    }

    /// Removes segments whose live entries are all `< index`, oldest first; the
    /// segment containing `index` and the last segment are kept.
    pub fn release_to(&mut self, index: u64) -> Result<(), WalError> {
        // Segment k's live entries are all below the first_index of every later
        // segment (each was cut at last index + 1, and later overwrites only
        // lower it), so k can go once min(first_index of k+1..) <= index.
        let mut min_after = u64::MAX;
        let mut remove = 0;
        for k in (0..self.segments.len().saturating_sub(1)).rev() {
            min_after = min_after.min(self.segments[k + 1].first_index);
            if min_after <= index {
                remove = k + 1;
                break;
            }
        }
        for _ in 0..remove {
            let seg = &self.segments[0];
            self.disk.remove(&self.dir.join(seg.name()))?;
            tracing::debug!(segment = %seg.name(), "released WAL segment");
            self.segments.remove(0);
        }
        Ok(())
    }

    fn check_poisoned(&self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        Ok(())
    }

    async fn write_synced(&mut self, buf: &[u8], crc: u32) -> Result<(), WalError> {
        // Poisoned until the fsync resolves: a save whose future is dropped mid-fsync leaves
        // the tail in an unknown state, like a failed one.
        self.poisoned = true;
        let fills_segment = self.tail_bytes + buf.len() as u64 > self.segment_bytes_max;
        let res = match self.tail.append(buf) {
            Ok(()) if crate::planted_bug!(AckBeforeFsync) => Ok(()),
            Ok(()) if fills_segment && crate::planted_bug!(CutWithoutSync) => Ok(()),
            Ok(()) => {
                let _fsync = self.metrics.as_ref().map(|m| m.fsync.start());
                self.tail.sync().await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            return Err(WalError::Io(e));
        }
        self.poisoned = false;
        self.crc = crc;
        self.tail_bytes += buf.len() as u64;
        if let Some(metrics) = &self.metrics {
            metrics.write_bytes.add(buf.len() as u64);
        }
        Ok(())
    }

    fn maybe_cut(&mut self) -> Result<(), WalError> {
        if self.tail_bytes <= self.segment_bytes_max {
            return Ok(());
        }
        let prev = self.segments.last().expect("at least one segment");
        let seg = Segment {
            seq: prev.seq + 1,
            first_index: self.last_index + 1,
        };
        let mut buf = Vec::new();
        let mut crc = self.crc;
        encode(
            &mut buf,
            &mut crc,
            TYPE_SEGMENT,
            &segment_header(seg.seq, seg.first_index, self.crc),
        );
        encode(&mut buf, &mut crc, TYPE_METADATA, &self.metadata);
        encode(
            &mut buf,
            &mut crc,
            TYPE_HARD_STATE,
            &encode_msg(&self.hard_state),
        );
        if let Some(s) = &self.snapshot {
            encode(&mut buf, &mut crc, TYPE_SNAPSHOT, &encode_msg(s));
        }
        let path = self.dir.join(seg.name());
        // A failure here leaves it unknown whether the new segment exists.
        let res = self
            .disk
            .write_atomic(&path, &buf)
            .and_then(|()| self.disk.open_append(&path));
        let tail = match res {
            Ok(t) => t,
            Err(e) => {
                self.poisoned = true;
                return Err(WalError::Io(e));
            }
        };
        tracing::debug!(segment = %seg.name(), "cut WAL segment");
        self.tail = tail;
        self.tail_bytes = buf.len() as u64;
        self.crc = crc;
        self.segments.push(seg);
        Ok(())
    }
}

/// Replays one segment into `replay`. Returns the length of its valid prefix
/// (shorter than `data` only for a torn tail of the last segment) and the crc
/// of its last record.
fn replay_segment(
    data: &[u8],
    seg: &Segment,
    expected_prev_crc: Option<u32>,
    is_last: bool,
    replay: &mut Replay,
) -> Result<(usize, u32), WalError> {
    let name = seg.name();
    let corrupt = |offset: usize, reason: String| WalError::Corrupt {
        file: name.clone(),
        offset: offset as u64,
        reason,
    };
    let mut off = 0;
    let mut crc = 0;
    loop {
        let (ty, stored, payload, next) = match decode_at(data, off) {
            Decoded::Record {
                ty,
                crc,
                payload,
                next,
            } => (ty, crc, payload, next),
            Decoded::End if off > 0 => return Ok((off, crc)),
            Decoded::End => return Err(corrupt(0, "segment is empty".into())),
            Decoded::Incomplete(_) | Decoded::ZeroTail if is_last && off > 0 => {
                return Ok((off, crc))
            }
            Decoded::Incomplete(reason) => return Err(corrupt(off, reason)),
            Decoded::ZeroTail => return Err(corrupt(off, "unexpected zero bytes".into())),
            Decoded::Bad(reason) => return Err(corrupt(off, reason)),
        };
        if off == 0 {
            // The segment record seeds its own chain with prev_crc.
            if ty != TYPE_SEGMENT {
                return Err(corrupt(0, format!("segment starts with record type {ty}")));
            }
            let (seq, first_index, prev_crc) = parse_segment_header(payload)
                .ok_or_else(|| corrupt(0, "malformed segment header".into()))?;
            crc = prev_crc;
            if chain_crc(crc, ty, payload) != stored {
                return Err(corrupt(0, "checksum mismatch in segment header".into()));
            }
            if (seq, first_index) != (seg.seq, seg.first_index) {
                return Err(corrupt(
                    0,
                    format!(
                        "header says seq {seq:x} first index {first_index:x}, unlike the file name"
                    ),
                ));
            }
            if let Some(expected) = expected_prev_crc {
                if expected != prev_crc {
                    return Err(corrupt(
                        0,
                        "checksum chain broken: segment does not follow the previous one".into(),
                    ));
                }
            }
            crc = stored;
            off = next;
            continue;
        }
        if chain_crc(crc, ty, payload) != stored && !crate::planted_bug!(SkipWalChecksum) {
            return Err(corrupt(
                off,
                format!("checksum mismatch (record type {ty})"),
            ));
        }
        crc = stored;
        let bad_payload = |what: &str, e: protobuf::ProtobufError| {
            corrupt(off, format!("unparsable {what} record: {e}"))
        };
        match ty {
            TYPE_METADATA => match &replay.metadata {
                Some(m) if m != payload => {
                    return Err(corrupt(
                        off,
                        "metadata differs from earlier segments".into(),
                    ))
                }
                Some(_) => {}
                None => replay.metadata = Some(payload.to_vec()),
            },
            TYPE_HARD_STATE => {
                replay.hard_state = HardState::parse_from_bytes(payload)
                    .map_err(|e| bad_payload("hard state", e))?
            }
            TYPE_ENTRY => {
                let e = Entry::parse_from_bytes(payload).map_err(|e| bad_payload("entry", e))?;
                replay.apply_entry(e).map_err(|r| corrupt(off, r))?;
            }
            TYPE_SNAPSHOT => {
                let s = SnapshotMetadata::parse_from_bytes(payload)
                    .map_err(|e| bad_payload("snapshot", e))?;
                replay.apply_snapshot(s);
            }
            TYPE_SEGMENT => return Err(corrupt(off, "segment header in the middle".into())),
            other => return Err(corrupt(off, format!("unknown record type {other}"))),
        }
        off = next;
    }
}
