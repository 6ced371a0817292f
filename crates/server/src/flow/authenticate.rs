//! Step 2: authenticate. The principal is a user with an access token, sent either as
//! `Authorization: Bearer` (API clients) or in the `__Host-bastion_at` cookie (browsers), or
//! a program with an assistant API key (`Authorization: Bearer bst_…`). The header wins when
//! both are present. An API key is found by its hash; a revoked or expired one is a 401. A cookie-borne token on a state-changing request must
//! come with the session's CSRF token. The token's session must still be live: revoking a
//! session ends its access tokens within the directory's cache TTL, well inside their own
//! lifetime.
//!
//! No token is anonymous; a bad token is a 401 on any route that needs a principal (and
//! ignored on public ones).

use crate::error::ApiError;
use crate::flow::{Authenticated, Caller};
use crate::sessions;
use crate::state::AppState;
use axum::http::{header, HeaderMap, Method};
use bastion_auth::tokens;
use bastion_core::{Access, SessionId};
use std::sync::Arc;

/// What every assistant API key starts with, so a key is told from a JWT at a glance (and
/// secret scanners can find leaked ones).
pub const API_KEY_PREFIX: &str = "bst_";

pub async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    access: Access,
) -> Result<Option<Authenticated>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let (token, via_cookie) = match bearer {
        Some(t) => (t.trim(), false),
        None => match sessions::cookie(headers, sessions::ACCESS_COOKIE) {
            Some(t) if !t.is_empty() => (t, true),
            _ => return Ok(None),
        },
    };
    let verified = if !via_cookie && token.starts_with(API_KEY_PREFIX) {
        verify_key(state, token).await.map(Authenticated::Key)
    } else {
        verify(state, token, via_cookie)
            .await
            .map(Authenticated::User)
    };
    match verified {
        Ok(Authenticated::User(c)) => {
            if via_cookie && !is_safe(method) && !sessions::csrf_ok(state, c.session, headers) {
                metrics::counter!("bastion_auth_failures_total", "reason" => "csrf").increment(1);
                return Err(ApiError::Csrf);
            }
            Ok(Some(Authenticated::User(c)))
        }
        Ok(key) => Ok(Some(key)),
        Err(_) if access == Access::Public => Ok(None),
        Err(e) => Err(e),
    }
}

async fn verify_key(
    state: &AppState,
    token: &str,
) -> Result<Arc<bastion_store::KeyGrant>, ApiError> {
    let grant = state
        .directory
        .api_key(&tokens::token_hash(token))
        .await?
        .ok_or_else(|| refuse("unknown_key"))?;
    if grant.key().is_expired(bastion_store::now_ms()) {
        return Err(refuse("key_expired"));
    }
    Ok(grant)
}

/// Methods that change nothing, so a forged cross-site request can do no harm with them.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn refuse(reason: &'static str) -> ApiError {
    metrics::counter!("bastion_auth_failures_total", "reason" => reason).increment(1);
    ApiError::Unauthenticated
}

async fn verify(state: &AppState, token: &str, via_cookie: bool) -> Result<Caller, ApiError> {
    let verified = state.tokens.verify(token).map_err(|e| refuse(e.reason()))?;
    let session: SessionId = verified.session.parse().map_err(|_| refuse("malformed"))?;
    let live = state
        .directory
        .session(session)
        .await?
        .filter(|s| s.user_id == verified.user && s.is_live(bastion_store::now_ms()));
    if live.is_none() {
        return Err(refuse("session_ended"));
    }
    // A token outlives nothing: a deleted user's tokens stop working at once.
    let user = state
        .directory
        .user(verified.user)
        .await?
        .ok_or_else(|| refuse("unknown_user"))?;
    Ok(Caller {
        amr: verified.amr,
        user,
        session,
        via_cookie,
        scope: verified.scope,
    })
}
