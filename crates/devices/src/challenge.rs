//! The answer of a device with a factory key to its activation challenge (xiaozhi
//! "Activation-Version: 2"): `hmac = hex(HMAC-SHA256(key, challenge))`, the key burned into
//! the device and registered with bastion by an admin. A device that sends an answer must
//! send a right one; an answer bastion has no key to check is not a right one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The HMAC a device with `key` gives for `challenge`, in lower-case hex.
pub fn answer(key: &[u8], challenge: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(challenge.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `hmac_hex` is the answer of `key` to `challenge` (compared in constant time).
pub fn verify(key: &[u8], challenge: &str, hmac_hex: &str) -> bool {
    let Ok(given) = hex::decode(hmac_hex.trim()) else {
        return false;
    };
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return false,
    };
    mac.update(challenge.as_bytes());
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_key_over_the_right_challenge_verifies() {
        let a = answer(b"factory key", "challenge-1");
        assert!(verify(b"factory key", "challenge-1", &a));
        assert!(verify(b"factory key", "challenge-1", &a.to_uppercase()));
        assert!(!verify(b"other key", "challenge-1", &a));
        assert!(!verify(b"factory key", "challenge-2", &a));
        assert!(!verify(b"factory key", "challenge-1", "zz"));
        assert!(!verify(b"factory key", "challenge-1", ""));
        assert!(!verify(b"factory key", "challenge-1", &a[..62]));
    }
}
