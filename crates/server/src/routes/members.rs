//! Members and invitations of an assistant. Nobody grants a role holding a capability they
//! lack (ownership only from an owner), and nobody changes a member they could not have made;
//! each refusal is audited (`escalation.refused`). A role is named by the API: a built-in one
//! or one of the assistant's custom roles.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::{Actor, InAssistant, ItemParam, Meta};
use crate::json::ApiJson;
use crate::routes::views::{InvitationView, MemberView};
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bastion_auth::tokens;
use bastion_core::{InvitationId, MemberRole, Role, UserId};
use bastion_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    pub email: String,
    /// A built-in role or the name of one of the assistant's custom roles.
    pub role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// A built-in role or the name of one of the assistant's custom roles.
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationCreated {
    pub invitation: InvitationView,
    /// Shown once: hand it to the invitee, who redeems it at sign-up. Only its hash is kept.
    pub token: String,
}

/// The role `name` on this assistant: built-in, or one of its custom roles.
pub(crate) async fn resolve_role(
    state: &AppState,
    at: &InAssistant,
    name: &str,
) -> ApiResult<MemberRole> {
    if let Some(r) = Role::parse(name) {
        return Ok(MemberRole::Builtin(r));
    }
    match state.store.roles().by_name(&at.scope, name).await? {
        Some(custom) => Ok(custom.member_role()),
        None => Err(ApiError::Unprocessable(format!(
            "role: {name:?} is neither a built-in role nor a custom role of this assistant"
        ))),
    }
}

/// Ownership is never granted by an invitation or a role change: an owner offers it and the
/// member accepts it (`routes/ownership.rs`).
fn refuse_ownership(at: &InAssistant, role: &MemberRole) -> ApiResult<()> {
    if !role.is_owner() {
        return Ok(());
    }
    Err(ApiError::Unprocessable(format!(
        "role: ownership is not granted by an invitation or a role change; an owner offers it \
         with POST /api/v1/assistants/{}/ownership-transfer and the member accepts it",
        at.scope.assistant_id()
    )))
}

/// Refuses (and audits) handing out or touching `target` when the caller does not hold
/// all of it.
pub(crate) async fn ensure_may_grant(
    state: &AppState,
    actor: Actor,
    meta: &Meta,
    at: &InAssistant,
    target: bastion_core::Holding,
    what: serde_json::Value,
) -> ApiResult<()> {
    if at.scope.holding().may_grant(target) {
        return Ok(());
    }
    state
        .audit(events::on_assistant(
            at,
            actor,
            meta,
            "escalation.refused",
            FAILURE,
            what,
        ))
        .await;
    Err(ApiError::Forbidden(
        "you cannot grant or change what you do not hold yourself (and ownership only as an owner)"
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/members", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [MemberView]), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<MemberView>>> {
    let rows = state.store.memberships().list(&at.scope).await?;
    Ok(Json(rows.iter().map(MemberView::from).collect()))
}

/// Invites an email with a role (never `owner`: see the ownership transfer). An existing
/// user becomes a member at once (201); otherwise a single-use, expiring invitation is
/// created and its token shown once (202).
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/members", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = InviteInput,
    responses((status = 201, body = MemberView), (status = 202, body = InvitationCreated), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn invite(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ApiJson(input): ApiJson<InviteInput>,
) -> ApiResult<Response> {
    let role = resolve_role(&state, &at, &input.role).await?;
    ensure_may_grant(
        &state,
        actor,
        &meta,
        &at,
        role.holding(),
        json!({"invite": input.email, "role": role}),
    )
    .await?;
    refuse_ownership(&at, &role)?;
    let email = validate::email(&input.email)?;
    match state
        .store
        .memberships()
        .add_by_email(&at.scope, &email, &role)
        .await
    {
        Ok(m) => {
            state
                .directory
                .forget_grant(m.user_id, at.scope.assistant_id());
            state
                .audit(events::on_assistant(
                    &at,
                    actor,
                    &meta,
                    "member.add",
                    SUCCESS,
                    json!({"user": m.user_id.to_string(), "role": m.role}),
                ))
                .await;
            Ok((StatusCode::CREATED, Json(MemberView::from(&m))).into_response())
        }
        Err(StoreError::NotFound) => {
            let token = tokens::random_token("bsi_");
            let ttl_ms = state.settings.invitation_ttl_hours as i64 * 3_600_000;
            let inv = state
                .store
                .invitations()
                .create(
                    &at.scope,
                    &email,
                    &role,
                    &tokens::token_hash(&token),
                    ttl_ms,
                )
                .await?;
            state
                .audit(events::on_assistant(
                    &at,
                    actor,
                    &meta,
                    "invitation.create",
                    SUCCESS,
                    json!({"invitation": inv.id.to_string(), "email": email, "role": inv.role}),
                ))
                .await;
            let body = InvitationCreated {
                invitation: InvitationView::from(&inv),
                token,
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Changes a member's role (never to `owner`: see the ownership transfer). The last owner
/// cannot be demoted.
#[utoipa::path(patch, path = "/api/v1/assistants/{assistant_id}/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)), request_body = RoleInput,
    responses((status = 200, body = MemberView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn set_role(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ItemParam(user): ItemParam<UserId>,
    ApiJson(input): ApiJson<RoleInput>,
) -> ApiResult<Json<MemberView>> {
    let current = state.store.memberships().get(&at.scope, user).await?;
    let role = resolve_role(&state, &at, &input.role).await?;
    let what = json!({"user": user.to_string(), "from": current.role, "to": role});
    ensure_may_grant(
        &state,
        actor,
        &meta,
        &at,
        current.role.holding(),
        what.clone(),
    )
    .await?;
    ensure_may_grant(&state, actor, &meta, &at, role.holding(), what).await?;
    refuse_ownership(&at, &role)?;
    let m = state
        .store
        .memberships()
        .set_role(&at.scope, user, &role)
        .await?;
    state.directory.forget_grant(user, at.scope.assistant_id());
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "member.role_change",
            SUCCESS,
            json!({"user": user.to_string(), "from": current.role, "to": m.role}),
        ))
        .await;
    Ok(Json(MemberView::from(&m)))
}

/// Removes a member. The last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ItemParam(user): ItemParam<UserId>,
) -> ApiResult<StatusCode> {
    let current = state.store.memberships().get(&at.scope, user).await?;
    ensure_may_grant(
        &state,
        actor,
        &meta,
        &at,
        current.role.holding(),
        json!({"remove": user.to_string(), "role": current.role}),
    )
    .await?;
    state.store.memberships().remove(&at.scope, user).await?;
    state.directory.forget_grant(user, at.scope.assistant_id());
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "member.remove",
            SUCCESS,
            json!({"user": user.to_string(), "role": current.role}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Pending invitations (never their tokens).
#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/invitations", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [InvitationView]), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<InvitationView>>> {
    let rows = state.store.invitations().list_pending(&at.scope).await?;
    Ok(Json(rows.iter().map(InvitationView::from).collect()))
}

#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/invitations/{invitation_id}", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("invitation_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ItemParam(id): ItemParam<InvitationId>,
) -> ApiResult<StatusCode> {
    state.store.invitations().revoke(&at.scope, id).await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "invitation.revoke",
            SUCCESS,
            json!({"invitation": id.to_string()}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
