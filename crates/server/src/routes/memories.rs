//! What a user asked an assistant to remember (`…/memories`, capability chat): their own
//! facts only, listed, added and deleted; every conversation's prompt carries them.

use crate::error::{ApiError, ApiResult, Problem};
use crate::flow::{InAssistant, ItemParam};
use crate::json::ApiJson;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::MemoryId;
use bastion_store::memories::Memory;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const MAX_FACT_CHARS: usize = 1_000;

#[derive(Serialize, ToSchema)]
pub struct MemoryView {
    #[schema(format = Uuid)]
    pub id: String,
    pub content: String,
    pub created_at: String,
}

impl From<&Memory> for MemoryView {
    fn from(m: &Memory) -> Self {
        MemoryView {
            id: m.id.to_string(),
            content: m.content.clone(),
            created_at: rfc3339(m.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryCreate {
    /// The fact, 1 to 1,000 characters.
    pub content: String,
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/memories", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [MemoryView]), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<MemoryView>>> {
    let list = state.store.memories().list(&at.scope).await?;
    Ok(Json(list.iter().map(MemoryView::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/memories", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = MemoryCreate,
    responses((status = 201, body = MemoryView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add(
    State(state): State<AppState>,
    at: InAssistant,
    ApiJson(input): ApiJson<MemoryCreate>,
) -> ApiResult<(StatusCode, Json<MemoryView>)> {
    let fact = input.content.trim();
    if fact.is_empty() || fact.chars().count() > MAX_FACT_CHARS {
        return Err(ApiError::Unprocessable(format!(
            "content: 1 to {MAX_FACT_CHARS} characters"
        )));
    }
    let m = state.store.memories().add(&at.scope, fact).await?;
    Ok((StatusCode::CREATED, Json(MemoryView::from(&m))))
}

#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/memories/{memory_id}", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("memory_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    at: InAssistant,
    ItemParam(id): ItemParam<MemoryId>,
) -> ApiResult<StatusCode> {
    state.store.memories().delete(&at.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
