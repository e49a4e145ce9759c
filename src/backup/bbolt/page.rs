//! The fixed-size parts of bbolt's pages: page headers, elements and the meta page.

pub const PAGE_HEADER_BYTES: usize = 16;
/// Leaf and branch elements are both 16 bytes.
pub const ELEMENT_BYTES: usize = 16;
/// A bucket's value: `{root pgid: u64, sequence: u64}`.
pub const BUCKET_HEADER_BYTES: usize = 16;

pub const BRANCH_PAGE: u16 = 0x01;
pub const LEAF_PAGE: u16 = 0x02;
pub const META_PAGE: u16 = 0x04;
pub const FREELIST_PAGE: u16 = 0x10;
/// A leaf element whose value is a bucket.
pub const BUCKET_ELEMENT: u32 = 0x01;

/// `count` says the freelist's length is in the page's first u64 instead.
pub const FREELIST_COUNT_OVERFLOW: u16 = 0xFFFF;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
pub const META_BYTES: usize = 64;
const CHECKSUMMED_META_BYTES: usize = 56;

/// The page size bbolt picks on the platforms etcd runs on (`os.Getpagesize()`); where meta 0
/// is unreadable, bbolt looks for meta 1 there too.
pub const DEFAULT_PAGE_SIZE: usize = 4096;

pub fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// A page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl PageHeader {
    /// Reads the header at the start of `page`, which holds at least `PAGE_HEADER_BYTES`.
    pub fn decode(page: &[u8]) -> PageHeader {
        PageHeader {
            id: u64_at(page, 0),
            flags: u16_at(page, 8),
            count: u16_at(page, 10),
            overflow: u32_at(page, 12),
        }
    }

    pub fn encode_into(&self, page: &mut [u8]) {
        page[0..8].copy_from_slice(&self.id.to_le_bytes());
        page[8..10].copy_from_slice(&self.flags.to_le_bytes());
        page[10..12].copy_from_slice(&self.count.to_le_bytes());
        page[12..16].copy_from_slice(&self.overflow.to_le_bytes());
    }
}

/// A meta page's contents (after its page header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub flags: u32,
    pub root: u64,
    pub sequence: u64,
    pub freelist: u64,
    /// Pages in use: the high-water mark, one past the last page.
    pub pgid: u64,
    pub txid: u64,
}

impl Meta {
    pub fn encode(&self) -> [u8; META_BYTES] {
        let mut bytes = [0u8; META_BYTES];
        bytes[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        bytes[4..8].copy_from_slice(&VERSION.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.flags.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.root.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        bytes[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let checksum = fnv1a64(&bytes[..CHECKSUMMED_META_BYTES]);
        bytes[56..64].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Decodes and checks a meta as bbolt's `meta.validate` does.
    pub fn decode(bytes: &[u8; META_BYTES]) -> Result<Meta, &'static str> {
        if u32_at(bytes, 0) != MAGIC {
            return Err("invalid magic");
        }
        if u32_at(bytes, 4) != VERSION {
            return Err("version mismatch");
        }
        if u64_at(bytes, 56) != fnv1a64(&bytes[..CHECKSUMMED_META_BYTES]) {
            return Err("checksum error");
        }
        Ok(Meta {
            page_size: u32_at(bytes, 8),
            flags: u32_at(bytes, 12),
            root: u64_at(bytes, 16),
            sequence: u64_at(bytes, 24),
            freelist: u64_at(bytes, 32),
            pgid: u64_at(bytes, 40),
            txid: u64_at(bytes, 48),
        })
    }
}

/// FNV-1a, 64-bit (Go's `hash/fnv.New64a`), bbolt's meta checksum.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_meta_round_trips_and_a_flipped_bit_fails_its_checksum() {
        let meta = Meta {
            page_size: 4096,
            flags: 0,
            root: 3,
            sequence: 0,
            freelist: 2,
            pgid: 4,
            txid: 9,
        };
        let mut bytes = meta.encode();
        assert_eq!(Meta::decode(&bytes), Ok(meta));
        bytes[40] ^= 1;
        assert_eq!(Meta::decode(&bytes), Err("checksum error"));
    }
}
