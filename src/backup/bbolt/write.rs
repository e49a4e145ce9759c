//! Writes a database the way bbolt's `Tx.WriteTo` (what etcd's `Maintenance.Snapshot` streams)
//! leaves one: both meta pages, an empty freelist, and every page reachable. Each bucket gets its
//! own B+tree of pages (bbolt would inline a small one; readers take both), packed full.

use std::ops::Range;

use super::page::{
    Meta, PageHeader, BRANCH_PAGE, BUCKET_ELEMENT, BUCKET_HEADER_BYTES, DEFAULT_PAGE_SIZE,
    ELEMENT_BYTES, FREELIST_PAGE, LEAF_PAGE, META_PAGE, PAGE_HEADER_BYTES,
};
use super::Bucket;

const PAGE_SIZE: usize = DEFAULT_PAGE_SIZE;
/// `WriteTo` writes meta 0 with its transaction's id and meta 1 with one less.
const TXID: u64 = 2;

/// The database holding `buckets` (names and keys ascending), as bytes.
pub fn write(buckets: &[Bucket]) -> Vec<u8> {
    assert!(
        buckets.windows(2).all(|pair| pair[0].name < pair[1].name),
        "bucket names ascend"
    );
    assert!(
        buckets
            .iter()
            .all(|bucket| bucket.entries.windows(2).all(|pair| pair[0].0 < pair[1].0)),
        "keys ascend in every bucket"
    );
    let mut pages = Pages {
        bytes: vec![0; 2 * PAGE_SIZE],
    };
    let freelist = pages.push(FREELIST_PAGE, &[], 0);
    let headers: Vec<[u8; BUCKET_HEADER_BYTES]> = buckets
        .iter()
        .map(|bucket| {
            let elements: Vec<LeafElement> = bucket
                .entries
                .iter()
                .map(|(key, value)| LeafElement {
                    flags: 0,
                    key,
                    value,
                })
                .collect();
            let root = write_tree(&mut pages, &elements);
            let mut header = [0u8; BUCKET_HEADER_BYTES];
            header[..8].copy_from_slice(&root.to_le_bytes());
            header
        })
        .collect();
    let top_level: Vec<LeafElement> = buckets
        .iter()
        .zip(&headers)
        .map(|(bucket, header)| LeafElement {
            flags: BUCKET_ELEMENT,
            key: &bucket.name,
            value: header,
        })
        .collect();
    let root = write_tree(&mut pages, &top_level);
    let meta = Meta {
        page_size: PAGE_SIZE as u32,
        flags: 0,
        root,
        sequence: 0,
        freelist,
        pgid: pages.next_id(),
        txid: TXID,
    };
    for (id, txid) in [(0, TXID), (1, TXID - 1)] {
        let page = &mut pages.bytes[id as usize * PAGE_SIZE..][..PAGE_SIZE];
        PageHeader {
            id,
            flags: META_PAGE,
            count: 0,
            overflow: 0,
        }
        .encode_into(page);
        let meta = Meta { txid, ..meta }.encode();
        page[PAGE_HEADER_BYTES..][..meta.len()].copy_from_slice(&meta);
    }
    pages.bytes
}

struct LeafElement<'a> {
    flags: u32,
    key: &'a [u8],
    value: &'a [u8],
}

/// The file being written, a whole number of pages.
struct Pages {
    bytes: Vec<u8>,
}

impl Pages {
    fn next_id(&self) -> u64 {
        (self.bytes.len() / PAGE_SIZE) as u64
    }

    /// Appends a page of `flags` holding `count` elements laid out in `body`, spilling into
    /// overflow pages as needed; returns its id.
    fn push(&mut self, flags: u16, body: &[u8], count: usize) -> u64 {
        let id = self.next_id();
        let len = (PAGE_HEADER_BYTES + body.len()).next_multiple_of(PAGE_SIZE);
        let start = self.bytes.len();
        self.bytes.resize(start + len, 0);
        PageHeader {
            id,
            flags,
            count: u16::try_from(count).expect("a page holds at most u16::MAX elements"),
            overflow: u32::try_from(len / PAGE_SIZE - 1).expect("a page spans < 2^32 pages"),
        }
        .encode_into(&mut self.bytes[start..]);
        self.bytes[start + PAGE_HEADER_BYTES..][..body.len()].copy_from_slice(body);
        id
    }
}

/// Writes a B+tree over `elements` (ascending keys), leaves first; returns its root page.
fn write_tree(pages: &mut Pages, elements: &[LeafElement]) -> u64 {
    let mut level: Vec<(&[u8], u64)> = pack(elements, 1, |e| e.key.len() + e.value.len())
        .into_iter()
        .map(|range| {
            let leaves = &elements[range];
            let first_key = leaves.first().map_or(&[][..], |e| e.key);
            (
                first_key,
                pages.push(LEAF_PAGE, &leaf_body(leaves), leaves.len()),
            )
        })
        .collect();
    while level.len() > 1 {
        level = pack(&level, 2, |(key, _)| key.len())
            .into_iter()
            .map(|range| {
                let children = &level[range];
                (
                    children[0].0,
                    pages.push(BRANCH_PAGE, &branch_body(children), children.len()),
                )
            })
            .collect();
    }
    level[0].1
}

/// Splits `items` into runs that each fill a page (a run of `min` or fewer may overflow it, so
/// a branch level always has fewer pages than the level below). Always at least one run, so an
/// empty bucket gets an empty leaf.
fn pack<T>(items: &[T], min: usize, data_len: impl Fn(&T) -> usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut filled) = (0, PAGE_HEADER_BYTES);
    for (i, item) in items.iter().enumerate() {
        let len = ELEMENT_BYTES + data_len(item);
        if i - start >= min && filled + len > PAGE_SIZE {
            runs.push(start..i);
            (start, filled) = (i, PAGE_HEADER_BYTES);
        }
        filled += len;
    }
    runs.push(start..items.len());
    runs
}

/// Elements first, then each element's key and value; `pos` counts from the element.
fn leaf_body(elements: &[LeafElement]) -> Vec<u8> {
    let mut body = vec![0u8; elements.len() * ELEMENT_BYTES];
    for (i, element) in elements.iter().enumerate() {
        let pos = body.len() - i * ELEMENT_BYTES;
        let slot = &mut body[i * ELEMENT_BYTES..][..ELEMENT_BYTES];
        slot[0..4].copy_from_slice(&element.flags.to_le_bytes());
        slot[4..8].copy_from_slice(&u32_len(pos).to_le_bytes());
        slot[8..12].copy_from_slice(&u32_len(element.key.len()).to_le_bytes());
        slot[12..16].copy_from_slice(&u32_len(element.value.len()).to_le_bytes());
        body.extend_from_slice(element.key);
        body.extend_from_slice(element.value);
    }
    body
}

fn branch_body(children: &[(&[u8], u64)]) -> Vec<u8> {
    let mut body = vec![0u8; children.len() * ELEMENT_BYTES];
    for (i, (key, pgid)) in children.iter().enumerate() {
        let pos = body.len() - i * ELEMENT_BYTES;
        let slot = &mut body[i * ELEMENT_BYTES..][..ELEMENT_BYTES];
        slot[0..4].copy_from_slice(&u32_len(pos).to_le_bytes());
        slot[4..8].copy_from_slice(&u32_len(key.len()).to_le_bytes());
        slot[8..16].copy_from_slice(&pgid.to_le_bytes());
        body.extend_from_slice(key);
    }
    body
}

fn u32_len(len: usize) -> u32 {
    u32::try_from(len).expect("bbolt keys and values are under 4 GiB")
}
