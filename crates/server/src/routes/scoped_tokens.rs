//! Scoped access tokens: a signed-in user narrows a token of their session to one assistant
//! and some of the capabilities they hold there, to hand to a script or an integration.
//! The token never works on another assistant or outside the assistant's routes, never
//! carries ownership, and is checked against the user's live role on every request: a
//! demotion narrows it at once, and ending the session ends it.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::{Caller, Meta};
use crate::json::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_auth::tokens::TokenScope;
use bastion_core::{AssistantId, Capability, CapabilitySet};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// The longest a scoped token lives: long enough for a job, short enough that a leaked
/// one is soon useless.
const MAX_TTL_SECS: i64 = 3600;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopedTokenRequest {
    #[schema(format = Uuid)]
    pub assistant_id: String,
    /// At least one, each held by the caller on that assistant.
    pub capabilities: Vec<Capability>,
    /// Seconds the token lives, 1 to 3600; omitted: as long as an access token.
    pub ttl_secs: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ScopedTokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[schema(format = Uuid)]
    pub assistant_id: String,
    pub capabilities: Vec<Capability>,
}

/// Issues a token of the caller's session narrowed to one assistant and capabilities.
#[utoipa::path(post, path = "/api/v1/auth/tokens", tag = "auth", security(("bearer" = [])),
    request_body = ScopedTokenRequest,
    responses((status = 201, body = ScopedTokenResponse), (status = 401, body = crate::error::Problem),
        (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ApiJson(req): ApiJson<ScopedTokenRequest>,
) -> ApiResult<(StatusCode, Json<ScopedTokenResponse>)> {
    let assistant: AssistantId = req.assistant_id.parse().map_err(|_| ApiError::NotFound)?;
    if req.capabilities.is_empty() {
        return Err(ApiError::Unprocessable(
            "capabilities: name at least one".into(),
        ));
    }
    let ttl = req.ttl_secs.unwrap_or(state.tokens.ttl_secs());
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(ApiError::Unprocessable(format!(
            "ttl_secs: between 1 and {MAX_TTL_SECS}"
        )));
    }
    let grant = state
        .directory
        .grant(caller.user.id, assistant)
        .await?
        .ok_or(ApiError::NotFound)?;
    if grant.mfa_required() && !caller.mfa() {
        return Err(ApiError::MfaRequired);
    }
    let wanted = CapabilitySet::of(&req.capabilities);
    if !grant.role().capabilities().covers(wanted) {
        state
            .audit(events::event(
                grant.workspace_id(),
                events::actor(caller.principal()),
                &meta,
                "escalation.refused",
                assistant,
                FAILURE,
                json!({"scoped_token": wanted.to_vec(), "role": grant.role().name()}),
            ))
            .await;
        return Err(ApiError::Forbidden(
            "a scoped token can hold only capabilities your role holds on the assistant".into(),
        ));
    }
    let scope = TokenScope {
        assistant,
        capabilities: wanted,
    };
    let amr: Vec<&str> = caller.amr.iter().map(String::as_str).collect();
    let token = state
        .tokens
        .issue_scoped(
            caller.user.id,
            &caller.session.to_string(),
            &amr,
            scope,
            ttl,
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .audit(events::event(
            grant.workspace_id(),
            events::actor(caller.principal()),
            &meta,
            "token.scoped_issue",
            assistant,
            SUCCESS,
            json!({"capabilities": wanted.to_vec(), "ttl_secs": ttl, "session": caller.session.to_string()}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(ScopedTokenResponse {
            access_token: token,
            token_type: "Bearer",
            expires_in: ttl,
            assistant_id: assistant.to_string(),
            capabilities: wanted.to_vec(),
        }),
    ))
}
