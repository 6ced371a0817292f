//! An assistant's model settings (capability settings.manage): system prompt, provider key,
//! model, temperature and token limits. The provider key must be one of the assistant's
//! workspace's and not revoked.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, SUCCESS};
use crate::flow::{Actor, InAssistant, Meta};
use crate::json::ApiJson;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use bastion_core::ProviderKeyId;
use bastion_store::assistant_settings::AssistantSettings;
use bastion_store::provider_keys::KeyStatus;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

const MAX_PROMPT_CHARS: usize = 32_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// What the assistant is told before every conversation (up to 32,000 characters).
    #[serde(default)]
    pub system_prompt: String,
    /// A provider key of the assistant's workspace. When it is no longer active, calls use
    /// the newest active key of the same provider and base URL.
    #[schema(format = Uuid)]
    pub provider_key_id: Option<String>,
    /// The provider's model name, e.g. `gpt-4o-mini` or `claude-sonnet-4-5`.
    #[serde(default)]
    pub model: String,
    /// 0 to 2; left out, the provider's default.
    pub temperature: Option<f64>,
    /// Most tokens in one reply (1 to 200,000; default 1,024).
    pub max_reply_tokens: Option<i64>,
    /// The model's context window in tokens: history is trimmed to fit (default 16,000).
    pub context_tokens: Option<i64>,
    /// Most tokens (in and out) in one conversation; none: unlimited.
    pub max_conversation_tokens: Option<i64>,
    /// Most tokens (in and out) one user may use per UTC day; none: unlimited.
    pub max_daily_tokens_per_user: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SettingsView {
    pub system_prompt: String,
    #[schema(format = Uuid)]
    pub provider_key_id: Option<String>,
    pub model: String,
    pub temperature: Option<f64>,
    pub max_reply_tokens: i64,
    pub context_tokens: i64,
    pub max_conversation_tokens: Option<i64>,
    pub max_daily_tokens_per_user: Option<i64>,
    /// RFC 3339; absent while the assistant has never been configured.
    pub updated_at: Option<String>,
}

impl From<&AssistantSettings> for SettingsView {
    fn from(s: &AssistantSettings) -> Self {
        SettingsView {
            system_prompt: s.system_prompt.clone(),
            provider_key_id: s.provider_key_id.map(|k| k.to_string()),
            model: s.model.clone(),
            temperature: s.temperature_milli.map(|t| t as f64 / 1000.0),
            max_reply_tokens: s.max_reply_tokens,
            context_tokens: s.context_tokens,
            max_conversation_tokens: s.max_conversation_tokens,
            max_daily_tokens_per_user: s.max_daily_tokens_per_user,
            updated_at: (s.updated_at > 0).then(|| rfc3339(s.updated_at)),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/settings", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = SettingsView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn get(State(state): State<AppState>, at: InAssistant) -> ApiResult<Json<SettingsView>> {
    let s = state
        .store
        .assistant_settings()
        .get(at.scope.assistant_id())
        .await?;
    Ok(Json(SettingsView::from(&s)))
}

fn positive(field: &str, v: Option<i64>, max: i64) -> ApiResult<Option<i64>> {
    match v {
        Some(n) if !(1..=max).contains(&n) => Err(ApiError::Unprocessable(format!(
            "{field}: between 1 and {max}"
        ))),
        other => Ok(other),
    }
}

/// Replaces the settings (fields left out take their defaults).
#[utoipa::path(put, path = "/api/v1/assistants/{assistant_id}/settings", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = SettingsInput,
    responses((status = 200, body = SettingsView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn put(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ApiJson(input): ApiJson<SettingsInput>,
) -> ApiResult<Json<SettingsView>> {
    if input.system_prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(ApiError::Unprocessable(format!(
            "system_prompt: at most {MAX_PROMPT_CHARS} characters"
        )));
    }
    let model = input.model.trim();
    if model.len() > 200 || model.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::Unprocessable(
            "model: a provider's model name, up to 200 characters without spaces".into(),
        ));
    }
    let provider_key_id = match input.provider_key_id.as_deref() {
        None => None,
        Some(raw) => {
            let id: ProviderKeyId = raw.parse().map_err(|_| {
                ApiError::Unprocessable("provider_key_id: a provider key's id".into())
            })?;
            // Another workspace's key is as unknown as a made-up id.
            let key = state
                .store
                .provider_keys()
                .in_assistant_workspace(&at.scope, id)
                .await
                .map_err(|_| {
                    ApiError::Unprocessable(
                        "provider_key_id: no such provider key in this assistant's workspace"
                            .into(),
                    )
                })?;
            if key.status == KeyStatus::Revoked {
                return Err(ApiError::Unprocessable(
                    "provider_key_id: that key is revoked".into(),
                ));
            }
            Some(id)
        }
    };
    let temperature_milli = match input.temperature {
        Some(t) if !(0.0..=2.0).contains(&t) => {
            return Err(ApiError::Unprocessable(
                "temperature: between 0 and 2".into(),
            ))
        }
        Some(t) => Some((t * 1000.0).round() as i64),
        None => None,
    };
    let defaults = AssistantSettings::default();
    let settings = AssistantSettings {
        system_prompt: input.system_prompt,
        provider_key_id,
        model: model.to_string(),
        temperature_milli,
        max_reply_tokens: positive("max_reply_tokens", input.max_reply_tokens, 200_000)?
            .unwrap_or(defaults.max_reply_tokens),
        context_tokens: positive("context_tokens", input.context_tokens, 10_000_000)?
            .unwrap_or(defaults.context_tokens),
        max_conversation_tokens: positive(
            "max_conversation_tokens",
            input.max_conversation_tokens,
            i64::MAX / 4,
        )?,
        max_daily_tokens_per_user: positive(
            "max_daily_tokens_per_user",
            input.max_daily_tokens_per_user,
            i64::MAX / 4,
        )?,
        updated_at: 0,
    };
    if settings.max_reply_tokens >= settings.context_tokens {
        return Err(ApiError::Unprocessable(
            "max_reply_tokens: must be smaller than context_tokens".into(),
        ));
    }
    let saved = state
        .store
        .assistant_settings()
        .put(&at.scope, &settings)
        .await?;
    state.chat.routes.forget(at.scope.assistant_id());
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "assistant.settings",
            SUCCESS,
            json!({"model": saved.model, "provider_key_id": saved.provider_key_id.map(|k| k.to_string())}),
        ))
        .await;
    Ok(Json(SettingsView::from(&saved)))
}
