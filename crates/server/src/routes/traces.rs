//! A conversation's model calls (capability traces.read): model, tokens, cost, latency, time
//! to first token, finish reason or error. What was sent and answered is shown only to a
//! caller who may read the conversation itself; others see it redacted.

use crate::error::{ApiResult, Problem};
use crate::flow::{InAssistant, PathParams};
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use bastion_core::ConversationId;
use bastion_store::llm_calls::LlmCall;
use bastion_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct TraceView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub message_id: Option<String>,
    pub principal: String,
    /// `gen_ai.system`: openai, anthropic or openai-compatible.
    pub provider: String,
    pub model: String,
    #[schema(format = Uuid)]
    pub provider_key_id: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Option<f64>,
    pub latency_ms: i64,
    pub time_to_first_token_ms: Option<i64>,
    pub finish_reason: Option<String>,
    pub error: Option<String>,
    /// The messages sent, as JSON; absent when redacted.
    pub prompt: Option<serde_json::Value>,
    /// The answer; absent when redacted.
    pub completion: Option<String>,
    /// The contents are withheld: the caller may not read this conversation.
    pub redacted: bool,
    pub created_at: String,
}

fn view(c: &LlmCall, readable: bool) -> TraceView {
    TraceView {
        id: c.id.to_string(),
        message_id: c.message_id.map(|m| m.to_string()),
        principal: c.principal.clone(),
        provider: c.provider.clone(),
        model: c.model.clone(),
        provider_key_id: c.provider_key_id.map(|k| k.to_string()),
        input_tokens: c.input_tokens,
        output_tokens: c.output_tokens,
        cost_usd: c.cost_micros.map(crate::validate::micros_usd),
        latency_ms: c.latency_ms,
        time_to_first_token_ms: c.ttft_ms,
        finish_reason: c.finish_reason.clone(),
        error: c.error.clone(),
        prompt: readable.then(|| serde_json::from_str(&c.prompt).unwrap_or_default()),
        completion: readable.then(|| c.completion.clone()),
        redacted: !readable,
        created_at: rfc3339(c.created_at),
    }
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/traces", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("conversation_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [TraceView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
    params: PathParams,
) -> ApiResult<Json<Vec<TraceView>>> {
    let id: ConversationId = params.id("conversation_id")?;
    let conversations = state.store.conversations();
    if !conversations.exists(&at.scope, id).await? {
        return Err(crate::error::ApiError::NotFound);
    }
    let readable = match conversations.visible(&at.scope, id).await {
        Ok(_) => true,
        Err(StoreError::NotFound) => false,
        Err(e) => return Err(e.into()),
    };
    let calls = state
        .store
        .llm_calls()
        .of_conversation(&at.scope, id)
        .await?;
    Ok(Json(calls.iter().map(|c| view(c, readable)).collect()))
}
