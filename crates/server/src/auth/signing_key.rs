//! The HS256 key that signs access tokens: 32 random bytes, hex, in a 0600 file that
//! `init`/`serve` create when missing. Every node of a deployment must share it.

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
    #[error("signing key {0} must hold 64 hexadecimal characters (32 bytes)")]
    Malformed(PathBuf),
}

/// Loads the key at `path`, creating it (mode 0600) when it does not exist.
pub fn load_or_create(path: &Path) -> Result<Zeroizing<Vec<u8>>, SigningKeyError> {
    if !path.exists() {
        create(path)?;
    }
    check_permissions(path)?;
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| SigningKeyError::Read {
                path: path.to_path_buf(),
                source,
            })?,
        );
    let bytes =
        hex::decode(text.trim()).map_err(|_| SigningKeyError::Malformed(path.to_path_buf()))?;
    if bytes.len() != 32 {
        return Err(SigningKeyError::Malformed(path.to_path_buf()));
    }
    Ok(Zeroizing::new(bytes))
}

fn create(path: &Path) -> Result<(), SigningKeyError> {
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
    f.write_all(Zeroizing::new(hex::encode(key.as_ref())).as_bytes())
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
