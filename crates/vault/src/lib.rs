//! bastion's vault: secrets at rest (provider keys, MCP server tokens, channel credentials)
//! sealed with AES-256-GCM.
//!
//! - Each workspace has its own data key, derived with HKDF-SHA256 from the master key and a
//!   context naming the workspace and the format version, so one tenant's key opens nothing
//!   of another's.
//! - Each seal uses a fresh random 96-bit nonce.
//! - The associated data binds the ciphertext to its format version, master key id,
//!   workspace, record kind and record id: a sealed value copied into another tenant's row,
//!   or another record's, fails to open instead of decrypting.
//!
//! The sealed form is text, `v1.<master key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`, so
//! a column shows which master key sealed it and rotation can find what is left to re-wrap.
//! The master key id is the first 8 bytes of the key's SHA-256, in hex: it names the key
//! without revealing it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bastion_core::WorkspaceId;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// The version of the sealed format this code writes (and the only one it reads).
pub const FORMAT: &str = "v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("a master key must be 32 bytes")]
    KeyLength,
    #[error("not a sealed value of a known format")]
    Malformed,
    /// Sealed under a master key this vault does not hold (rotated away, or another
    /// deployment's).
    #[error("sealed under an unknown master key {0}")]
    UnknownKey(String),
    /// Tampered with, or bound to another workspace or record. Never garbage instead.
    #[error("the sealed value does not open here")]
    Decrypt,
}

/// The 32-byte master key. Neither `Debug` nor logs show more than its id.
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, VaultError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| VaultError::KeyLength)?;
        Ok(MasterKey {
            id: key_id(&key),
            key: Zeroizing::new(key),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The data key of one workspace.
    fn data_key(&self, workspace: WorkspaceId) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"bastion vault"), self.key.as_ref());
        let info = format!("bastion vault {FORMAT}|{workspace}");
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit, so expand cannot fail.
        if hk.expand(info.as_bytes(), out.as_mut()).is_err() {
            unreachable!("HKDF output length is fixed at 32 bytes");
        }
        out
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// The id of a master key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &[u8]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

/// The record a secret belongs to: what its ciphertext is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub workspace: WorkspaceId,
    /// What kind of record holds it (`provider_key`, `mcp_token`, …).
    pub kind: &'a str,
    /// The record's id.
    pub record: &'a str,
}

impl Binding<'_> {
    fn aad(&self, key_id: &str) -> String {
        format!(
            "bastion vault {FORMAT}|{key_id}|{}|{}|{}",
            self.workspace, self.kind, self.record
        )
    }
}

/// The parts of a sealed value.
struct Sealed<'a> {
    key_id: &'a str,
    payload: Vec<u8>,
}

fn parse(sealed: &str) -> Result<Sealed<'_>, VaultError> {
    let mut parts = sealed.splitn(3, '.');
    let (Some(FORMAT), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(VaultError::Malformed);
    };
    let payload = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| VaultError::Malformed)?;
    if key_id.len() != 16 || payload.len() < NONCE_LEN + TAG_LEN {
        return Err(VaultError::Malformed);
    }
    Ok(Sealed { key_id, payload })
}

/// Seals and opens secrets. Seals with the current master key; opens with it or any of the
/// previous ones (during a master key rotation).
pub struct Vault {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Vault {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Vault {
        Vault { current, previous }
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    fn key(&self, id: &str) -> Result<&MasterKey, VaultError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_string()))
    }

    pub fn seal(&self, at: &Binding<'_>, secret: &[u8]) -> Result<String, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        self.seal_with_nonce(at, secret, nonce)
    }

    fn seal_with_nonce(
        &self,
        at: &Binding<'_>,
        secret: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<String, VaultError> {
        let key = &self.current;
        let cipher = Aes256Gcm::new_from_slice(key.data_key(at.workspace).as_ref())
            .map_err(|_| VaultError::KeyLength)?;
        let aad = at.aad(key.id());
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Decrypt)?;
        let mut payload = nonce.to_vec();
        payload.extend_from_slice(&ciphertext);
        Ok(format!(
            "{FORMAT}.{}.{}",
            key.id(),
            URL_SAFE_NO_PAD.encode(payload)
        ))
    }

    /// The secret, if `sealed` was sealed for exactly this binding by a key this vault holds
    /// and has not been changed since.
    pub fn open(&self, at: &Binding<'_>, sealed: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let parsed = parse(sealed)?;
        let key = self.key(parsed.key_id)?;
        let cipher = Aes256Gcm::new_from_slice(key.data_key(at.workspace).as_ref())
            .map_err(|_| VaultError::KeyLength)?;
        let (nonce, ciphertext) = parsed.payload.split_at(NONCE_LEN);
        let aad = at.aad(key.id());
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Decrypt)
    }

    /// Whether `sealed` is under the current master key (nothing to re-wrap).
    pub fn is_current(&self, sealed: &str) -> bool {
        parse(sealed).is_ok_and(|p| p.key_id == self.current.id())
    }

    /// `sealed` opened (with whichever key sealed it) and sealed again under the current key.
    pub fn rewrap(&self, at: &Binding<'_>, sealed: &str) -> Result<String, VaultError> {
        let secret = self.open(at, sealed)?;
        self.seal(at, &secret)
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("current", &self.current)
            .field("previous", &self.previous)
            .finish()
    }
}

#[cfg(test)]
mod tests;
