//! Record framing: encoding and bounds-checked decoding (see the module docs of
//! [`super`] for the format). Checksum *verification* is left to the caller,
//! because the segment header record carries its own chain seed.

/// `len u32 | !len u32 | type u8 | crc u32`.
pub(super) const HEADER_LEN: usize = 13;

/// Largest payload accepted, so a corrupt length cannot make us allocate or
/// skip gigabytes.
pub(super) const MAX_PAYLOAD: u32 = 256 << 20;

pub(super) const TYPE_SEGMENT: u8 = 1;
pub(super) const TYPE_METADATA: u8 = 2;
pub(super) const TYPE_HARD_STATE: u8 = 3;
pub(super) const TYPE_ENTRY: u8 = 4;
pub(super) const TYPE_SNAPSHOT: u8 = 5;

/// `magic | seq u64 | first_index u64 | prev_crc u32`, little-endian.
pub(super) const SEGMENT_MAGIC: &[u8; 8] = b"DETCDWAL";
pub(super) const SEGMENT_HEADER_LEN: usize = 8 + 8 + 8 + 4;

/// Chained checksum of one record: CRC-32 (IEEE) seeded with the previous
/// record's checksum, over `type | len | payload`.
pub(super) fn chain_crc(prev: u32, ty: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(prev);
    h.update(&[ty]);
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `buf` and advances the running checksum.
pub(super) fn encode(buf: &mut Vec<u8>, crc: &mut u32, ty: u8, payload: &[u8]) {
    assert!(
        payload.len() <= MAX_PAYLOAD as usize,
        "WAL record of {} bytes exceeds the {MAX_PAYLOAD}-byte limit",
        payload.len()
    );
    let len = payload.len() as u32;
    let c = chain_crc(*crc, ty, payload);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&(!len).to_le_bytes());
    buf.push(ty);
    buf.extend_from_slice(&c.to_le_bytes());
    buf.extend_from_slice(payload);
    *crc = c;
}

pub(super) fn segment_header(seq: u64, first_index: u64, prev_crc: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(SEGMENT_HEADER_LEN);
    p.extend_from_slice(SEGMENT_MAGIC);
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&first_index.to_le_bytes());
    p.extend_from_slice(&prev_crc.to_le_bytes());
    p
}

/// `(seq, first_index, prev_crc)`, or `None` if the payload is not a header.
pub(super) fn parse_segment_header(p: &[u8]) -> Option<(u64, u64, u32)> {
    if p.len() != SEGMENT_HEADER_LEN || &p[..8] != SEGMENT_MAGIC {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().unwrap());
    Some((
        u64_at(8),
        u64_at(16),
        u32::from_le_bytes(p[24..28].try_into().unwrap()),
    ))
}

pub(super) enum Decoded<'a> {
    /// A structurally complete record (checksum not yet verified).
    Record {
        ty: u8,
        crc: u32,
        payload: &'a [u8],
        next: usize,
    },
    /// No bytes left.
    End,
    /// The record runs past the end of the data: a write cut short.
    Incomplete(String),
    /// Everything from here to the end is zero (a file extended but never
    /// written, as some file systems leave after a crash).
    ZeroTail,
    /// A complete header that cannot be right.
    Bad(String),
}

pub(super) fn decode_at(data: &[u8], off: usize) -> Decoded<'_> {
    let rest = &data[off..];
    if rest.is_empty() {
        return Decoded::End;
    }
    if rest.len() < HEADER_LEN {
        if rest.iter().all(|&b| b == 0) {
            return Decoded::ZeroTail;
        }
        return Decoded::Incomplete(format!(
            "record header needs {HEADER_LEN} bytes, only {} left",
            rest.len()
        ));
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().unwrap());
    let inv = u32::from_le_bytes(rest[4..8].try_into().unwrap());
    if inv != !len {
        if rest.iter().all(|&b| b == 0) {
            return Decoded::ZeroTail;
        }
        return Decoded::Bad("record length field is damaged".to_string());
    }
    if len > MAX_PAYLOAD {
        return Decoded::Bad(format!("record length {len} exceeds the limit"));
    }
    let ty = rest[8];
    let crc = u32::from_le_bytes(rest[9..13].try_into().unwrap());
    let end = HEADER_LEN + len as usize;
    if rest.len() < end {
        return Decoded::Incomplete(format!("record of {end} bytes, only {} left", rest.len()));
    }
    Decoded::Record {
        ty,
        crc,
        payload: &rest[HEADER_LEN..end],
        next: off + end,
    }
}
