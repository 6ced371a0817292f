//! The signed-in user's sessions: refresh-token rotation, sign-out (this session or
//! everywhere), the list of sign-ins, and password change (which ends the other sessions).

use crate::error::{ApiError, ApiResult};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::{Caller, ItemParam, Meta};
use crate::json::ApiJson;
use crate::routes::views::{PasswordChangeRequest, RefreshRequest, SessionMode, SessionView};
use crate::sessions;
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bastion_auth::{password, tokens};
use bastion_core::SessionId;
use bastion_store::audit::PLATFORM_CHAIN;
use bastion_store::sessions::{reason, Rotation};
use secrecy::SecretString;
use serde_json::json;

/// Trades a refresh token for a new access token and its successor refresh token. A refresh
/// token works once: presenting a spent one ends its whole session and is audited.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = crate::routes::views::TokenResponse), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Response> {
    let (token, mode) = match req.refresh_token.filter(|t| !t.is_empty()) {
        Some(t) => (t, req.mode),
        None => {
            let t = sessions::cookie(&headers, sessions::REFRESH_COOKIE)
                .filter(|t| !t.is_empty())
                .ok_or(ApiError::Unauthenticated)?
                .to_string();
            (t, SessionMode::Cookie)
        }
    };
    let old_hash = tokens::token_hash(&token);
    if mode == SessionMode::Cookie {
        // A cookie is sent by the browser on its own, so the request must also prove it
        // comes from our page: the CSRF token of the session the cookie belongs to.
        let owner = state.store.sessions().session_of_token(&old_hash).await?;
        if !owner.is_some_and(|s| sessions::csrf_ok(&state, s, &headers)) {
            return Err(ApiError::Csrf);
        }
    }
    let new_token = tokens::random_token("bsr_");
    let rotation = state
        .store
        .sessions()
        .rotate(
            &old_hash,
            &tokens::token_hash(&new_token),
            state.settings.refresh_idle_ttl_secs as i64 * 1000,
        )
        .await?;
    match rotation {
        Rotation::Rotated(session) => {
            let issued = sessions::issue(&state, session, new_token)?;
            Ok(sessions::respond(&state, issued, mode).into_response())
        }
        Rotation::Reused(session) => {
            state.directory.forget_session(session.id);
            metrics::counter!("bastion_auth_failures_total", "reason" => "refresh_reuse")
                .increment(1);
            state
                .audit(events::event(
                    PLATFORM_CHAIN,
                    format!("user:{}", session.user_id),
                    &meta,
                    "auth.refresh.reuse",
                    session.id,
                    FAILURE,
                    json!({"revoked": "session"}),
                ))
                .await;
            Err(ApiError::Unauthenticated)
        }
        Rotation::Ended(_) | Rotation::Unknown => {
            metrics::counter!("bastion_auth_failures_total", "reason" => "refresh_invalid")
                .increment(1);
            Err(ApiError::Unauthenticated)
        }
    }
}

fn cleared() -> HeaderMap {
    let mut h = HeaderMap::new();
    for c in sessions::clear_cookies() {
        h.append(header::SET_COOKIE, c);
    }
    h
}

async fn audit(
    state: &AppState,
    caller: &Caller,
    meta: &Meta,
    action: &str,
    target: impl ToString,
    detail: serde_json::Value,
) {
    state
        .audit(events::event(
            PLATFORM_CHAIN,
            events::actor(caller.principal()),
            meta,
            action,
            target,
            SUCCESS,
            detail,
        ))
        .await;
}

/// Ends the session of the token making the request (and clears its cookies).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
) -> ApiResult<(StatusCode, HeaderMap)> {
    state
        .store
        .sessions()
        .revoke(caller.user.id, caller.session, reason::LOGOUT)
        .await
        .or_else(|e| match e {
            bastion_store::StoreError::NotFound => Ok(()),
            e => Err(e),
        })?;
    state.directory.forget_session(caller.session);
    audit(
        &state,
        &caller,
        &meta,
        "auth.logout",
        caller.session,
        json!({}),
    )
    .await;
    Ok((StatusCode::NO_CONTENT, cleared()))
}

/// The user's live sessions (sign-ins), newest first.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [SessionView]), (status = 401, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SessionView>>> {
    let list = state.store.sessions().list_live(caller.user.id).await?;
    Ok(Json(
        list.iter()
            .map(|s| SessionView::new(s, s.id == caller.session))
            .collect(),
    ))
}

/// Ends one of the user's sessions: its refresh token at once, its access tokens within
/// seconds. Another user's session id answers 404.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{session_id}", tag = "auth", security(("bearer" = [])),
    params(("session_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ItemParam(id): ItemParam<SessionId>,
) -> ApiResult<Response> {
    state
        .store
        .sessions()
        .revoke(caller.user.id, id, reason::REVOKED)
        .await?;
    state.directory.forget_session(id);
    audit(&state, &caller, &meta, "auth.session.revoke", id, json!({})).await;
    if id == caller.session {
        return Ok((StatusCode::NO_CONTENT, cleared()).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Signs out everywhere: ends every session of the user, this one included.
#[utoipa::path(delete, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::Problem)))]
pub async fn revoke_all(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
) -> ApiResult<(StatusCode, HeaderMap)> {
    let n =
        crate::sessions::end_all(&state, caller.user.id, None, reason::SIGN_OUT_EVERYWHERE).await?;
    audit(
        &state,
        &caller,
        &meta,
        "auth.sign_out_everywhere",
        &caller.user.email,
        json!({"sessions": n}),
    )
    .await;
    Ok((StatusCode::NO_CONTENT, cleared()))
}

/// Changes the password. Every other session ends; this one stays signed in.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChangeRequest,
    responses((status = 204), (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ApiJson(req): ApiJson<PasswordChangeRequest>,
) -> ApiResult<StatusCode> {
    let attempt = crate::attempts::Attempt::password(&caller.user.email, &meta);
    state.attempts.check(&attempt).await?;
    let ok =
        crate::credentials::current_password_matches(&state, caller.user.id, req.current_password)
            .await?;
    if !ok {
        state.attempts.failed(&attempt).await?;
        state
            .audit(events::event(
                PLATFORM_CHAIN,
                events::actor(caller.principal()),
                &meta,
                "auth.password.change",
                &caller.user.email,
                FAILURE,
                json!({}),
            ))
            .await;
        return Err(ApiError::Forbidden("the current password is wrong".into()));
    }
    state.attempts.succeeded(&attempt).await;
    validate::new_password(&req.new_password, &caller.user.email)?;
    let hash = password::hash(SecretString::from(req.new_password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .users()
        .set_password(caller.user.id, &hash)
        .await?;
    let ended = crate::sessions::end_all(
        &state,
        caller.user.id,
        Some(caller.session),
        reason::PASSWORD_CHANGED,
    )
    .await?;
    audit(
        &state,
        &caller,
        &meta,
        "auth.password.change",
        &caller.user.email,
        json!({"sessions_ended": ended}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
