//! Reads a database from bytes that may be damaged in any way: every offset, length and page id
//! is checked before use, every page may be reached once only (so a cycle is an error, not a
//! hang), and the checks of bbolt's `Tx.Check` (which `etcdctl snapshot status` runs) apply —
//! every page in use is reachable or free, never both.

use std::collections::BTreeSet;

use super::page::{
    u32_at, u64_at, Meta, PageHeader, BRANCH_PAGE, BUCKET_ELEMENT, BUCKET_HEADER_BYTES,
    DEFAULT_PAGE_SIZE, ELEMENT_BYTES, FREELIST_COUNT_OVERFLOW, FREELIST_PAGE, LEAF_PAGE,
    META_BYTES, META_PAGE, PAGE_HEADER_BYTES,
};
use super::{Bucket, Database};

/// bbolt's `pgidNoFreelist`: the freelist is not kept in the file.
const NO_FREELIST: u64 = u64::MAX;
/// Far deeper than any real tree (at a hundred children per branch page, ten levels index more
/// pages than a 64-bit file holds); bounds the recursion on a crafted one.
const MAX_DEPTH: usize = 32;

/// Reads every top-level bucket of the database in `file`.
pub fn read(file: &[u8]) -> Result<Database, String> {
    let meta = pick_meta(file)?;
    let page_size = meta.page_size as usize;
    let size_bytes = meta
        .pgid
        .checked_mul(page_size as u64)
        .filter(|&size| size <= file.len() as u64)
        .ok_or_else(|| {
            format!(
                "truncated: its meta counts {} pages of {page_size} bytes, the file has {} bytes",
                meta.pgid,
                file.len()
            )
        })?;
    let mut reader = Reader {
        file: &file[..size_bytes as usize],
        page_size,
        pgid: meta.pgid,
        reachable: [0, 1].into_iter().collect(),
        freed: BTreeSet::new(),
    };
    reader.read_freelist(meta.freelist)?;
    let mut top_level = Vec::new();
    reader.walk(meta.root, 0, &mut top_level)?;
    let mut buckets = Vec::new();
    for element in in_order(top_level, "the root bucket")? {
        let name = String::from_utf8_lossy(element.key).into_owned();
        if element.flags & BUCKET_ELEMENT == 0 {
            return Err(format!("top-level key {name:?} is not a bucket"));
        }
        let elements = reader.bucket(element.value, &name)?;
        let mut entries = Vec::with_capacity(elements.len());
        for element in in_order(elements, &name)? {
            if element.flags & BUCKET_ELEMENT != 0 {
                return Err(format!(
                    "bucket {name:?} holds a nested bucket (etcd's buckets have none)"
                ));
            }
            entries.push((element.key.to_vec(), element.value.to_vec()));
        }
        buckets.push(Bucket {
            name: element.key.to_vec(),
            entries,
        });
    }
    // Without a freelist in the file, bbolt takes every unreachable page as free.
    let unaccounted = (0..meta.pgid)
        .filter(|_| meta.freelist != NO_FREELIST)
        .find(|id| !reader.reachable.contains(id) && !reader.freed.contains(id));
    if let Some(page) = unaccounted {
        return Err(format!("page {page}: unreachable unfreed"));
    }
    Ok(Database {
        buckets,
        size_bytes,
    })
}

/// The valid meta page with the highest txid, as bbolt picks it.
fn pick_meta(file: &[u8]) -> Result<Meta, String> {
    let meta_at = |offset: usize| -> Result<Meta, String> {
        let page = file
            .get(offset..offset + PAGE_HEADER_BYTES + META_BYTES)
            .ok_or("file too small")?;
        if PageHeader::decode(page).flags != META_PAGE {
            return Err("not a meta page".into());
        }
        let meta = Meta::decode(page[PAGE_HEADER_BYTES..].try_into().expect("meta bytes"))?;
        if !meta.page_size.is_power_of_two() || !(512..=65536).contains(&meta.page_size) {
            return Err(format!("invalid page size {}", meta.page_size));
        }
        Ok(meta)
    };
    let first = meta_at(0);
    let second = meta_at(
        first
            .as_ref()
            .map_or(DEFAULT_PAGE_SIZE, |meta| meta.page_size as usize),
    );
    match (first, second) {
        (Ok(first), Ok(second)) => Ok(if second.txid > first.txid {
            second
        } else {
            first
        }),
        (Ok(meta), Err(_)) | (Err(_), Ok(meta)) => Ok(meta),
        (Err(first), Err(second)) => Err(format!(
            "not a bbolt database (meta page 0: {first}; meta page 1: {second})"
        )),
    }
}

#[derive(Debug, Clone, Copy)]
struct LeafElement<'a> {
    flags: u32,
    key: &'a [u8],
    value: &'a [u8],
}

struct Reader<'a> {
    /// The pages in use.
    file: &'a [u8],
    page_size: usize,
    pgid: u64,
    reachable: BTreeSet<u64>,
    freed: BTreeSet<u64>,
}

impl<'a> Reader<'a> {
    /// Page `id` with its overflow pages, marked reachable.
    fn page(&mut self, id: u64) -> Result<(PageHeader, &'a [u8]), String> {
        if id < 2 || id >= self.pgid {
            return Err(format!("page {id}: out of bounds: {}", self.pgid));
        }
        let start = id as usize * self.page_size;
        let header = PageHeader::decode(&self.file[start..]);
        if header.id != id {
            return Err(format!("page {id}: its header says page {}", header.id));
        }
        let end = u64::from(header.overflow)
            .checked_add(id + 1)
            .filter(|&end| end <= self.pgid)
            .ok_or_else(|| {
                format!(
                    "page {id}: {} overflow pages run out of the file",
                    header.overflow
                )
            })?;
        for page in id..end {
            if self.freed.contains(&page) {
                return Err(format!("page {page}: reachable freed"));
            }
            if !self.reachable.insert(page) {
                return Err(format!("page {page}: multiple references"));
            }
        }
        Ok((header, &self.file[start..end as usize * self.page_size]))
    }

