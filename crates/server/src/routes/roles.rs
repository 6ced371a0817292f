//! Custom roles of an assistant (capability members.manage): a name and a subset of the
//! capabilities. Nobody creates, changes or deletes a role holding a capability they lack;
//! a change applies to every member holding the role from their next request.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, SUCCESS};
use crate::flow::{Actor, InAssistant, ItemParam, Meta};
use crate::json::ApiJson;
use crate::routes::members::ensure_may_grant;
use crate::routes::views::CustomRoleView;
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::{Capability, CapabilitySet, Holding, RoleId};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleCreate {
    /// 1 to 40 characters of a-z, 0-9, `-` and `_`; not a built-in role's name.
    pub name: String,
    /// At least one; each must be held by the caller.
    pub capabilities: Vec<Capability>,
}

/// The fields a role update may change; those left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    pub name: Option<String>,
    pub capabilities: Option<Vec<Capability>>,
}

fn capability_set(caps: &[Capability]) -> ApiResult<CapabilitySet> {
    if caps.is_empty() {
        return Err(ApiError::Unprocessable(
            "capabilities: name at least one".into(),
        ));
    }
    Ok(CapabilitySet::of(caps))
}

fn holding(capabilities: CapabilitySet) -> Holding {
    Holding {
        capabilities,
        owner: false,
    }
}

async fn audit(
    state: &AppState,
    actor: Actor,
    meta: &Meta,
    at: &InAssistant,
    action: &str,
    detail: serde_json::Value,
) {
    state
        .audit(events::on_assistant(
            at, actor, meta, action, SUCCESS, detail,
        ))
        .await;
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/roles", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [CustomRoleView]), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<CustomRoleView>>> {
    let rows = state.store.roles().list(&at.scope).await?;
    Ok(Json(rows.iter().map(CustomRoleView::from).collect()))
}

/// Creates a custom role from capabilities the caller holds.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/roles", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = RoleCreate,
    responses((status = 201, body = CustomRoleView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ApiJson(input): ApiJson<RoleCreate>,
) -> ApiResult<(StatusCode, Json<CustomRoleView>)> {
    let name = validate::role_name(&input.name)?;
    let caps = capability_set(&input.capabilities)?;
    let what = json!({"create_role": name, "capabilities": caps.to_vec()});
    ensure_may_grant(&state, actor, &meta, &at, holding(caps), what).await?;
    let role = state.store.roles().create(&at.scope, &name, caps).await?;
    audit(
        &state,
        actor,
        &meta,
        &at,
        "role.create",
        json!({"role": role.id.to_string(), "name": name, "capabilities": caps.to_vec()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CustomRoleView::from(&role))))
}

/// Renames a custom role or changes its capabilities; members holding it get the new
/// capabilities from their next request. The caller must hold the old and the new set.
#[utoipa::path(patch, path = "/api/v1/assistants/{assistant_id}/roles/{role_id}", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("role_id" = String, Path, format = Uuid)), request_body = RolePatch,
    responses((status = 200, body = CustomRoleView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ItemParam(id): ItemParam<RoleId>,
    ApiJson(input): ApiJson<RolePatch>,
) -> ApiResult<Json<CustomRoleView>> {
    let current = state.store.roles().get(&at.scope, id).await?;
    let name = input.name.as_deref().map(validate::role_name).transpose()?;
    let caps = input
        .capabilities
        .as_deref()
        .map(capability_set)
        .transpose()?;
    let what = json!({"update_role": id.to_string(), "from": current.capabilities.to_vec(),
        "to": caps.map(CapabilitySet::to_vec)});
    ensure_may_grant(
        &state,
        actor,
        &meta,
        &at,
        holding(current.capabilities),
        what.clone(),
    )
    .await?;
    if let Some(caps) = caps {
        ensure_may_grant(&state, actor, &meta, &at, holding(caps), what).await?;
    }
    let role = state
        .store
        .roles()
        .update(&at.scope, id, name.as_deref(), caps)
        .await?;
    // Cached grants carry the role's capabilities; the change must hold from the next request.
    state.directory.forget_everything();
    audit(
        &state,
        actor,
        &meta,
        &at,
        "role.update",
        json!({"role": id.to_string(), "name": role.name,
        "from": current.capabilities.to_vec(), "to": role.capabilities.to_vec()}),
    )
    .await;
    Ok(Json(CustomRoleView::from(&role)))
}

/// Deletes a custom role that no member holds and no pending invitation offers.
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/roles/{role_id}", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("role_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ItemParam(id): ItemParam<RoleId>,
) -> ApiResult<StatusCode> {
    let current = state.store.roles().get(&at.scope, id).await?;
    let what =
        json!({"delete_role": id.to_string(), "capabilities": current.capabilities.to_vec()});
    ensure_may_grant(
        &state,
        actor,
        &meta,
        &at,
        holding(current.capabilities),
        what,
    )
    .await?;
    state.store.roles().delete(&at.scope, id).await?;
    audit(
        &state,
        actor,
        &meta,
        &at,
        "role.delete",
        json!({"role": id.to_string(), "name": current.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
