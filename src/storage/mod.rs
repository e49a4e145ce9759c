//! Durable state of a member: the raft write-ahead log, and the multi-version KV store that
//! committed entries are applied to.

pub mod mvcc;
pub mod wal;
