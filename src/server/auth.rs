//! The auth half of the server (etcd's auth methods of `v3_server.go`): who a request comes
//! from, the checks the API layer makes before a request runs, and the Auth service's requests.
//! Changes are raft entries that every member applies to its auth store (`apply`); reads answer
//! from this member's store after a linearizable read barrier.

use std::sync::{Arc, Mutex};

use rand::SeedableRng as _;

use crate::auth::{password, tokens, Access, AuthError, AuthStore, Credentials, Requester};
use crate::config::Config;
use crate::io::Clock;
use crate::pb::detcdpb::auth_change::Change;
use crate::pb::detcdpb::{
    raft_request, AuthChange, AuthUserAdd, AuthUserChangePassword, AuthenticateToken,
};
use crate::pb::etcdserverpb::{AuthUserAddRequest, AuthUserChangePasswordRequest, ResponseHeader};
use crate::server::header::Headers;
use crate::server::propose::{AuthApplied, Proposer};
use crate::server::ServerError;

/// Mixed into the node's seed for its auth RNG, so that drawing salts and token prefixes moves
/// none of the node's other random choices.
const AUTH_RNG_SEED_MIX: u64 = 0x0a07_45a1_7000;

pub struct AuthServer {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    auth: Arc<Mutex<AuthStore>>,
    /// Password salts and token prefixes, drawn from the node's seed (no OS randomness here).
    rng: Mutex<rand::rngs::StdRng>,
    proposer: Arc<Proposer>,
    headers: Headers,
}

impl AuthServer {
    pub fn new(
        (config, clock, seed): (Arc<Config>, Arc<dyn Clock>, u64),
        auth: Arc<Mutex<AuthStore>>,
        proposer: Arc<Proposer>,
        headers: Headers,
    ) -> AuthServer {
        AuthServer {
            config,
            clock,
            auth,
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed ^ AUTH_RNG_SEED_MIX)),
            proposer,
            headers,
        }
    }

    /// Who a client request comes from: the user its simple token names or else, with auth
    /// enabled, the Common Name of its verified client certificate (as etcd). A token that names
    /// nobody (unknown, expired, or its user's password changed) is `invalid auth token`, which
    /// tells clients to authenticate again.
    pub fn requester(
        &self,
        token: Option<&str>,
        common_name: Option<&str>,
    ) -> Result<Requester, ServerError> {
        let mut auth = self.auth.lock().unwrap();
        if !auth.is_enabled() {
            return Ok(Requester::Client(None));
        }
        match token {
            Some(token) if self.config.jwt.is_some() => self
                .config
                .jwt
                .as_ref()
                .and_then(|jwt| jwt.user_of(token, self.clock.wall_ms() / 1000))
                .map(|user| Requester::Client(Some(user)))
                .ok_or(ServerError::Auth(AuthError::InvalidAuthToken)),
            Some(token) => auth
                .user_of_token(token, self.clock.now(), self.config.auth_token_ttl)
                .map(|user| Requester::Client(Some(user)))
                .ok_or(ServerError::Auth(AuthError::InvalidAuthToken)),
            None => Ok(Requester::Client(common_name.map(str::to_string))),
        }
    }

    /// Root only, with auth enabled (membership changes, as etcd's
    /// `checkMembershipOperationPermission`).
    pub fn check_admin(&self, requester: &Requester) -> Result<(), ServerError> {
        Ok(self.auth.lock().unwrap().check_admin(requester)?)
    }

    /// Root only, answered as etcd 3.4's maintenance RPCs do (`auth: permission denied`).
    pub fn check_maintenance(&self, requester: &Requester) -> Result<(), ServerError> {
        self.auth
            .lock()
            .unwrap()
            .check_admin(requester)
            .map_err(ServerError::AuthUntranslated)
    }

    /// Whether `requester` may read every key of (key, range_end) now (watches).
    pub fn check_read(
        &self,
        requester: &Requester,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), ServerError> {
        Ok(self
            .auth
            .lock()
            .unwrap()
            .check(requester, Access::Read, key, range_end)?)
    }

    /// Checks a user's password and, through raft, gives it a simple token every member knows.
    pub async fn authenticate(
        &self,
        name: &str,
        password: &str,
    ) -> Result<(String, ResponseHeader), ServerError> {
        let (credentials, revision) = {
            let auth = self.auth.lock().unwrap();
            if !auth.is_enabled() {
                return Err(AuthError::AuthNotEnabled.into());
            }
            (auth.credentials(name), auth.revision())
        };
        // bcrypt is slow by design: never under the lock.
        let verified = match credentials {
            Some(Credentials::Hash(hash)) => password::verify(password, &hash),
            Some(Credentials::NoPassword) | None => false,
        };
        if !verified {
            tracing::info!(user = name, "authentication failed");
            return Err(AuthError::AuthFailed.into());
        }
        if let Some(jwt) = &self.config.jwt {
            // Self-contained: every member with the keys accepts it, none needs to record it.
            let token = jwt.sign(name, revision, self.clock.wall_ms() / 1000);
            return Ok((token, self.current_header()));
        }
        let token_prefix = tokens::random_prefix(&mut *self.rng.lock().unwrap());
        let change = Change::Authenticate(AuthenticateToken {
            name: name.to_string(),
            token_prefix,
        });
        let token = self
            .propose_auth(&Requester::Client(None), change)
            .await?
            .expect("an applied Authenticate assigns a token");
        Ok((token, self.current_header()))
    }

    pub async fn user_add(
        &self,
        requester: &Requester,
        request: AuthUserAddRequest,
    ) -> Result<ResponseHeader, ServerError> {
        let no_password = request.options.is_some_and(|options| options.no_password);
        let hashed_password = if no_password {
            String::new()
        } else {
            self.hash_password(&request.password)
        };
        let change = Change::UserAdd(AuthUserAdd {
            name: request.name,
            hashed_password,
            no_password,
        });
        self.auth_change(requester, change).await
    }

    pub async fn user_change_password(
        &self,
        requester: &Requester,
        request: AuthUserChangePasswordRequest,
    ) -> Result<ResponseHeader, ServerError> {
        let change = Change::UserChangePassword(AuthUserChangePassword {
            hashed_password: self.hash_password(&request.password),
            name: request.name,
        });
        self.auth_change(requester, change).await
    }

    /// Proposes a change of the auth store made by `requester` (root, once auth is enabled).
    pub async fn auth_change(
        &self,
        requester: &Requester,
        change: Change,
    ) -> Result<ResponseHeader, ServerError> {
        self.propose_auth(requester, change).await?;
        Ok(self.current_header())
    }

    /// Reads the auth store at a linearizable point.
    pub async fn auth_read<T>(
        &self,
        read: impl FnOnce(&AuthStore) -> Result<T, AuthError>,
    ) -> Result<(T, ResponseHeader), ServerError> {
        self.proposer.linearizable_read_barrier().await?;
        let answer = read(&self.auth.lock().unwrap())?;
        Ok((answer, self.current_header()))
    }

    fn current_header(&self) -> ResponseHeader {
        self.headers.current()
    }

    fn hash_password(&self, password: &str) -> String {
        let salt: password::Salt = rand::Rng::random(&mut *self.rng.lock().unwrap());
        password::hash(password, self.config.bcrypt_cost, salt)
    }

    async fn propose_auth(
        &self,
        requester: &Requester,
        change: Change,
    ) -> Result<Option<String>, ServerError> {
        let request = raft_request::Request::AuthChange(AuthChange {
            change: Some(change),
        });
        let applied: AuthApplied = self.proposer.propose(requester, request).await?;
        Ok(applied.token)
    }
}
