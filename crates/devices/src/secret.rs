//! What a device holds: the secret issued at its first contact (its identity from then on)
//! and the token of its channels once bound. Both are 256 random bits, shown once and
//! stored as a SHA-256 digest (with that much entropy a slow hash adds nothing).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of a device secret (its identity after first contact).
pub const SECRET_PREFIX: &str = "bds_";
/// Prefix of a device token (its channels' credential once bound).
pub const TOKEN_PREFIX: &str = "bdt_";

fn random(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new device secret.
pub fn new_secret() -> String {
    random(SECRET_PREFIX)
}

/// A new device token.
pub fn new_token() -> String {
    random(TOKEN_PREFIX)
}

/// The stored form of a secret, a token or a Client-Id.
pub fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Whether `value` is the one whose digest is `stored`, compared in constant time.
pub fn matches(value: &str, stored: &str) -> bool {
    let d = digest(value);
    d.as_bytes().ct_eq(stored.as_bytes()).into()
}

/// The last four characters, for lists that name a token without showing it.
pub fn last4(value: &str) -> String {
    let n = value.chars().count();
    value.chars().skip(n.saturating_sub(4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_match_only_their_digest() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.starts_with(SECRET_PREFIX) && new_token().starts_with(TOKEN_PREFIX));
        assert_ne!(a, b);
        assert_eq!(a.len(), SECRET_PREFIX.len() + 43);
        let stored = digest(&a);
        assert!(matches(&a, &stored));
        assert!(!matches(&b, &stored));
        assert!(!matches("", &stored));
        assert_eq!(last4("bdt_abcdef"), "cdef");
    }
}
