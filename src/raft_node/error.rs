//! How the raft loop ends, and why a read index or a proposal it was handed fails: the loop's
//! own errors, which the server translates into etcd's (`ServerError`'s `From`).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftError {
    /// No leader is known to take a proposal or answer a read index.
    NoLeader,
    /// The leader changed while a read index was pending.
    LeaderChanged,
    /// This member was removed from the cluster: the loop ends.
    Removed,
    /// The local disk (or the state machine's data) failed: the loop ends rather than
    /// acknowledge anything it could not make durable.
    Storage(String),
}

impl std::fmt::Display for RaftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RaftError::NoLeader => f.write_str("no leader"),
            RaftError::LeaderChanged => f.write_str("leader changed"),
            RaftError::Removed => f.write_str("the member has been removed from the cluster"),
            RaftError::Storage(why) => write!(f, "storage: {why}"),
        }
    }
}

impl std::error::Error for RaftError {}
