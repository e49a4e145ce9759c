//! Errors a client request can end in, one variant per etcd error, so the API layer can answer
//! with etcd's exact gRPC code and message (`api::status`).

use crate::auth::AuthError;
use crate::raft_node::RaftError;
use crate::storage::mvcc::MvccError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// Rejected by the MVCC store while applying, or while reading.
    Mvcc(MvccError),
    EmptyKey,
    LeaseNotFound,
    LeaseExists,
    LeaseTtlTooLarge,
    ValueProvided,
    LeaseProvided,
    TooManyOps,
    DuplicateKey,
    RequestTooLarge,
    /// Too many proposals wait for their apply, or the applier lags far behind the commit
    /// index, or a watch would exceed its stream's or the server's watch bound.
    TooManyRequests,
    NoLeader,
    NotLeader,
    LeaderChanged,
    Timeout,
    Stopped,
    /// The local disk failed underneath the server: it stops rather than serve unsynced data.
    Storage(String),
    /// This member was removed from the cluster: it stops.
    Removed,
    MemberNotFound,
    MemberBadUrls,
    PeerUrlExists,
    MemberNotLearner,
    TooManyLearners,
    LearnerNotReady,
    BadLeaderTransferee,
    /// The backend is over `--quota-backend-bytes`, or a NOSPACE alarm is raised.
    NoSpace,
    Auth(AuthError),
    /// The leader's error for a request this member forwarded to it, passed on as it came: its
    /// gRPC code and message.
    FromLeader {
        code: i32,
        message: String,
    },
    /// An auth refusal as etcd 3.4's maintenance RPCs answer it: the auth package's own error,
    /// untranslated (code Unknown, `auth: permission denied`).
    AuthUntranslated(AuthError),
}

impl From<AuthError> for ServerError {
    fn from(error: AuthError) -> Self {
        ServerError::Auth(error)
    }
}

impl From<RaftError> for ServerError {
    fn from(error: RaftError) -> Self {
        match error {
            RaftError::NoLeader => ServerError::NoLeader,
            RaftError::LeaderChanged => ServerError::LeaderChanged,
            RaftError::Removed => ServerError::Removed,
            RaftError::Storage(why) => ServerError::Storage(why),
        }
    }
}

impl From<MvccError> for ServerError {
    fn from(error: MvccError) -> Self {
        ServerError::Mvcc(error)
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl ServerError {
    /// etcd's message for this error (`rpctypes`), which clients match on.
    pub fn message(&self) -> String {
        match self {
            ServerError::Mvcc(MvccError::Compacted) => {
                "etcdserver: mvcc: required revision has been compacted".into()
            }
            ServerError::Mvcc(MvccError::FutureRevision) => {
                "etcdserver: mvcc: required revision is a future revision".into()
            }
            ServerError::Mvcc(MvccError::KeyNotFound) => "etcdserver: key not found".into(),
            ServerError::Mvcc(MvccError::LeaseNotFound(_)) => {
                "etcdserver: requested lease not found".into()
            }
            ServerError::Mvcc(MvccError::DuplicateKey) | ServerError::DuplicateKey => {
                "etcdserver: duplicate key given in txn request".into()
            }
            ServerError::EmptyKey => "etcdserver: key is not provided".into(),
            ServerError::LeaseNotFound => "etcdserver: requested lease not found".into(),
            ServerError::LeaseExists => "etcdserver: lease already exists".into(),
            ServerError::LeaseTtlTooLarge => "etcdserver: too large lease TTL".into(),
            ServerError::ValueProvided => "etcdserver: value is provided".into(),
            ServerError::LeaseProvided => "etcdserver: lease is provided".into(),
            ServerError::TooManyOps => "etcdserver: too many operations in txn request".into(),
            ServerError::RequestTooLarge => "etcdserver: request is too large".into(),
            ServerError::TooManyRequests => "etcdserver: too many requests".into(),
            ServerError::NoLeader => "etcdserver: no leader".into(),
            ServerError::NotLeader => "etcdserver: not leader".into(),
            ServerError::LeaderChanged => "etcdserver: leader changed".into(),
            ServerError::Timeout => "etcdserver: request timed out".into(),
            ServerError::Stopped => "etcdserver: server stopped".into(),
            ServerError::Removed => {
                "etcdserver: the member has been permanently removed from the cluster".into()
            }
            ServerError::MemberNotFound => "etcdserver: member not found".into(),
            ServerError::MemberBadUrls => "etcdserver: given member URLs are invalid".into(),
            ServerError::PeerUrlExists => "etcdserver: Peer URLs already exists".into(),
            ServerError::MemberNotLearner => "etcdserver: can only promote a learner member".into(),
            ServerError::TooManyLearners => {
                "etcdserver: too many learner members in cluster".into()
            }
            ServerError::LearnerNotReady => {
                "etcdserver: can only promote a learner member which is in sync with leader".into()
            }
            ServerError::BadLeaderTransferee => "etcdserver: bad leader transferee".into(),
            ServerError::NoSpace => "etcdserver: mvcc: database space exceeded".into(),
            ServerError::Storage(why) => format!("etcdserver: storage failure: {why}"),
            ServerError::Auth(error) => error.message().into(),
            ServerError::FromLeader { message, .. } => message.clone(),
            ServerError::AuthUntranslated(error) => {
                error.message().replacen("etcdserver: ", "auth: ", 1)
            }
        }
    }
}
