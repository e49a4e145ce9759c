//! Authentication and RBAC (etcd's `auth` package): the replicated [`store`], the key-range
//! permission check ([`range_perm`]), the permissions each client request needs
//! ([`requests`]), simple [`tokens`] and bcrypt [`password`] hashing.

mod error;
pub mod jwt;
pub mod password;
pub mod range_perm;
pub mod requests;
pub mod store;
#[cfg(test)]
mod tests;
pub mod tokens;

pub use error::AuthError;
pub use range_perm::Access;
pub use store::{AuthStore, Credentials, ROOT};

/// Who a request comes from, as the permission checks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    /// The server itself (lease expiry, publishing its attributes, alarms): never checked.
    Server,
    /// A client, and the user its token or certificate names, if any.
    Client(Option<String>),
}

impl Requester {
    /// As a raft entry carries it: (username, from_server).
    pub fn from_entry(username: String, from_server: bool) -> Requester {
        if from_server {
            Requester::Server
        } else if username.is_empty() {
            Requester::Client(None)
        } else {
            Requester::Client(Some(username))
        }
    }

    pub fn to_entry(&self) -> (String, bool) {
        match self {
            Requester::Server => (String::new(), true),
            Requester::Client(user) => (user.clone().unwrap_or_default(), false),
        }
    }
}
