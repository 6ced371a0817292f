//! Sign-in sessions as the API hands them out: starting one (after any sign-in method),
//! rotating its refresh token, and carrying the tokens either in the response body (API
//! clients) or in cookies with a CSRF token (browsers).
//!
//! Cookies are `__Host-` prefixed (Secure, Path=/, no Domain: a sibling subdomain cannot set
//! or overwrite them), `HttpOnly` (scripts cannot read the tokens) and `SameSite=Strict`.
//! The CSRF token is an HMAC of the session id under a key derived from the master key, so
//! it is bound to the session and cannot be forged or planted; it must come back in the
//! `X-CSRF-Token` header of every state-changing request made with cookies.

use crate::error::{ApiError, ApiResult};
use crate::flow::Meta;
use crate::routes::views::{SessionMode, TokenResponse};
use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bastion_auth::tokens::{self, AMR_OAUTH, AMR_OTP, AMR_PASSWORD};
use bastion_core::SessionId;
use bastion_store::sessions::{NewSession, Session};
use bastion_store::users::User;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const ACCESS_COOKIE: &str = "__Host-bastion_at";
pub const REFRESH_COOKIE: &str = "__Host-bastion_rt";
pub const CSRF_COOKIE: &str = "__Host-bastion_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Sign-in methods, as sessions record them.
pub const METHOD_PASSWORD: &str = "password";
pub const METHOD_PASSWORD_TOTP: &str = "password+totp";

/// A session just started or refreshed, with the tokens to hand out.
pub struct Issued {
    pub session: Session,
    pub access_token: String,
    pub refresh_token: String,
    pub csrf_token: String,
}

/// The `amr` claim for a session's method: what the sign-in proved.
pub fn amr_of(method: &str) -> &'static [&'static str] {
    if method == METHOD_PASSWORD_TOTP {
        &[AMR_PASSWORD, AMR_OTP]
    } else if method.starts_with("oauth:") {
        &[AMR_OAUTH]
    } else {
        &[AMR_PASSWORD]
    }
}

/// Starts a session for `user`, who just proved who they are with `method`.
pub async fn start(state: &AppState, user: &User, method: &str, meta: &Meta) -> ApiResult<Issued> {
    let refresh_token = tokens::random_token("bsr_");
    let session = state
        .store
        .sessions()
        .create(
            NewSession {
                user_id: user.id,
                method,
                ip: &meta.ip_string(),
                user_agent: &meta.user_agent,
                idle_ttl_ms: state.settings.refresh_idle_ttl_secs as i64 * 1000,
                absolute_ttl_ms: state.settings.refresh_absolute_ttl_secs as i64 * 1000,
            },
            &tokens::token_hash(&refresh_token),
        )
        .await?;
    issue(state, session, refresh_token)
}

/// Access and CSRF tokens for `session`, whose new refresh token is `refresh_token`.
/// Ends every live session of `user` but `keep`, for `why` (a `sessions::reason`), and
/// drops the cached sessions so their access tokens stop at once on this node. Returns how
/// many ended.
pub async fn end_all(
    state: &AppState,
    user: bastion_core::UserId,
    keep: Option<SessionId>,
    why: &str,
) -> ApiResult<u64> {
    let ended = state.store.sessions().revoke_all(user, keep, why).await?;
    state.directory.forget_sessions();
    Ok(ended)
}

pub fn issue(state: &AppState, session: Session, refresh_token: String) -> ApiResult<Issued> {
    let access_token = state
        .tokens
        .issue(
            session.user_id,
            &session.id.to_string(),
            amr_of(&session.method),
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let csrf_token = csrf_token(state, session.id);
    Ok(Issued {
        session,
        access_token,
        refresh_token,
        csrf_token,
    })
}

/// The CSRF token of a session.
pub fn csrf_token(state: &AppState, session: SessionId) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(state.keys.csrf.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"csrf:");
    mac.update(session.to_string().as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether the request's `X-CSRF-Token` header holds this session's CSRF token.
pub fn csrf_ok(state: &AppState, session: SessionId, headers: &HeaderMap) -> bool {
    let Some(sent) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let expected = csrf_token(state, session);
    sent.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: i64, http_only: bool) -> HeaderValue {
    let c = cookie::Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(http_only)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    // Tokens are base64url and names fixed, so the cookie is always a valid header value.
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` headers that put the session's tokens in the browser.
pub fn cookies(state: &AppState, issued: &Issued) -> Vec<HeaderValue> {
    let refresh_age = (issued.session.idle_expires_at - bastion_store::now_ms()) / 1000;
    vec![
        set_cookie(
            ACCESS_COOKIE,
            &issued.access_token,
            state.tokens.ttl_secs(),
            true,
        ),
        set_cookie(REFRESH_COOKIE, &issued.refresh_token, refresh_age, true),
        // Readable by the page's script, which echoes it in X-CSRF-Token.
        set_cookie(CSRF_COOKIE, &issued.csrf_token, refresh_age, false),
    ]
}

/// `Set-Cookie` headers that remove the session cookies.
pub fn clear_cookies() -> Vec<HeaderValue> {
    [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE]
        .iter()
        .map(|name| set_cookie(name, "", 0, *name != CSRF_COOKIE))
        .collect()
}

/// The body (and, in cookie mode, the cookies) answering a sign-in or a refresh.
pub fn respond(
    state: &AppState,
    issued: Issued,
    mode: SessionMode,
) -> (HeaderMap, axum::Json<TokenResponse>) {
    let mut headers = HeaderMap::new();
    let refresh_expires_in = (issued.session.idle_expires_at - bastion_store::now_ms()) / 1000;
    let body = match mode {
        SessionMode::Token => TokenResponse {
            access_token: Some(issued.access_token),
            token_type: "Bearer",
            expires_in: state.tokens.ttl_secs(),
            refresh_token: Some(issued.refresh_token),
            refresh_expires_in,
            csrf_token: None,
            session_id: issued.session.id.to_string(),
        },
        SessionMode::Cookie => {
            for c in cookies(state, &issued) {
                headers.append(header::SET_COOKIE, c);
            }
            TokenResponse {
                access_token: None,
                token_type: "cookie",
                expires_in: state.tokens.ttl_secs(),
                refresh_token: None,
                refresh_expires_in,
                csrf_token: Some(issued.csrf_token),
                session_id: issued.session.id.to_string(),
            }
        }
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (headers, axum::Json(body))
}
