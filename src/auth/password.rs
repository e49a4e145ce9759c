//! Password hashes: bcrypt at etcd's cost (Go's `bcrypt.DefaultCost`, 10), salted from the
//! server's seeded RNG so that no OS randomness is read outside the seams. The hash is computed
//! once, by the member that receives the request, and only the hash enters the raft log.

/// etcd's bcrypt cost.
pub const BCRYPT_COST_DEFAULT: u32 = 10;

/// The costs bcrypt accepts (Go's `bcrypt.MinCost`, `MaxCost`).
pub const BCRYPT_COST_MIN: u32 = 4;
pub const BCRYPT_COST_MAX: u32 = 31;

/// A bcrypt salt.
pub type Salt = [u8; 16];

pub fn hash(password: &str, cost: u32, salt: Salt) -> String {
    bcrypt::hash_with_salt(password, cost, salt)
        .expect("the cost is validated at start-up")
        .format_for_version(bcrypt::Version::TwoA)
}

/// Whether `password` matches `hash`; an unreadable hash matches nothing.
pub fn verify(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hashed = hash("secret", 4, [7; 16]);
        assert!(hashed.starts_with("$2a$04$"));
        assert!(!hashed.contains("secret"));
        assert!(verify("secret", &hashed));
        assert!(!verify("Secret", &hashed));
        assert!(!verify("secret", "not a hash"));
        assert_ne!(
            hashed,
            hash("secret", 4, [8; 16]),
            "each salt hashes differently"
        );
    }
}
