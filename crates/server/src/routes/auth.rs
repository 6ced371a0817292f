//! Password sign-in and self sign-up.

use crate::auth::{password, tokens};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::Meta;
use crate::json::ApiJson;
use crate::routes::views::{LoginRequest, SignupRequest, TokenResponse, UserView};
use crate::settings::SignupMode;
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_store::audit::PLATFORM_CHAIN;
use bastion_store::StoreError;
use secrecy::SecretString;
use serde_json::json;

/// Signs in with email and password and returns a short-lived access token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    meta: Meta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    if req.password.len() > 1024 || req.email.len() > 254 {
        return Err(ApiError::InvalidCredentials);
    }
    let creds = state.store.users().credentials(&req.email).await?;
    let (user, stored) = match creds {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    let ok = password::verify(SecretString::from(req.password), stored)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let target = bastion_store::users::normalize_email(&req.email);
    match (ok, user) {
        (true, Some(user)) => {
            let token = state
                .tokens
                .issue(user.id)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let actor = format!("user:{}", user.id);
            state
                .audit(events::event(
                    PLATFORM_CHAIN,
                    actor,
                    &meta,
                    "auth.login",
                    target,
                    SUCCESS,
                    json!({}),
                ))
                .await;
            Ok(Json(TokenResponse {
                access_token: token,
                token_type: "Bearer",
                expires_in: state.tokens.ttl_secs(),
            }))
        }
        _ => {
            metrics::counter!("bastion_auth_failures_total", "reason" => "bad_password")
                .increment(1);
            state
                .audit(events::event(
                    PLATFORM_CHAIN,
                    "anonymous".into(),
                    &meta,
                    "auth.login",
                    target,
                    FAILURE,
                    json!({}),
                ))
                .await;
            Err(ApiError::InvalidCredentials)
        }
    }
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
    validate::new_password(&req.password)?;
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
