//! Key files: 32 random bytes in a 0600 file that `init`/`serve` create when missing. The
//! HS256 key that signs access tokens is hex; the master key (from which the keys that seal
//! secrets, sign CSRF tokens and OAuth state are derived) is base64. Every node of a
//! deployment must share both.

use base64::Engine;
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read signing key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create signing key {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key {0} is readable by other users (chmod 600 it)")]
    Permissions(PathBuf),
    #[error("key file {0} must hold exactly 32 bytes, encoded as its format says (64 hex characters for the signing key, base64 for the master key)")]
    Malformed(PathBuf),
    #[error("BASTION_MASTER_KEY must be 32 bytes in base64")]
    MalformedInline,
}

/// How a key file spells its 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    Hex,
    Base64,
}

impl KeyEncoding {
    fn encode(self, bytes: &[u8]) -> String {
        match self {
            KeyEncoding::Hex => hex::encode(bytes),
            KeyEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            KeyEncoding::Hex => hex::decode(text).ok(),
            KeyEncoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        }
    }
}

/// The current signing key and retired ones that still verify.
pub struct SigningKeys {
    pub current: Zeroizing<Vec<u8>>,
    pub retired: Vec<Zeroizing<Vec<u8>>>,
}

impl SigningKeys {
    /// Loads the current key (creating it when missing) and the retired ones (which must exist).
    pub fn load(current: &Path, retired: &[PathBuf]) -> Result<SigningKeys, SigningKeyError> {
        Ok(SigningKeys {
            current: load_or_create(current)?,
            retired: retired
                .iter()
                .map(|p| load_existing(p, KeyEncoding::Hex))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn retired_slices(&self) -> Vec<&[u8]> {
        self.retired.iter().map(|k| k.as_slice()).collect()
    }
}

/// The master key from `BASTION_MASTER_KEY` (base64) when given, else from its file,
/// created when missing.
pub fn load_master_key(
    inline: Option<&str>,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, SigningKeyError> {
    if let Some(text) = inline {
        let bytes = Zeroizing::new(
            KeyEncoding::Base64
                .decode(text.trim())
                .ok_or(SigningKeyError::MalformedInline)?,
        );
        if bytes.len() != 32 {
            return Err(SigningKeyError::MalformedInline);
        }
        return Ok(bytes);
    }
    load_or_create_as(path, KeyEncoding::Base64)
}

/// Loads an existing master key file (a previous key, a rotation's new key): never creates.
pub fn load_existing_master_key(path: &Path) -> Result<Zeroizing<Vec<u8>>, SigningKeyError> {
    load_existing(path, KeyEncoding::Base64)
}

/// Loads the signing key at `path`, creating it (mode 0600) when it does not exist.
pub fn load_or_create(path: &Path) -> Result<Zeroizing<Vec<u8>>, SigningKeyError> {
    load_or_create_as(path, KeyEncoding::Hex)
}

pub fn load_or_create_as(
    path: &Path,
    encoding: KeyEncoding,
) -> Result<Zeroizing<Vec<u8>>, SigningKeyError> {
    if !path.exists() {
        create(path, encoding)?;
    }
    load_existing(path, encoding)
}

fn load_existing(
    path: &Path,
    encoding: KeyEncoding,
) -> Result<Zeroizing<Vec<u8>>, SigningKeyError> {
    check_permissions(path)?;
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| SigningKeyError::Read {
                path: path.to_path_buf(),
                source,
            })?,
        );
    let bytes = encoding
        .decode(text.trim())
        .ok_or_else(|| SigningKeyError::Malformed(path.to_path_buf()))?;
    if bytes.len() != 32 {
        return Err(SigningKeyError::Malformed(path.to_path_buf()));
    }
    Ok(Zeroizing::new(bytes))
}

fn create(path: &Path, encoding: KeyEncoding) -> Result<(), SigningKeyError> {
    let err = |source| SigningKeyError::Create {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(Zeroizing::new(encoding.encode(key.as_ref())).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(err)
}

fn check_permissions(path: &Path) -> Result<(), SigningKeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| SigningKeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(SigningKeyError::Permissions(path.to_path_buf()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let a = load_or_create(&p).unwrap();
        let b = load_or_create(&p).unwrap();
        assert_eq!(a.as_slice(), b.as_slice());
    }

    #[test]
    fn the_master_key_is_base64_and_inline_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let a = load_master_key(None, &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .unwrap(),
            a.as_slice()
        );
        let inline = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert_eq!(
            load_master_key(Some(&inline), &p).unwrap().as_slice(),
            &[3u8; 32]
        );
        assert!(matches!(
            load_master_key(Some("c2hvcnQ="), &p),
            Err(SigningKeyError::MalformedInline)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        load_or_create(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&p),
            Err(SigningKeyError::Permissions(_))
        ));
    }
}
