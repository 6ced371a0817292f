//! Assistants: read, change, delete.

use crate::error::ApiResult;
use crate::events::{self, SUCCESS};
use crate::flow::{Actor, Caller, InAssistant, Meta};
use crate::json::ApiJson;
use crate::routes::views::AssistantView;
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::Capability;
use bastion_store::assistants::AssistantPatch;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantUpdate {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MyAssistant {
    #[serde(flatten)]
    pub assistant: AssistantView,
    /// A built-in role or the name of a custom role.
    pub role: String,
    pub capabilities: Vec<Capability>,
}

/// The assistants the caller is a member of, with their role in each.
#[utoipa::path(get, path = "/api/v1/assistants", tag = "assistants", security(("bearer" = [])),
    responses((status = 200, body = [MyAssistant]), (status = 401, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<MyAssistant>>> {
    let rows = state
        .store
        .assistants()
        .list_for_user(caller.user.id)
        .await?;
    Ok(Json(
        rows.iter()
            .map(|(a, role)| MyAssistant {
                assistant: AssistantView::from(a),
                role: role.name().to_string(),
                capabilities: role.capabilities().to_vec(),
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}", tag = "assistants", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = AssistantView), (status = 404, body = crate::error::Problem)))]
pub async fn get(at: InAssistant) -> Json<AssistantView> {
    Json(AssistantView::from(at.assistant.as_ref()))
}

/// Changes an assistant's slug, name or description (capability settings.manage).
#[utoipa::path(patch, path = "/api/v1/assistants/{assistant_id}", tag = "assistants", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = AssistantUpdate,
    responses((status = 200, body = AssistantView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ApiJson(input): ApiJson<AssistantUpdate>,
) -> ApiResult<Json<AssistantView>> {
    let patch = AssistantPatch {
        slug: input.slug.as_deref().map(validate::slug).transpose()?,
        name: input
            .name
            .as_deref()
            .map(|n| validate::display_name("name", n))
            .transpose()?,
        description: input
            .description
            .as_deref()
            .map(validate::description)
            .transpose()?,
    };
    let changed =
        json!({"slug": patch.slug, "name": patch.name, "description": patch.description.is_some()});
    let a = state.store.assistants().update(&at.scope, patch).await?;
    state
        .directory
        .forget_assistant(a.id, &[&at.assistant.slug, &a.slug]);
    state
        .audit(events::event(
            a.workspace_id,
            events::actor(actor.0),
            &meta,
            "assistant.update",
            a.id,
            SUCCESS,
            changed,
        ))
        .await;
    Ok(Json(AssistantView::from(&a)))
}

/// Deletes an assistant with its members, domains and invitations (owners only).
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}", tag = "assistants", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
) -> ApiResult<StatusCode> {
    state.store.assistants().delete(&at.scope).await?;
    state.directory.forget_everything();
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "assistant.delete",
            SUCCESS,
            json!({"slug": at.assistant.slug}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
