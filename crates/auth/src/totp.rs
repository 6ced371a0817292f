//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps) and recovery codes.
//!
//! A code is accepted in the current step or one step either side (clock skew), and only in
//! a step later than the last one accepted for that user, so an observed code cannot be
//! replayed. Recovery codes carry 80 random bits each and are stored as SHA-256 hashes.

use rand::Rng;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};
use zeroize::Zeroizing;

pub const STEP_SECS: u64 = 30;
pub const RECOVERY_CODE_COUNT: usize = 10;
const SECRET_BYTES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("invalid TOTP secret: {0}")]
    Secret(String),
}

/// A fresh random secret (160 bits, as RFC 4226 recommends).
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
    rand::rngs::OsRng.fill(bytes.as_mut_slice());
    bytes
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<TOTP, TotpError> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECS,
        secret.to_vec(),
        Some(issuer.to_string()),
        account.to_string(),
    )
    .map_err(|e| TotpError::Secret(e.to_string()))
}

/// The base32 secret and the `otpauth://` URI an authenticator app scans.
pub fn provisioning(
    secret: &[u8],
    issuer: &str,
    account: &str,
) -> Result<(String, String), TotpError> {
    let t = totp(secret, issuer, account)?;
    let b32 = Secret::Raw(secret.to_vec()).to_encoded().to_string();
    Ok((b32, t.get_url()))
}

/// The time step `code` is valid in, if any, within ±1 step of `now_secs` and after
/// `last_step`. The caller stores the returned step as the new `last_step`.
pub fn verify(secret: &[u8], code: &str, now_secs: u64, last_step: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "bastion", "user").ok()?;
    let current = (now_secs / STEP_SECS) as i64;
    let mut matched = None;
    // Every candidate is computed and compared, so timing does not say which step matched.
    for step in [current - 1, current, current + 1] {
        if step < 0 {
            continue;
        }
        let expected = t.generate(step as u64 * STEP_SECS);
        let same: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if same && last_step.is_none_or(|last| step > last) {
            matched = Some(step);
        }
    }
    matched
}

/// The code for a given time: for tests and for a CLI that shows the current code.
pub fn code_at(secret: &[u8], now_secs: u64) -> Result<String, TotpError> {
    Ok(totp(secret, "bastion", "user")?.generate(now_secs))
}

const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789"; // 31 symbols, no look-alikes

/// Ten fresh recovery codes, `xxxx-xxxx-xxxx-xxxx` (16 symbols of 31: ~79 bits each).
pub fn new_recovery_codes() -> Vec<Zeroizing<String>> {
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let mut s = Zeroizing::new(String::with_capacity(19));
            for i in 0..16 {
                if i > 0 && i % 4 == 0 {
                    s.push('-');
                }
                s.push(RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char);
            }
            s
        })
        .collect()
}

/// The stored form of a recovery code: its hash after normalising what people type
/// (case, spaces, dashes).
pub fn recovery_code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    crate::tokens::token_hash(&format!("recovery:{normal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_verify_within_one_step_of_skew_only() {
        let s = new_secret();
        let now = 1_800_000_015u64;
        let step = (now / STEP_SECS) as i64;
        for (offset, ok) in [
            (-60i64, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let code = code_at(&s, (now as i64 + offset) as u64).unwrap();
            assert_eq!(
                verify(&s, &code, now, None).is_some(),
                ok,
                "offset {offset}"
            );
        }
        let code = code_at(&s, now).unwrap();
        assert_eq!(verify(&s, &code, now, None), Some(step));
    }

    #[test]
    fn a_code_is_single_use() {
        let s = new_secret();
        let now = 1_800_000_000u64;
        let code = code_at(&s, now).unwrap();
        let step = verify(&s, &code, now, None).unwrap();
        assert_eq!(verify(&s, &code, now, Some(step)), None);
        // An older step's code is refused once a newer one was used.
        let previous = code_at(&s, now - STEP_SECS).unwrap();
        assert_eq!(verify(&s, &previous, now, Some(step)), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let s = new_secret();
        for bad in ["", "12345", "1234567", "abcdef", "12 456"] {
            assert_eq!(verify(&s, bad, 1_800_000_000, None), None);
        }
    }

    #[test]
    fn provisioning_uri_names_issuer_and_account() {
        let s = new_secret();
        let (b32, uri) = provisioning(&s, "bastion", "ada@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/"));
        assert!(uri.contains(&b32));
        assert!(uri.contains("issuer=bastion"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_as_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        let mut set = std::collections::HashSet::new();
        for c in &codes {
            assert_eq!(c.len(), 19);
            assert!(set.insert(c.to_string()));
        }
        let c = codes[0].to_string();
        assert_eq!(
            recovery_code_hash(&c),
            recovery_code_hash(&c.to_uppercase().replace('-', " "))
        );
    }
}
