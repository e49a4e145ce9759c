//! bbolt's file format (go.etcd.io/bbolt 1.3, the database etcd 3.4 keeps and backs up), as far
//! as etcd's backups need it: a database of top-level buckets holding plain keys and values.
//!
//! Written here rather than taken from the `bbolt-rs` crate: that crate is a whole database
//! engine over a memory-mapped file with its own locking, timers and randomness (none of which
//! runs on detcd's disk seam or inside the simulator), it pulls in a CLI's worth of dependencies
//! (clap, fake, tempfile, rand 0.8...) as non-dev dependencies, and like Go's bbolt it trusts the
//! file it opens, while a backup reader must turn any damaged bytes into an error. A backup is
//! read once from memory and written once, so the part of the format needed is small.
//!
//! # Layout (all integers little-endian, as bbolt writes them on every platform etcd ships on)
//!
//! The file is an array of pages of `page_size` bytes; page `n` starts at `n * page_size`. Every
//! page starts with a 16-byte header: `id: u64, flags: u16, count: u16, overflow: u32`; a page
//! with `overflow = k` spans `k + 1` pages. Pages 0 and 1 are meta pages, the one with the higher
//! valid txid wins. A meta is `magic 0xED0CDAED: u32, version 2: u32, page_size: u32, flags: u32,
//! root bucket {root pgid: u64, sequence: u64}, freelist pgid: u64, pgid (pages in use): u64,
//! txid: u64, checksum: u64` — the checksum is FNV-1a/64 of the 56 bytes before it.
//!
//! A bucket is a B+tree. Leaf pages hold `count` 16-byte elements `flags: u32, pos: u32,
//! ksize: u32, vsize: u32`, branch pages `pos: u32, ksize: u32, pgid: u64` (a child and its first
//! key); `pos` counts from the element itself to its key, the value follows the key. A leaf
//! element with flag 1 is a sub-bucket: its value is `{root pgid, sequence}` and, when the root
//! pgid is 0, the bucket's one leaf page inline after it. The root bucket's elements are the
//! top-level buckets. The freelist page lists free pgids (`count`, or 0xFFFF and a u64 count).

mod page;
mod read;
mod write;

pub use read::read;
pub use write::write;

/// One top-level bucket: its name and its entries in ascending key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: Vec<u8>,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A database read from a file: its buckets in ascending name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub buckets: Vec<Bucket>,
    /// The bytes in use, `pgid * page_size` (bbolt's `Tx.Size`, etcd's "total size").
    pub size_bytes: u64,
}

impl Database {
    pub fn bucket(&self, name: &[u8]) -> Option<&Bucket> {
        self.buckets.iter().find(|bucket| bucket.name == name)
    }
}

#[cfg(test)]
mod tests;
