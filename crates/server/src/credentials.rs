//! Password checks on the request path: sign-in, and the re-authentication that sensitive
//! account changes (password change, removing MFA) ask for.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use bastion_auth::password;
use bastion_core::UserId;
use secrecy::SecretString;

/// Whether `password` matches `stored`. With no stored hash (no such user, or an account
/// that signs in only through OAuth) it still hashes, against a dummy, so the answer takes
/// the same time either way.
pub async fn password_matches(password: String, stored: Option<String>) -> ApiResult<bool> {
    password::verify(SecretString::from(password), stored)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Whether `password` is the current password of the signed-in `user`.
pub async fn current_password_matches(
    state: &AppState,
    user: UserId,
    password: String,
) -> ApiResult<bool> {
    let stored = state.store.users().password_hash(user).await?;
    password_matches(password, stored).await
}
