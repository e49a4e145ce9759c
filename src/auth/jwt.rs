//! `--auth-token jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…` (etcd's `tokenJWT`): tokens that
//! carry their own claims (`username`, `revision`, `exp`, as etcd's), signed with the member's
//! private key and verified with its public key, so any member with the same keys accepts them
//! and none has to remember them. Expiry is checked against the clock seam's wall time, never
//! the host's (the crate's own exp check is off).

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// etcd's default JWT lifetime.
pub const TTL_DEFAULT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// The parsed `--auth-token jwt,...` option, keys read and checked.
#[derive(Clone)]
pub struct JwtTokens {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("JwtTokens")
            .field("algorithm", &self.algorithm)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtTokens {
    /// Parses the options after `jwt,` (etcd's names: `pub-key`, `priv-key`, `sign-method`,
    /// `ttl`), reading the key files; `parse_ttl` reads a Go duration.
    pub fn from_options(
        options: &str,
        parse_ttl: impl Fn(&str) -> Option<Duration>,
    ) -> Result<JwtTokens, String> {
        let (mut public, mut private, mut method, mut ttl) = (None, None, None, TTL_DEFAULT);
        for option in options.split(',').filter(|option| !option.is_empty()) {
            let (name, value) = option
                .split_once('=')
                .ok_or_else(|| format!("option {option:?} is not name=value"))?;
            match name {
                "pub-key" => public = Some(value),
                "priv-key" => private = Some(value),
                "sign-method" => method = Some(value),
                "ttl" => {
                    ttl = parse_ttl(value)
                        .filter(|ttl| !ttl.is_zero())
                        .ok_or_else(|| format!("invalid ttl {value:?}"))?
                }
                other => return Err(format!("unknown jwt option {other:?}")),
            }
        }
        let method = method.ok_or("sign-method is required")?;
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| format!("unknown sign-method {method:?}"))?;
        let read = |what: &str, path: Option<&str>| {
            let path = path.ok_or_else(|| format!("{what} is required"))?;
            std::fs::read(Path::new(path)).map_err(|e| format!("cannot read {what} {path}: {e}"))
        };
        let (public, private) = (read("pub-key", public)?, read("priv-key", private)?);
        let keys = match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(&private)
                .and_then(|e| Ok((e, DecodingKey::from_rsa_pem(&public)?))),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&private)
                .and_then(|e| Ok((e, DecodingKey::from_ec_pem(&public)?))),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&private)
                .and_then(|e| Ok((e, DecodingKey::from_ed_pem(&public)?))),
            other => {
                return Err(format!(
                    "sign-method {other:?} needs a shared secret, which detcd does not take"
                ))
            }
        };
        let (encoding, decoding) = keys.map_err(|e| format!("bad {method} key: {e}"))?;
        Ok(JwtTokens {
            algorithm,
            encoding,
            decoding,
            ttl,
        })
    }

    /// A token for `username`, at auth revision `revision`, valid for the TTL from `now_secs`
    /// (Unix seconds by the clock seam).
    pub fn sign(&self, username: &str, revision: u64, now_secs: u64) -> String {
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp: now_secs + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.encoding)
            .expect("keys were checked at start-up")
    }

    /// The user a token names, if its signature holds and it has not expired by `now_secs`.
    pub fn user_of(&self, token: &str, now_secs: u64) -> Option<String> {
        let mut validation = Validation::new(self.algorithm);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        (claims.exp > now_secs).then_some(claims.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/auth/testdata");

    fn es256(public: &str, ttl: &str) -> Result<JwtTokens, String> {
        let options =
            format!("pub-key={DIR}/{public},priv-key={DIR}/es256.key,sign-method=ES256,ttl={ttl}");
        JwtTokens::from_options(&options, |ttl| {
            ttl.strip_suffix('s')?.parse().ok().map(Duration::from_secs)
        })
    }

    #[test]
    fn a_token_names_its_user_until_it_expires() {
        let tokens = es256("es256.pub", "60s").unwrap();
        let token = tokens.sign("alice", 3, 1_000);
        assert_eq!(tokens.user_of(&token, 1_059).as_deref(), Some("alice"));
        assert_eq!(tokens.user_of(&token, 1_060), None);
    }

    #[test]
    fn a_forged_or_foreign_token_names_nobody() {
        let tokens = es256("es256.pub", "60s").unwrap();
        let token = tokens.sign("alice", 3, 1_000);
        let mut forged = token.clone();
        forged.insert(forged.find('.').unwrap() + 2, 'x');
        assert_eq!(tokens.user_of(&forged, 1_001), None);
        let other = es256("es256-other.pub", "60s").unwrap();
        assert_eq!(other.user_of(&token, 1_001), None);
        assert_eq!(tokens.user_of("not.a.token", 1_001), None);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(es256("missing.pub", "60s")
            .unwrap_err()
            .contains("cannot read pub-key"));
        assert!(es256("es256.pub", "0s")
            .unwrap_err()
            .contains("invalid ttl"));
        let no_method = JwtTokens::from_options("pub-key=a,priv-key=b", |_| None);
        assert!(no_method.unwrap_err().contains("sign-method is required"));
        let unknown = JwtTokens::from_options("sign-method=XY1", |_| None);
        assert!(unknown.unwrap_err().contains("unknown sign-method"));
    }
}
