//! Workspaces and the assistants in them.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, SUCCESS};
use crate::flow::{Caller, InWorkspace, Meta};
use crate::json::ApiJson;
use crate::routes::views::{AssistantView, WorkspaceView};
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::Role;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceInput {
    pub name: String,
}

/// The fields a workspace update may change; those left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    pub name: Option<String>,
    /// Require owners and admins to sign in with a second factor (TOTP). Only a caller
    /// signed in with one may turn it on, so nobody locks themselves out by accident.
    pub require_mfa: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantInput {
    /// 3–63 characters of a–z, 0–9 and inner hyphens; the assistant answers at `{slug}.{base_domain}`.
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// The workspaces the caller belongs to.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", security(("bearer" = [])),
    responses((status = 200, body = [WorkspaceView]), (status = 401, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<WorkspaceView>>> {
    let rows = state
        .store
        .workspaces()
        .list_for_user(caller.user.id)
        .await?;
    Ok(Json(
        rows.iter()
            .map(|(w, r)| WorkspaceView::new(w, *r))
            .collect(),
    ))
}

/// Creates a workspace with the caller as its owner (platform operators only).
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", security(("bearer" = [])), request_body = WorkspaceInput,
    responses((status = 201, body = WorkspaceView), (status = 403, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ApiJson(input): ApiJson<WorkspaceInput>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    let name = validate::display_name("name", &input.name)?;
    let ws = state
        .store
        .workspaces()
        .create(&name, caller.user.id)
        .await?;
    state
        .audit(events::event(
            ws.id,
            events::actor(caller.principal()),
            &meta,
            "workspace.create",
            ws.id,
            SUCCESS,
            json!({"name": name}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(WorkspaceView::new(&ws, Role::Owner)),
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid)),
    responses((status = 200, body = WorkspaceView), (status = 404, body = crate::error::Problem)))]
pub async fn get(State(state): State<AppState>, ws: InWorkspace) -> ApiResult<Json<WorkspaceView>> {
    let w = state.store.workspaces().get(&ws.scope).await?;
    Ok(Json(WorkspaceView::new(&w, ws.scope.role())))
}

/// Renames a workspace or changes whether it requires MFA (capability settings.manage).
#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace_id}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid)), request_body = WorkspacePatch,
    responses((status = 200, body = WorkspaceView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ws: InWorkspace,
    ApiJson(input): ApiJson<WorkspacePatch>,
) -> ApiResult<Json<WorkspaceView>> {
    let name = input
        .name
        .as_deref()
        .map(|n| validate::display_name("name", n))
        .transpose()?;
    if input.require_mfa == Some(true) && !caller.mfa() {
        return Err(ApiError::MfaRequired);
    }
    let w = state
        .store
        .workspaces()
        .update(&ws.scope, name.as_deref(), input.require_mfa)
        .await?;
    if input.require_mfa.is_some() {
        // The cached grants carry the setting; a change must hold from the next request.
        state.directory.forget_everything();
    }
    let mut changed = serde_json::Map::new();
    if let Some(n) = &name {
        changed.insert("name".into(), json!(n));
    }
    if let Some(r) = input.require_mfa {
        changed.insert("require_mfa".into(), json!(r));
    }
    state
        .audit(events::event(
            w.id,
            events::actor(caller.principal()),
            &meta,
            "workspace.update",
            w.id,
            SUCCESS,
            serde_json::Value::Object(changed),
        ))
        .await;
    Ok(Json(WorkspaceView::new(&w, ws.scope.role())))
}

/// Deletes a workspace and everything in it (workspace owners only).
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ws: InWorkspace,
) -> ApiResult<StatusCode> {
    let gone = state.store.workspaces().delete(&ws.scope).await?;
    state.directory.forget_everything();
    let id = ws.scope.workspace_id();
    state
        .audit(events::event(
            id,
            events::actor(caller.principal()),
            &meta,
            "workspace.delete",
            id,
            SUCCESS,
            json!({"assistants": gone.len()}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The assistants of a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/assistants", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [AssistantView]), (status = 404, body = crate::error::Problem)))]
pub async fn list_assistants(
    State(state): State<AppState>,
    ws: InWorkspace,
) -> ApiResult<Json<Vec<AssistantView>>> {
    let rows = state
        .store
        .assistants()
        .list_in_workspace(&ws.scope)
        .await?;
    Ok(Json(rows.iter().map(AssistantView::from).collect()))
}

/// Creates an assistant in the workspace, with the caller as its first owner.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/assistants", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid)), request_body = AssistantInput,
    responses((status = 201, body = AssistantView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn create_assistant(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ws: InWorkspace,
    ApiJson(input): ApiJson<AssistantInput>,
) -> ApiResult<(StatusCode, Json<AssistantView>)> {
    let slug = validate::slug(&input.slug)?;
    let name = validate::display_name("name", &input.name)?;
    let description = validate::description(&input.description)?;
    let a = state
        .store
        .assistants()
        .create(&ws.scope, &slug, &name, &description)
        .await?;
    state.directory.forget_assistant(a.id, &[&a.slug]);
    state
        .audit(events::event(
            a.workspace_id,
            events::actor(caller.principal()),
            &meta,
            "assistant.create",
            a.id,
            SUCCESS,
            json!({"slug": slug}),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(AssistantView::from(&a))))
}
