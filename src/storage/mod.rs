//! Durable state of a member: the raft write-ahead log.

pub mod wal;