    fn read_freelist(&mut self, id: u64) -> Result<(), String> {
        if id == NO_FREELIST {
            return Ok(());
        }
        let (header, page) = self.page(id)?;
        if header.flags != FREELIST_PAGE {
            return Err(format!(
                "page {id}: not the freelist (flags {:#x})",
                header.flags
            ));
        }
        let (count, ids_at) = if header.count == FREELIST_COUNT_OVERFLOW {
            (u64_at(page, PAGE_HEADER_BYTES), PAGE_HEADER_BYTES + 8)
        } else {
            (u64::from(header.count), PAGE_HEADER_BYTES)
        };
        let ids = count
            .checked_mul(8)
            .and_then(|len| page.get(ids_at..ids_at.checked_add(usize::try_from(len).ok()?)?))
            .ok_or_else(|| format!("page {id}: {count} free pages overrun the freelist"))?;
        for free in ids.chunks_exact(8) {
            let free = u64_at(free, 0);
            if self.reachable.contains(&free) {
                return Err(format!("page {free}: reachable freed"));
            }
            self.freed.insert(free);
        }
        Ok(())
    }

    /// The entries of the bucket whose value (its header) is `value`.
    fn bucket(&mut self, value: &'a [u8], name: &str) -> Result<Vec<LeafElement<'a>>, String> {
        if value.len() < BUCKET_HEADER_BYTES {
            return Err(format!("bucket {name:?}: {} bytes of header", value.len()));
        }
        let root = u64_at(value, 0);
        let mut elements = Vec::new();
        if root == 0 {
            // An inline bucket: its one leaf page follows the header.
            let page = &value[BUCKET_HEADER_BYTES..];
            if page.len() < PAGE_HEADER_BYTES || PageHeader::decode(page).flags != LEAF_PAGE {
                return Err(format!("bucket {name:?}: inline page is not a leaf"));
            }
            elements = leaf_elements(page, PageHeader::decode(page).count)
                .map_err(|e| format!("bucket {name:?}: inline page: {e}"))?;
        } else {
            self.walk(root, 0, &mut elements)?;
        }
        Ok(elements)
    }

    /// Appends the leaf elements of the tree at `id` to `out`, in tree order.
    fn walk(
        &mut self,
        id: u64,
        depth: usize,
        out: &mut Vec<LeafElement<'a>>,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("page {id}: tree deeper than {MAX_DEPTH} levels"));
        }
        let (header, page) = self.page(id)?;
        match header.flags {
            LEAF_PAGE => out
                .extend(leaf_elements(page, header.count).map_err(|e| format!("page {id}: {e}"))?),
            BRANCH_PAGE => {
                for child in
                    branch_children(page, header.count).map_err(|e| format!("page {id}: {e}"))?
                {
                    self.walk(child, depth + 1, out)?;
                }
            }
            flags => return Err(format!("page {id}: invalid type {flags:#x}")),
        }
        Ok(())
    }
}

/// The `i`th element's 16 bytes and the page bytes from it on.
fn element(page: &[u8], i: usize) -> Result<(&[u8], &[u8]), String> {
    let at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    let from = page.get(at..).filter(|from| from.len() >= ELEMENT_BYTES);
    from.map(|from| (&from[..ELEMENT_BYTES], from))
        .ok_or_else(|| format!("element {i} lies past the page"))
}

/// `len` bytes at `pos` of `from`.
fn bytes_at(from: &[u8], pos: u32, len: u64, i: usize) -> Result<&[u8], String> {
    let pos = pos as usize;
    usize::try_from(len)
        .ok()
        .and_then(|len| from.get(pos..pos.checked_add(len)?))
        .ok_or_else(|| format!("element {i}'s key or value lies past the page"))
}

fn leaf_elements(page: &[u8], count: u16) -> Result<Vec<LeafElement<'_>>, String> {
    (0..usize::from(count))
        .map(|i| {
            let (element, from) = element(page, i)?;
            let key_len = u32_at(element, 8);
            let data = bytes_at(
                from,
                u32_at(element, 4),
                u64::from(key_len) + u64::from(u32_at(element, 12)),
                i,
            )?;
            let (key, value) = data.split_at(key_len as usize);
            Ok(LeafElement {
                flags: u32_at(element, 0),
                key,
                value,
            })
        })
        .collect()
}

fn branch_children(page: &[u8], count: u16) -> Result<Vec<u64>, String> {
    (0..usize::from(count))
        .map(|i| {
            let (element, from) = element(page, i)?;
            // The key only guides a search; the walk visits every child in order regardless.
            bytes_at(from, u32_at(element, 0), u64::from(u32_at(element, 4)), i)?;
            Ok(u64_at(element, 8))
        })
        .collect()
}

/// `elements` if their keys strictly ascend, as a B+tree's must.
fn in_order<'a>(
    elements: Vec<LeafElement<'a>>,
    bucket: &str,
) -> Result<Vec<LeafElement<'a>>, String> {
    match elements
        .windows(2)
        .position(|pair| pair[0].key >= pair[1].key)
    {
        Some(i) => Err(format!(
            "bucket {bucket:?}: keys out of order at entry {}",
            i + 1
        )),
        None => Ok(elements),
    }
}
