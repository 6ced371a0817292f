//! Password sign-in (with its second step when the account has TOTP) and self sign-up.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::Meta;
use crate::json::ApiJson;
use crate::routes::views::{
    LoginRequest, MfaChallengeResponse, MfaLoginRequest, SignupRequest, TokenResponse, UserView,
};
use crate::sessions::{self, METHOD_PASSWORD, METHOD_PASSWORD_TOTP};
use crate::settings::SignupMode;
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bastion_auth::{password, tokens, totp};
use bastion_store::audit::PLATFORM_CHAIN;
use bastion_store::users::User;
use bastion_store::StoreError;
use secrecy::SecretString;
use serde_json::json;

/// Signs in with email and password. Without MFA on the account this starts a session; with
/// it, the answer is only a challenge for `POST /api/v1/auth/login/mfa`, which grants nothing.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "a session, or an MFA challenge", body = TokenResponse),
        (status = 401, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
        (status = 429, body = crate::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    meta: Meta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let target = bastion_store::users::normalize_email(&req.email);
    let attempt = crate::attempts::Attempt::password(&target, &meta);
    state.attempts.check(&attempt).await?;
    if req.password.len() > 1024 || req.email.len() > 254 {
        return Err(ApiError::InvalidCredentials);
    }
    let creds = state.store.users().credentials(&req.email).await?;
    let (user, stored) = match creds {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    let ok = crate::credentials::password_matches(req.password, stored).await?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => {
            metrics::counter!("bastion_auth_failures_total", "reason" => "bad_password")
                .increment(1);
            audit_login(
                &state,
                None,
                &meta,
                &target,
                FAILURE,
                json!({"step": "password"}),
            )
            .await;
            state.attempts.failed(&attempt).await?;
            return Err(ApiError::InvalidCredentials);
        }
    };
    state.attempts.succeeded(&attempt).await;
    if state.store.mfa().totp(user.id).await?.enabled() {
        let mfa_token = state
            .tokens
            .issue_mfa_challenge(user.id)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        audit_login(
            &state,
            Some(&user),
            &meta,
            &target,
            SUCCESS,
            json!({"step": "password", "mfa": "required"}),
        )
        .await;
        return Ok(Json(MfaChallengeResponse {
            mfa_required: true,
            mfa_token,
            expires_in: tokens::MFA_CHALLENGE_TTL_SECS,
        })
        .into_response());
    }
    let issued = sessions::start(&state, &user, METHOD_PASSWORD, &meta).await?;
    audit_login(
        &state,
        Some(&user),
        &meta,
        &target,
        SUCCESS,
        json!({"session": issued.session.id.to_string()}),
    )
    .await;
    Ok(sessions::respond(&state, issued, req.mode).into_response())
}

/// The second sign-in step: the challenge from the password step and a TOTP code (or one of
/// the recovery codes). Each code works once.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa", tag = "auth", request_body = MfaLoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn login_mfa(
    State(state): State<AppState>,
    meta: Meta,
    ApiJson(req): ApiJson<MfaLoginRequest>,
) -> ApiResult<Response> {
    let user_id = state
        .tokens
        .verify_mfa_challenge(&req.mfa_token)
        .map_err(|_| ApiError::Unauthenticated)?;
    let user = state
        .store
        .users()
        .get(user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let attempt = crate::attempts::Attempt::second_factor(&user, &meta);
    state.attempts.check(&attempt).await?;
    let passed = match (&req.code, &req.recovery_code) {
        (Some(code), None) => crate::routes::mfa::check_code(&state, &user, code).await?,
        (None, Some(code)) => {
            state
                .store
                .mfa()
                .use_recovery_code(user.id, &totp::recovery_code_hash(code))
                .await?
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "send exactly one of code and recovery_code".into(),
            ))
        }
    };
    let how = if req.recovery_code.is_some() {
        "recovery_code"
    } else {
        "totp"
    };
    if !passed {
        metrics::counter!("bastion_auth_failures_total", "reason" => "bad_mfa_code").increment(1);
        audit_login(
            &state,
            Some(&user),
            &meta,
            &user.email,
            FAILURE,
            json!({"step": how}),
        )
        .await;
        state.attempts.failed(&attempt).await?;
        return Err(ApiError::InvalidCredentials);
    }
    state.attempts.succeeded(&attempt).await;
    let issued = sessions::start(&state, &user, METHOD_PASSWORD_TOTP, &meta).await?;
    audit_login(
        &state,
        Some(&user),
        &meta,
        &user.email,
        SUCCESS,
        json!({"step": how, "session": issued.session.id.to_string()}),
    )
    .await;
    Ok(sessions::respond(&state, issued, req.mode).into_response())
}

async fn audit_login(
    state: &AppState,
    user: Option<&User>,
    meta: &Meta,
    target: &str,
    outcome: &str,
    detail: serde_json::Value,
) {
    let actor = user.map_or_else(|| "anonymous".to_string(), |u| format!("user:{}", u.id));
    state
        .audit(events::event(
            PLATFORM_CHAIN,
            actor,
            meta,
            "auth.login",
            target,
            outcome,
            detail,
        ))
        .await;
}

/// Creates an account. Governed by the `signup` setting: `closed` refuses, `invite` needs an
/// invitation token issued to this email, `open` accepts anyone. An account by itself grants
/// access to nothing; a redeemed invitation adds its one membership.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = UserView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn signup(
    State(state): State<AppState>,
    meta: Meta,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    if state.settings.signup == SignupMode::Closed {
        return Err(ApiError::Forbidden(
            "sign-up is closed on this instance".into(),
        ));
    }
    let email = validate::email(&req.email)?;
    validate::new_password(&req.password, &email)?;
    let token = req.invitation_token.filter(|t| !t.is_empty());
    if state.settings.signup == SignupMode::Invite && token.is_none() {
        return Err(ApiError::Forbidden(
            "sign-up needs an invitation on this instance".into(),
        ));
    }
    let hash = password::hash(SecretString::from(req.password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match token {
        Some(token) => {
            let redeemed = state
                .store
                .invitations()
                .redeem_at_signup(&tokens::token_hash(&token), &email, &hash)
                .await;
            let (user, inv) = match redeemed {
                Ok(done) => done,
                Err(StoreError::NotFound) => {
                    state
                        .audit(events::event(
                            PLATFORM_CHAIN,
                            "anonymous".into(),
                            &meta,
                            "invitation.redeem",
                            &email,
                            FAILURE,
                            json!({}),
                        ))
                        .await;
                    return Err(ApiError::Forbidden(
                        "the invitation is unknown, spent, expired or for another email".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(a) = state.directory.assistant(inv.assistant_id).await? {
                let actor = format!("user:{}", user.id);
                state
                    .audit(events::event(
                        a.workspace_id,
                        actor,
                        &meta,
                        "invitation.redeem",
                        inv.assistant_id,
                        SUCCESS,
                        json!({"invitation": inv.id.to_string(), "role": inv.role}),
                    ))
                    .await;
            }
            user
        }
        None => state.store.users().create(&email, &hash, false).await?,
    };
    let actor = format!("user:{}", user.id);
    state
        .audit(events::event(
            PLATFORM_CHAIN,
            actor,
            &meta,
            "auth.signup",
            &email,
            SUCCESS,
            json!({}),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}
