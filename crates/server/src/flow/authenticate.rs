//! Step 2: authenticate. This issue knows one principal: a user with an access token in
//! `Authorization: Bearer`. No token is anonymous; a bad token is a 401 on any route that
//! needs a principal (and ignored on public ones).

use crate::error::ApiError;
use crate::flow::Caller;
use crate::state::AppState;
use axum::http::{header, HeaderMap};
use bastion_core::Access;

pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    access: Access,
) -> Result<Option<Caller>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let Some(token) = bearer else {
        return Ok(None);
    };
    let caller = verify(state, token.trim()).await;
    match caller {
        Ok(c) => Ok(Some(c)),
        Err(_) if access == Access::Public => Ok(None),
        Err(e) => Err(e),
    }
}

async fn verify(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let user_id = state.tokens.verify(token).map_err(|e| {
        metrics::counter!("bastion_auth_failures_total", "reason" => e.reason()).increment(1);
        ApiError::Unauthenticated
    })?;
    // A token outlives nothing: a deleted user's tokens stop working at once.
    let user = state.directory.user(user_id).await?.ok_or_else(|| {
        metrics::counter!("bastion_auth_failures_total", "reason" => "unknown_user").increment(1);
        ApiError::Unauthenticated
    })?;
    Ok(Caller { user })
}
