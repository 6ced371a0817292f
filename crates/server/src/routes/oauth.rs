//! OAuth/OIDC sign-in: `start` sends the browser to the provider, `callback` brings it back
//! signed in. See `bastion_auth::oauth` for the flow's cryptography and `crate::oauth` for
//! how an external identity becomes a user.
//!
//! The callback runs, in order: the signed `state` (MAC, expiry, provider of this path,
//! return path); the browser binding (the `__Host-bastion_oauth` cookie that `start` set,
//! so a code and state obtained elsewhere cannot sign this browser in); single use of the
//! state's nonce; the code exchange with the PKCE verifier and the ID token checks; the
//! user; the session. Every outcome leaves an audit event on the platform chain.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::Meta;
use crate::oauth::{resolve_user, Linked, NewUsers};
use crate::sessions;
use crate::settings::SignupMode;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bastion_auth::oauth::{Flow, OAuthError};
use bastion_store::audit::PLATFORM_CHAIN;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use utoipa::IntoParams;

/// Binds a sign-in to the browser that started it. `SameSite=Lax`, not `Strict`: the
/// callback is a top-level navigation coming from the provider's site.
pub const FLOW_COOKIE: &str = "__Host-bastion_oauth";

#[derive(Deserialize, IntoParams)]
pub struct StartQuery {
    /// Where to go once signed in: a path on this site (`/ui/…`), or a URL on an origin
    /// listed in `oauth_allowed_return_origins`. Default `/`.
    pub return_to: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` that `start` issued.
    pub state: Option<String>,
    /// Set by the provider instead of `code` when it refused (e.g. `access_denied`).
    pub error: Option<String>,
}

/// Starts an OAuth sign-in with `provider`: redirects (302) to the provider's authorization
/// endpoint with a signed `state`, PKCE (S256) and, for OpenID providers, a nonce.
#[utoipa::path(get, path = "/api/v1/auth/oauth/{provider}/start", tag = "auth",
    params(("provider" = String, Path, description = "a configured provider name"), StartQuery),
    responses((status = 302, description = "to the provider, with the browser-binding cookie set"),
        (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 502, body = crate::error::Problem)))]
pub async fn start(
    State(state): State<AppState>,
    meta: Meta,
    Path(provider): Path<String>,
    query: Result<Query<StartQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let started = match state.oauth.start(&provider, q.return_to.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            let e = ApiError::from(e);
            fail_start(&state, &meta, &provider, &e).await;
            return Err(e);
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, header_value(started.location.as_str())?);
    headers.insert(
        header::SET_COOKIE,
        flow_cookie(&started.browser_binding, state.oauth.state_ttl()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::FOUND, headers).into_response())
}

/// Completes an OAuth sign-in: verifies the state, the browser and the provider's answer,
/// finds or creates the user, starts a session in cookies and redirects (303) to the return
/// path. Any failure is a problem answer, and a state works once at most.
#[utoipa::path(get, path = "/api/v1/auth/oauth/{provider}/callback", tag = "auth",
    params(("provider" = String, Path, description = "a configured provider name"), CallbackQuery),
    responses((status = 303, description = "signed in: session cookies set, to the return path"),
        (status = 400, body = crate::error::Problem), (status = 401, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 502, body = crate::error::Problem),
        (status = 503, body = crate::error::Problem)))]
pub async fn callback(
    State(state): State<AppState>,
    meta: Meta,
    Path(provider): Path<String>,
    request_headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    // Whatever happens, this browser's pending sign-in is over.
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, flow_cookie("", Duration::ZERO));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match complete(&state, &meta, &provider, &request_headers, query).await {
        Ok((location, session_cookies)) => {
            for c in session_cookies {
                headers.append(header::SET_COOKIE, c);
            }
            headers.insert(header::LOCATION, location);
            (StatusCode::SEE_OTHER, headers).into_response()
        }
        Err(e) => (headers, e).into_response(),
    }
}

async fn complete(
    state: &AppState,
    meta: &Meta,
    provider: &str,
    request_headers: &HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> ApiResult<(HeaderValue, Vec<HeaderValue>)> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let cookie = sessions::cookie(request_headers, FLOW_COOKIE);
    let flow = match verify(state, provider, &q, cookie).await {
        Ok(flow) => flow,
        Err(e) => {
            fail(state, meta, provider, &e, json!({})).await;
            return Err(e);
        }
    };
    let identity = match state
        .oauth
        .finish(&flow, q.code.as_deref().unwrap_or(""))
        .await
    {
        Ok(i) => i,
        Err(e) => {
            let e = ApiError::from(e);
            fail(state, meta, provider, &e, json!({})).await;
            return Err(e);
        }
    };
    let new_users = match state.settings.signup {
        SignupMode::Open => NewUsers::Allowed,
        SignupMode::Invite | SignupMode::Closed => NewUsers::Refused,
    };
    let (user, linked) = match resolve_user(&state.store, &identity, new_users).await {
        Ok(found) => found,
        Err(e) => {
            fail(
                state,
                meta,
                provider,
                &e,
                json!({"subject": identity.subject}),
            )
            .await;
            return Err(e);
        }
    };
    let actor = format!("user:{}", user.id);
    if linked == Linked::NewUser {
        state
            .audit(events::event(
                PLATFORM_CHAIN,
                actor.clone(),
                meta,
                "auth.signup",
                &user.email,
                SUCCESS,
                json!({"method": "oauth", "provider": provider}),
            ))
            .await;
    }
    if linked != Linked::Known {
        state
            .audit(events::event(
                PLATFORM_CHAIN,
                actor.clone(),
                meta,
                "auth.oauth.link",
                &user.email,
                SUCCESS,
                json!({"provider": provider, "subject": identity.subject, "by": linked.as_str()}),
            ))
            .await;
    }
    let issued = sessions::start(state, &user, &format!("oauth:{provider}"), meta).await?;
    state
        .audit(events::event(
            PLATFORM_CHAIN,
            actor,
            meta,
            "auth.oauth.callback",
            &user.email,
            SUCCESS,
            json!({
                "provider": provider,
                "subject": identity.subject,
                "linked": linked.as_str(),
                "session": issued.session.id.to_string(),
            }),
        ))
        .await;
    let location = header_value(&flow.return_to)?;
    Ok((location, sessions::cookies(state, &issued)))
}

/// The checks before anything is sent to the provider.
async fn verify(
    state: &AppState,
    provider: &str,
    q: &CallbackQuery,
    cookie: Option<&str>,
) -> ApiResult<Flow> {
    let raw_state = q.state.as_deref().unwrap_or("");
    let flow = state.oauth.verify_state(provider, raw_state)?;
    if !state.oauth.browser_binding_matches(&flow, cookie) {
        return Err(OAuthError::BrowserMismatch.into());
    }
    // Spend the nonce before the code goes anywhere: a state works once, even when what
    // follows fails. The store remembers it for as long as the state could still verify.
    let ttl = Duration::from_secs(flow.ttl_secs(time::OffsetDateTime::now_utc().unix_timestamp()));
    let first = state
        .nonces
        .consume(&flow.nonce_id(), ttl)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "OAuth: the nonce store cannot answer");
            ApiError::Unavailable
        })?;
    if !first {
        return Err(OAuthError::Replayed.into());
    }
    if let Some(err) = &q.error {
        let err: String = err
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(OAuthError::Denied(err).into());
    }
    if q.code.as_deref().is_none_or(str::is_empty) {
        return Err(OAuthError::MissingCode.into());
    }
    Ok(flow)
}

/// Audits (platform chain) and counts a failed callback.
async fn fail(state: &AppState, meta: &Meta, provider: &str, e: &ApiError, detail: Value) {
    audit_failure(state, meta, provider, "auth.oauth.callback", e, detail).await
}

async fn fail_start(state: &AppState, meta: &Meta, provider: &str, e: &ApiError) {
    audit_failure(state, meta, provider, "auth.oauth.start", e, json!({})).await
}

async fn audit_failure(
    state: &AppState,
    meta: &Meta,
    provider: &str,
    action: &str,
    e: &ApiError,
    mut detail: Value,
) {
    let reason = match e {
        ApiError::OAuth(oe) => oe.reason(),
        ApiError::Unavailable => "store_unavailable",
        ApiError::BadRequest(_) => "bad_request",
        ApiError::Forbidden(_) => "signup_not_open",
        _ => "account_error",
    };
    metrics::counter!("bastion_auth_failures_total", "reason" => format!("oauth_{reason}"))
        .increment(1);
    if let Value::Object(m) = &mut detail {
        m.insert("reason".into(), reason.into());
        m.insert("provider".into(), cut(provider).into());
    }
    state
        .audit(events::event(
            PLATFORM_CHAIN,
            "anonymous".into(),
            meta,
            action,
            cut(provider),
            FAILURE,
            detail,
        ))
        .await;
}

/// A provider name from the path, cut for the audit log (unknown names are attacker input).
fn cut(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn flow_cookie(value: &str, max_age: Duration) -> HeaderValue {
    let c = cookie::Cookie::build((FLOW_COOKIE, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build();
    // The value is base64url (or empty) and the name fixed: always a valid header value.
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn header_value(s: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(s)
        .map_err(|_| ApiError::Internal("redirect target is not a header value".into()))
}
