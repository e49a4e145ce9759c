//! etcd's simple tokens (`--auth-token simple`): `<16 random letters>.<raft index>`, recorded on
//! every member as the Authenticate entry applies, kept in memory only (a restart forgets them, as
//! etcd's do), and dropped after `--auth-token-ttl` without use. Time is the clock seam's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Letters of a token prefix (etcd's `letters`).
const PREFIX_LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Length of a token's random prefix (etcd's `defaultSimpleTokenLength`).
pub const PREFIX_LEN: usize = 16;

/// A random token prefix drawn from `rng` (the server's seeded RNG).
pub fn random_prefix(rng: &mut impl rand::Rng) -> String {
    (0..PREFIX_LEN)
        .map(|_| PREFIX_LETTERS[rng.random_range(0..PREFIX_LETTERS.len())] as char)
        .collect()
}

#[derive(Debug)]
struct Assigned {
    user: String,
    expires_at: Instant,
}

#[derive(Debug, Default)]
pub struct SimpleTokens {
    by_token: BTreeMap<String, Assigned>,
}

impl SimpleTokens {
    pub fn assign(&mut self, token: String, user: String, now: Instant, ttl: Duration) {
        self.drop_expired(now);
        self.by_token.insert(
            token,
            Assigned {
                user,
                expires_at: now + ttl,
            },
        );
    }

    /// The user a live token names; each use keeps it alive for another `ttl` (etcd resets a
    /// simple token's timer on every request).
    pub fn user_of(&mut self, token: &str, now: Instant, ttl: Duration) -> Option<String> {
        let assigned = self.by_token.get_mut(token)?;
        if assigned.expires_at <= now {
            self.by_token.remove(token);
            return None;
        }
        assigned.expires_at = now + ttl;
        Some(assigned.user.clone())
    }

    /// A deleted user, or one whose password changed, loses its tokens.
    pub fn invalidate_user(&mut self, user: &str) {
        self.by_token.retain(|_, assigned| assigned.user != user);
    }

    pub fn clear(&mut self) {
        self.by_token.clear();
    }

    fn drop_expired(&mut self, now: Instant) {
        self.by_token
            .retain(|_, assigned| assigned.expires_at > now);
    }
}
