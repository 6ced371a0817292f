//! argon2id password hashing. Hashing is deliberately slow, so it runs on the blocking pool.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task failed")]
    Join,
}

pub fn hash_blocking(password: &SecretString) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

pub async fn hash(password: SecretString) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|_| PasswordError::Join)?
}

/// Verifies `password` against `stored`, or against a dummy hash when there is no user, so
/// that an unknown email costs as much time as a wrong password.
pub async fn verify(password: SecretString, stored: Option<String>) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = match stored {
            Some(s) => s,
            None => dummy_hash().to_string(),
        };
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return Ok(false);
        };
        let ok = Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await
    .map_err(|_| PasswordError::Join)?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = SecretString::from(crate::tokens::random_token(""));
        hash_blocking(&random).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn right_password_verifies_wrong_does_not() {
        let h = hash(SecretString::from("correct horse battery"))
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify(SecretString::from("correct horse battery"), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify(SecretString::from("wrong"), Some(h)).await.unwrap());
        assert!(!verify(SecretString::from("anything"), None).await.unwrap());
    }
}
