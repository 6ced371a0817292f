//! Feedback on answers: the author of a conversation rates an assistant message up or down
//! with an optional comment (capability chat); holders of feedback.read list it and see the
//! counts.

use crate::error::{ApiError, ApiResult, Problem};
use crate::flow::{InAssistant, PathParams};
use crate::json::ApiJson;
use crate::json::ApiQuery;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use bastion_store::conversations::MessageRole;
use bastion_store::feedback::Feedback;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    pub rating: Rating,
    /// Up to 2,000 characters.
    #[serde(default)]
    pub comment: String,
}

#[derive(Serialize, ToSchema)]
pub struct FeedbackView {
    #[schema(format = Uuid)]
    pub message_id: String,
    #[schema(format = Uuid)]
    pub conversation_id: String,
    pub principal: String,
    pub rating: Rating,
    pub comment: String,
    pub created_at: String,
}

impl From<&Feedback> for FeedbackView {
    fn from(f: &Feedback) -> Self {
        FeedbackView {
            message_id: f.message_id.to_string(),
            conversation_id: f.conversation_id.to_string(),
            principal: f.principal.clone(),
            rating: if f.rating > 0 {
                Rating::Up
            } else {
                Rating::Down
            },
            comment: f.comment.clone(),
            created_at: rfc3339(f.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FeedbackSummary {
    pub up: i64,
    pub down: i64,
    pub items: Vec<FeedbackView>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct FeedbackQuery {
    /// At most this many items, newest first (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// Rates an answer in one of the caller's conversations; rating again replaces it.
#[utoipa::path(put, path = "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/messages/{message_id}/feedback", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("conversation_id" = String, Path, format = Uuid), ("message_id" = String, Path, format = Uuid)),
    request_body = FeedbackInput,
    responses((status = 200, body = FeedbackView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put(
    State(state): State<AppState>,
    at: InAssistant,
    params: PathParams,
    ApiJson(input): ApiJson<FeedbackInput>,
) -> ApiResult<Json<FeedbackView>> {
    let conversation = params.id("conversation_id")?;
    let message = params.id("message_id")?;
    if input.comment.chars().count() > 2_000 {
        return Err(ApiError::Unprocessable(
            "comment: at most 2,000 characters".into(),
        ));
    }
    let repo = state.store.conversations();
    let c = repo.own(&at.scope, conversation).await?;
    let m = repo.message(&c, message).await?;
    if m.role != MessageRole::Assistant {
        return Err(ApiError::Unprocessable(
            "feedback is about the assistant's answers, not your own messages".into(),
        ));
    }
    let rating = if input.rating == Rating::Up { 1 } else { -1 };
    let f = state
        .store
        .feedback()
        .put(&at.scope, &c, m.id, rating, input.comment.trim())
        .await?;
    metrics::counter!("bastion_feedback_total", "rating" => if rating > 0 { "up" } else { "down" })
        .increment(1);
    Ok(Json(FeedbackView::from(&f)))
}

/// The assistant's feedback: counts of up and down, and the newest items.
#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/feedback", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), FeedbackQuery),
    responses((status = 200, body = FeedbackSummary), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
    ApiQuery(q): ApiQuery<FeedbackQuery>,
) -> ApiResult<Json<FeedbackSummary>> {
    let repo = state.store.feedback();
    let counts = repo.counts(&at.scope).await?;
    let items = repo
        .list(&at.scope, q.limit.unwrap_or(100).clamp(1, 500))
        .await?;
    Ok(Json(FeedbackSummary {
        up: counts.up,
        down: counts.down,
        items: items.iter().map(FeedbackView::from).collect(),
    }))
}
