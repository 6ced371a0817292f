//! Sealing small secrets at rest (TOTP secrets): AES-256-GCM with a random 96-bit nonce and
//! associated data naming the record, so a sealed value copied to another row does not
//! open. Format: `v1.` + base64url(nonce ‖ ciphertext ‖ tag).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use zeroize::Zeroizing;

const VERSION: &str = "v1.";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open with this key for this record")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// The associated data of a user's TOTP secret: it binds the sealed value to the user.
pub fn totp_aad(user: bastion_core::UserId) -> String {
    format!("totp:{user}")
}

pub fn seal(key: &[u8; 32], aad: &str, plaintext: &[u8]) -> Result<String, SealError> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| SealError::Seal)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(out)))
}

/// `sealed` opened with the first of `keys` that opens it (the current key, then older
/// ones during a master key rotation); the last key's error when none does.
pub fn open_with_any<'a>(
    keys: impl IntoIterator<Item = &'a [u8; 32]>,
    aad: &str,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let mut last = SealError::Open;
    for key in keys {
        match open(key, aad, sealed) {
            Ok(secret) => return Ok(secret),
            Err(e) => last = e,
        }
    }
    Err(last)
}

pub fn open(key: &[u8; 32], aad: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let body = sealed.strip_prefix(VERSION).ok_or(SealError::Malformed)?;
    let raw = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SealError::Malformed)?;
    if raw.len() < 12 + 16 {
        return Err(SealError::Malformed);
    }
    let (nonce, ct) = raw.split_at(12);
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_and_record() {
        let k = [5u8; 32];
        let s = seal(&k, "user:a", b"secret").unwrap();
        assert_eq!(open(&k, "user:a", &s).unwrap().as_slice(), b"secret");
        assert_eq!(open(&k, "user:b", &s), Err(SealError::Open));
        assert_eq!(open(&[6u8; 32], "user:a", &s), Err(SealError::Open));
        let mut tampered = s.clone();
        tampered.pop();
        tampered.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert!(open(&k, "user:a", &tampered).is_err());
        assert_ne!(seal(&k, "user:a", b"secret").unwrap(), s, "nonces differ");
    }
}
