//! Maps server errors to etcd's gRPC status codes (etcd's `rpctypes`): clients branch on the code
//! (e.g. retry on Unavailable) and match the message text.

use tonic::{Code, Status};

use crate::server::ServerError;
use crate::storage::mvcc::MvccError;

pub fn to_status(error: ServerError) -> Status {
    let code = match &error {
        ServerError::Mvcc(MvccError::Compacted | MvccError::FutureRevision) => Code::OutOfRange,
        ServerError::Mvcc(MvccError::LeaseNotFound(_)) | ServerError::LeaseNotFound => {
            Code::NotFound
        }
        ServerError::LeaseExists | ServerError::NotLeader => Code::FailedPrecondition,
        ServerError::LeaseTtlTooLarge => Code::OutOfRange,
        ServerError::Mvcc(MvccError::KeyNotFound | MvccError::DuplicateKey)
        | ServerError::EmptyKey
        | ServerError::ValueProvided
        | ServerError::LeaseProvided
        | ServerError::TooManyOps
        | ServerError::DuplicateKey
        | ServerError::RequestTooLarge => Code::InvalidArgument,
        ServerError::NoLeader
        | ServerError::LeaderChanged
        | ServerError::Timeout
        | ServerError::Stopped => Code::Unavailable,
        ServerError::MemberNotFound => Code::NotFound,
        ServerError::MemberBadUrls => Code::InvalidArgument,
        ServerError::PeerUrlExists
        | ServerError::MemberNotLearner
        | ServerError::TooManyLearners
        | ServerError::LearnerNotReady
        | ServerError::BadLeaderTransferee => Code::FailedPrecondition,
        ServerError::Storage(_) | ServerError::Removed => Code::Internal,
        ServerError::NoSpace | ServerError::TooManyRequests => Code::ResourceExhausted,
        ServerError::Auth(error) => error.code(),
        ServerError::AuthUntranslated(_) => Code::Unknown,
        ServerError::FromLeader { code, .. } => Code::from_i32(*code),
    };
    Status::new(code, error.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacted_is_out_of_range_with_etcds_text() {
        let status = to_status(ServerError::Mvcc(MvccError::Compacted));
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            status.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
    }

    #[test]
    fn lease_errors_carry_etcds_codes_and_texts() {
        for (error, code, text) in [
            (
                ServerError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                ServerError::LeaseExists,
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                ServerError::LeaseTtlTooLarge,
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                ServerError::NotLeader,
                Code::FailedPrecondition,
                "etcdserver: not leader",
            ),
        ] {
            let status = to_status(error);
            assert_eq!((status.code(), status.message()), (code, text));
        }
    }

    #[test]
    fn limits_answer_with_etcds_codes_and_texts() {
        for (error, code, text) in [
            (
                ServerError::TooManyRequests,
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ),
            (
                ServerError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                ServerError::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
        ] {
            let status = to_status(error);
            assert_eq!((status.code(), status.message()), (code, text));
        }
    }

    #[test]
    fn a_leaders_answer_passes_on_unchanged() {
        let status = to_status(ServerError::FromLeader {
            code: Code::NotFound as i32,
            message: "etcdserver: requested lease not found".into(),
        });
        assert_eq!(
            (status.code(), status.message()),
            (Code::NotFound, "etcdserver: requested lease not found")
        );
    }

    #[test]
    fn unavailable_errors_let_clients_retry() {
        for error in [
            ServerError::NoLeader,
            ServerError::Timeout,
            ServerError::Stopped,
        ] {
            assert_eq!(to_status(error).code(), Code::Unavailable);
        }
    }
}
