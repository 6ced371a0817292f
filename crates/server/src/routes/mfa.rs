//! TOTP enrolment and removal for the signed-in user. Enrolment takes two steps: the secret
//! is shown once and stored sealed as pending; only a correct first code enables it, which
//! also hands out ten single-use recovery codes (stored hashed). Removal needs the password
//! and a current code, and ends the user's other sessions.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::{Caller, Meta};
use crate::json::ApiJson;
use crate::routes::views::{
    MfaCodeRequest, MfaDisableRequest, RecoveryCodesResponse, TotpEnrolment,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_auth::{seal, totp};
use bastion_store::audit::PLATFORM_CHAIN;
use bastion_store::sessions::reason;
use bastion_store::users::User;
use serde_json::json;
use zeroize::Zeroizing;

/// The sealing binds a secret to its user, so a copied row does not open for anyone else.
fn aad(user: &User) -> String {
    seal::totp_aad(user.id)
}

/// A sealed TOTP secret opened with the current master key's seal key, or a previous
/// one's (sealed before a master key rotation re-sealed it).
fn open_totp(
    state: &AppState,
    user: &User,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, seal::SealError> {
    let keys = std::iter::once(&state.keys).chain(&state.previous_keys);
    seal::open_with_any(keys.map(|k| &*k.totp_seal), &aad(user), sealed)
}

fn now_secs() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64
}

/// Whether `code` is the user's current TOTP code, spending its time step if so.
pub async fn check_code(state: &AppState, user: &User, code: &str) -> ApiResult<bool> {
    let stored = state.store.mfa().totp(user.id).await?;
    let Some(sealed) = stored.secret else {
        return Ok(false);
    };
    let secret = open_totp(state, user, &sealed)
        .map_err(|e| ApiError::Internal(format!("TOTP secret of {}: {e}", user.id)))?;
    match totp::verify(&secret, code, now_secs(), stored.last_step) {
        Some(step) => Ok(state.store.mfa().accept_step(user.id, step).await?),
        None => Ok(false),
    }
}

async fn audit(state: &AppState, caller: &Caller, meta: &Meta, action: &str, outcome: &str) {
    state
        .audit(events::event(
            PLATFORM_CHAIN,
            events::actor(caller.principal()),
            meta,
            action,
            &caller.user.email,
            outcome,
            json!({}),
        ))
        .await;
}

/// Starts TOTP enrolment: a new secret, shown once, to be confirmed with its first code.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TotpEnrolment), (status = 401, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<TotpEnrolment>> {
    if state.store.mfa().totp(caller.user.id).await?.enabled() {
        return Err(ApiError::Conflict(
            "TOTP is already enabled; disable it first to enrol a new authenticator".into(),
        ));
    }
    let secret = totp::new_secret();
    let sealed = seal::seal(&state.keys.totp_seal, &aad(&caller.user), &secret)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .mfa()
        .set_pending(caller.user.id, &sealed)
        .await?;
    let (b32, uri) = totp::provisioning(&secret, &state.settings.issuer, &caller.user.email)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(TotpEnrolment {
        secret: b32,
        otpauth_uri: uri,
    }))
}

/// Confirms enrolment with the first code and returns the recovery codes, once.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/confirm", tag = "auth", security(("bearer" = [])),
    request_body = MfaCodeRequest,
    responses((status = 200, body = RecoveryCodesResponse), (status = 401, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ApiJson(req): ApiJson<MfaCodeRequest>,
) -> ApiResult<Json<RecoveryCodesResponse>> {
    let stored = state.store.mfa().totp(caller.user.id).await?;
    let Some(sealed) = stored.pending else {
        return Err(ApiError::Conflict(
            "no TOTP enrolment is pending; start one with POST /api/v1/auth/mfa/totp".into(),
        ));
    };
    let secret =
        open_totp(&state, &caller.user, &sealed).map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(step) = totp::verify(&secret, &req.code, now_secs(), None) else {
        audit(&state, &caller, &meta, "auth.mfa.enable", FAILURE).await;
        return Err(ApiError::Unprocessable(
            "code: not the current code of this secret".into(),
        ));
    };
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
    state
        .store
        .mfa()
        .enable(caller.user.id, &sealed, step, &hashes)
        .await?;
    audit(&state, &caller, &meta, "auth.mfa.enable", SUCCESS).await;
    Ok(Json(RecoveryCodesResponse {
        recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
    }))
}

/// Disables TOTP. Needs the password and a current code (or a recovery code); ends every
/// other session of the user, which were signed in under the old protection.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/disable", tag = "auth", security(("bearer" = [])),
    request_body = MfaDisableRequest,
    responses((status = 204), (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem, description = "TOTP is not enabled"),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ApiJson(req): ApiJson<MfaDisableRequest>,
) -> ApiResult<StatusCode> {
    let attempt = crate::attempts::Attempt::second_factor(&caller.user, &meta);
    state.attempts.check(&attempt).await?;
    if !state.store.mfa().totp(caller.user.id).await?.enabled() {
        return Err(ApiError::Conflict("TOTP is not enabled".into()));
    }
    let password_ok =
        crate::credentials::current_password_matches(&state, caller.user.id, req.password).await?;
    let code_ok = password_ok
        && match (&req.code, &req.recovery_code) {
            (Some(code), None) => check_code(&state, &caller.user, code).await?,
            (None, Some(code)) => {
                state
                    .store
                    .mfa()
                    .use_recovery_code(caller.user.id, &totp::recovery_code_hash(code))
                    .await?
            }
            _ => false,
        };
    if !code_ok {
        audit(&state, &caller, &meta, "auth.mfa.disable", FAILURE).await;
        state.attempts.failed(&attempt).await?;
        return Err(ApiError::Forbidden(
            "the password or the code is wrong".into(),
        ));
    }
    state.attempts.succeeded(&attempt).await;
    state.store.mfa().disable(caller.user.id).await?;
    crate::sessions::end_all(
        &state,
        caller.user.id,
        Some(caller.session),
        reason::MFA_CHANGED,
    )
    .await?;
    audit(&state, &caller, &meta, "auth.mfa.disable", SUCCESS).await;
    Ok(StatusCode::NO_CONTENT)
}
