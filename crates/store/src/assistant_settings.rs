//! How an assistant answers: its system prompt, the provider key and model it calls, and the
//! limits every conversation with it runs under. An assistant that was never configured has
//! the defaults and no provider key, so it cannot answer until someone configures it.

use crate::scope::AssistantScope;
use crate::{now_ms, row, Result};
use bastion_core::{AssistantId, ProviderKeyId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct AssistantSettings {
    pub system_prompt: String,
    pub provider_key_id: Option<ProviderKeyId>,
    pub model: String,
    /// Sampling temperature in thousandths (700 = 0.7); `None` leaves the provider's default.
    pub temperature_milli: Option<i64>,
    pub max_reply_tokens: i64,
    /// The model's context budget: history is trimmed to fit it.
    pub context_tokens: i64,
    pub max_conversation_tokens: Option<i64>,
    pub max_daily_tokens_per_user: Option<i64>,
    pub updated_at: i64,
}

impl Default for AssistantSettings {
    fn default() -> Self {
        AssistantSettings {
            system_prompt: String::new(),
            provider_key_id: None,
            model: String::new(),
            temperature_milli: None,
            max_reply_tokens: 1024,
            context_tokens: 16_000,
            max_conversation_tokens: None,
            max_daily_tokens_per_user: None,
            updated_at: 0,
        }
    }
}

pub struct Settings<'a> {
    pub(crate) pool: &'a AnyPool,
}

const COLUMNS: &str = "system_prompt, provider_key_id, model, temperature_milli, \
    max_reply_tokens, context_tokens, max_conversation_tokens, max_daily_tokens_per_user, updated_at";

fn settings(r: &AnyRow) -> Result<AssistantSettings> {
    let key: Option<String> = r.try_get("provider_key_id")?;
    Ok(AssistantSettings {
        system_prompt: r.try_get("system_prompt")?,
        provider_key_id: match key {
            Some(_) => Some(row::id(r, "provider_key_id")?),
            None => None,
        },
        model: r.try_get("model")?,
        temperature_milli: r.try_get("temperature_milli")?,
        max_reply_tokens: r.try_get("max_reply_tokens")?,
        context_tokens: r.try_get("context_tokens")?,
        max_conversation_tokens: r.try_get("max_conversation_tokens")?,
        max_daily_tokens_per_user: r.try_get("max_daily_tokens_per_user")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Settings<'_> {
    /// The settings of `assistant` (the defaults if never set). Unscoped: the runtime reads
    /// them for an assistant the request flow already resolved and authorized.
    pub async fn get(&self, assistant: AssistantId) -> Result<AssistantSettings> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM assistant_settings WHERE assistant_id = $1"
        ))
        .bind(assistant.to_string())
        .fetch_optional(self.pool)
        .await?;
        match r {
            Some(r) => settings(&r),
            None => Ok(AssistantSettings::default()),
        }
    }

    /// Replaces the scoped assistant's settings. The handler has checked that the provider
    /// key belongs to the assistant's workspace.
    pub async fn put(
        &self,
        scope: &AssistantScope,
        s: &AssistantSettings,
    ) -> Result<AssistantSettings> {
        let mut s = s.clone();
        s.updated_at = now_ms();
        sqlx::query(&format!(
            "INSERT INTO assistant_settings (assistant_id, {COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (assistant_id) DO UPDATE SET system_prompt = excluded.system_prompt, \
             provider_key_id = excluded.provider_key_id, model = excluded.model, \
             temperature_milli = excluded.temperature_milli, \
             max_reply_tokens = excluded.max_reply_tokens, context_tokens = excluded.context_tokens, \
             max_conversation_tokens = excluded.max_conversation_tokens, \
             max_daily_tokens_per_user = excluded.max_daily_tokens_per_user, \
             updated_at = excluded.updated_at"
        ))
        .bind(scope.assistant_id().to_string())
        .bind(&s.system_prompt)
        .bind(s.provider_key_id.map(|k| k.to_string()))
        .bind(&s.model)
        .bind(s.temperature_milli)
        .bind(s.max_reply_tokens)
        .bind(s.context_tokens)
        .bind(s.max_conversation_tokens)
        .bind(s.max_daily_tokens_per_user)
        .bind(s.updated_at)
        .execute(self.pool)
        .await?;
        Ok(s)
    }
}
