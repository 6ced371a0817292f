//! The signed-in user: who they are and what they may do where.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, SUCCESS};
use crate::flow::{Caller, Meta};
use crate::json::ApiJson;
use crate::routes::views::{DeleteAccountRequest, UserView};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_auth::password;
use bastion_core::{Capability, Role};
use bastion_store::audit::PLATFORM_CHAIN;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct MeWorkspace {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub role: Role,
    pub capabilities: Vec<Capability>,
}

#[derive(Serialize, ToSchema)]
pub struct MeAssistant {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub workspace_id: String,
    pub slug: String,
    pub name: String,
    /// A built-in role or the name of one of the assistant's custom roles.
    pub role: String,
    /// What this user may do on this assistant: the Control UI shows only these.
    pub capabilities: Vec<Capability>,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: UserView,
    pub workspaces: Vec<MeWorkspace>,
    pub assistants: Vec<MeAssistant>,
}

/// The signed-in user and, per workspace and assistant, their role and capabilities.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = crate::error::Problem)))]
pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    let workspaces = state
        .store
        .workspaces()
        .list_for_user(caller.user.id)
        .await?;
    let assistants = state
        .store
        .assistants()
        .list_for_user(caller.user.id)
        .await?;
    Ok(Json(Me {
        user: UserView::from(caller.user.as_ref()),
        workspaces: workspaces
            .iter()
            .map(|(w, role)| MeWorkspace {
                id: w.id.to_string(),
                name: w.name.clone(),
                role: *role,
                capabilities: role.capabilities().to_vec(),
            })
            .collect(),
        assistants: assistants
            .iter()
            .map(|(a, role)| MeAssistant {
                id: a.id.to_string(),
                workspace_id: a.workspace_id.to_string(),
                slug: a.slug.clone(),
                name: a.name.clone(),
                role: role.name().to_string(),
                capabilities: role.capabilities().to_vec(),
            })
            .collect(),
    }))
}

/// Deletes the signed-in user's account, confirmed by password. Refused while they are the
/// last owner of an assistant or workspace. Their tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/me", tag = "me", security(("bearer" = [])), request_body = DeleteAccountRequest,
    responses((status = 204), (status = 401, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    ApiJson(req): ApiJson<DeleteAccountRequest>,
) -> ApiResult<StatusCode> {
    let stored = state.store.users().password_hash(caller.user.id).await?;
    let ok = password::verify(SecretString::from(req.password), stored)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !ok {
        return Err(ApiError::InvalidCredentials);
    }
    state.store.users().delete(caller.user.id).await?;
    state.directory.forget_everything();
    state
        .audit(events::event(
            PLATFORM_CHAIN,
            events::actor(caller.principal()),
            &meta,
            "user.delete",
            caller.user.id,
            SUCCESS,
            json!({}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
