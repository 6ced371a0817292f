//! Model calls as stored: the persistent form of each call's trace span, written in batches
//! by the server's recorder, read per conversation by whoever holds `traces.read`.

use crate::scope::AssistantScope;
use crate::{row, Result, Store};
use bastion_core::{AssistantId, ConversationId, LlmCallId, MessageId, ProviderKeyId};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    pub id: LlmCallId,
    pub assistant_id: AssistantId,
    pub conversation_id: Option<ConversationId>,
    pub message_id: Option<MessageId>,
    /// `user:<id>` or `key:<id>`.
    pub principal: String,
    pub provider: String,
    pub model: String,
    pub provider_key_id: Option<ProviderKeyId>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: Option<i64>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub finish_reason: Option<String>,
    /// The error kind when the call failed (never a provider's raw answer).
    pub error: Option<String>,
    /// The messages sent, as JSON; empty outside a conversation.
    pub prompt: String,
    pub completion: String,
    pub created_at: i64,
}

pub struct LlmCalls<'a> {
    pub(crate) store: &'a Store,
}

const COLUMNS: &str = "id, assistant_id, conversation_id, message_id, principal, provider, model, \
    provider_key_id, input_tokens, output_tokens, cost_micros, latency_ms, ttft_ms, finish_reason, \
    error, prompt, completion, created_at";

fn opt_id<T: std::str::FromStr>(r: &AnyRow, col: &str) -> Result<Option<T>> {
    let v: Option<String> = r.try_get(col)?;
    match v {
        Some(_) => Ok(Some(row::id(r, col)?)),
        None => Ok(None),
    }
}

fn llm_call(r: &AnyRow) -> Result<LlmCall> {
    Ok(LlmCall {
        id: row::id(r, "id")?,
        assistant_id: row::id(r, "assistant_id")?,
        conversation_id: opt_id(r, "conversation_id")?,
        message_id: opt_id(r, "message_id")?,
        principal: r.try_get("principal")?,
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        provider_key_id: opt_id(r, "provider_key_id")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        cost_micros: r.try_get("cost_micros")?,
        latency_ms: r.try_get("latency_ms")?,
        ttft_ms: r.try_get("ttft_ms")?,
        finish_reason: r.try_get("finish_reason")?,
        error: r.try_get("error")?,
        prompt: r.try_get("prompt")?,
        completion: r.try_get("completion")?,
        created_at: r.try_get("created_at")?,
    })
}

impl LlmCalls<'_> {
    /// Stores a batch in one transaction. A call of a conversation deleted meanwhile is
    /// dropped with it rather than failing the batch.
    pub async fn insert_batch(&self, calls: &[LlmCall]) -> Result<()> {
        let mut tx = self.store.pool.begin().await?;
        for c in calls {
            sqlx::query(&format!(
                "INSERT INTO llm_calls ({COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                 $11, $12, $13, $14, $15, $16, $17, $18 \
                 WHERE $3 IS NULL OR EXISTS (SELECT 1 FROM conversations WHERE id = $3)"
            ))
            .bind(c.id.to_string())
            .bind(c.assistant_id.to_string())
            .bind(c.conversation_id.map(|x| x.to_string()))
            .bind(c.message_id.map(|x| x.to_string()))
            .bind(&c.principal)
            .bind(&c.provider)
            .bind(&c.model)
            .bind(c.provider_key_id.map(|x| x.to_string()))
            .bind(c.input_tokens)
            .bind(c.output_tokens)
            .bind(c.cost_micros)
            .bind(c.latency_ms)
            .bind(c.ttft_ms)
            .bind(c.finish_reason.clone())
            .bind(c.error.clone())
            .bind(&c.prompt)
            .bind(&c.completion)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The calls of one conversation of the scoped assistant, oldest first.
    pub async fn of_conversation(
        &self,
        scope: &AssistantScope,
        conversation: ConversationId,
    ) -> Result<Vec<LlmCall>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM llm_calls WHERE conversation_id = $1 AND assistant_id = $2 \
             ORDER BY created_at, id"
        ))
        .bind(conversation.to_string())
        .bind(scope.assistant_id().to_string())
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter().map(llm_call).collect()
    }

    /// How many calls the scoped assistant made (all time), for tests and the overview.
    pub async fn count(&self, scope: &AssistantScope) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM llm_calls WHERE assistant_id = $1")
            .bind(scope.assistant_id().to_string())
            .fetch_one(&self.store.pool)
            .await?;
        Ok(n)
    }
}
