//! Model calls as stored: the persistent form of each call's trace span, written in batches
//! by the server's recorder, read per conversation by whoever holds `traces.read`.

use crate::scope::AssistantScope;
use crate::{row, Backend, Result, Store};
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

/// Rows per INSERT: 18 parameters each, well under SQLite's and PostgreSQL's limits.
const ROWS_PER_INSERT: usize = 64;
const PARAMS_PER_ROW: usize = 18;

/// `INSERT … SELECT` of `rows` rows of parameters, skipping a row whose conversation was
/// deleted while it waited to be written (`column3` is the conversation id; VALUES names its
/// columns so in both SQLite and PostgreSQL).
///
/// SQLite gets anonymous `?` parameters: a numbered one is looked up by name on every bind
/// (`sqlite3_bind_parameter_name` scans them all), which is quadratic in their number.
fn insert_sql(backend: Backend, rows: usize) -> String {
    let mut values = String::with_capacity(rows * PARAMS_PER_ROW * 5);
    for r in 0..rows {
        values.push_str(if r == 0 { "(" } else { ", (" });
        for p in 0..PARAMS_PER_ROW {
            if p > 0 {
                values.push_str(", ");
            }
            match backend {
                Backend::Sqlite => values.push('?'),
                Backend::Postgres => {
                    values.push_str(&format!("${}", r * PARAMS_PER_ROW + p + 1));
                }
            }
        }
        values.push(')');
    }
    format!(
        "INSERT INTO llm_calls ({COLUMNS}) SELECT * FROM (VALUES {values}) AS v \
         WHERE v.column3 IS NULL OR EXISTS (SELECT 1 FROM conversations WHERE id = v.column3)"
    )
}

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
        // Rows go in many to a statement: each statement is a round trip to the database
        // (for SQLite, to its worker thread), and a busy proxy records thousands a second.
        let mut tx = crate::begin(&self.store.pool).await?;
        for chunk in calls.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(self.store.backend(), chunk.len());
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q
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
                    .bind(c.created_at);
            }
            q.execute(&mut *tx).await?;
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

    /// The scoped assistant's model calls since `since_ms`: how many, how many failed, and
    /// in how many conversations (the overview's "today").
    pub async fn summary_since(&self, scope: &AssistantScope, since_ms: i64) -> Result<Summary> {
        let (calls, errors, conversations): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END), 0), \
             COUNT(DISTINCT conversation_id) \
             FROM llm_calls WHERE assistant_id = $1 AND created_at >= $2",
        )
        .bind(scope.assistant_id().to_string())
        .bind(since_ms)
        .fetch_one(&self.store.pool)
        .await?;
        Ok(Summary {
            calls,
            errors,
            conversations,
        })
    }
}

/// Counts of model calls over a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub calls: i64,
    pub errors: i64,
    pub conversations: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_both_engines;
    use bastion_core::Access;

    fn call(assistant: AssistantId, conversation: Option<ConversationId>, n: i64) -> LlmCall {
        LlmCall {
            id: LlmCallId::new(),
            assistant_id: assistant,
            conversation_id: conversation,
            message_id: None,
            principal: "key:k".into(),
            provider: "openai".into(),
            model: "m".into(),
            provider_key_id: None,
            input_tokens: n,
            output_tokens: 2 * n,
            cost_micros: (n % 2 == 0).then_some(n * 10),
            latency_ms: n,
            ttft_ms: None,
            finish_reason: Some("stop".into()),
            error: None,
            prompt: format!("prompt {n}"),
            completion: format!("completion {n}"),
            created_at: 1_000 + n,
        }
    }

    /// A batch larger than one statement goes in whole and in order, with every field as
    /// given; a call of a conversation deleted meanwhile is skipped, not an error.
    async fn batches_span_statements_and_skip_deleted_conversations(store: &Store) {
        let owner = store
            .users()
            .create("o@x.test", "hash", false)
            .await
            .unwrap();
        let ws = store.workspaces().create("ws", owner.id).await.unwrap();
        let ws_scope = store
            .workspaces()
            .grant(owner.id, ws.id)
            .await
            .unwrap()
            .unwrap()
            .authorize(Access::WorkspaceMember)
            .unwrap();
        let a = store
            .assistants()
            .create(&ws_scope, "asst", "Assistant", "")
            .await
            .unwrap();
        let scope = store
            .memberships()
            .grant(owner.id, a.id)
            .await
            .unwrap()
            .unwrap()
            .authorize(Access::AssistantMember)
            .unwrap();
        let kept = store.conversations().create(&scope, "kept").await.unwrap();
        let gone = store.conversations().create(&scope, "gone").await.unwrap();
        store.conversations().delete(&scope, gone.id).await.unwrap();

        let n = ROWS_PER_INSERT as i64 * 2 + 3;
        let mut batch: Vec<LlmCall> = (0..n).map(|i| call(a.id, Some(kept.id), i)).collect();
        batch.push(call(a.id, Some(gone.id), n));
        batch.push(call(a.id, None, n + 1));
        store.llm_calls().insert_batch(&batch).await.unwrap();

        let stored = store
            .llm_calls()
            .of_conversation(&scope, kept.id)
            .await
            .unwrap();
        assert_eq!(stored, batch[..n as usize].to_vec());
        assert!(store
            .llm_calls()
            .of_conversation(&scope, gone.id)
            .await
            .unwrap()
            .is_empty());

        // Since the 4th call: the failed one and the one without a conversation count.
        let mut failed = call(a.id, Some(kept.id), n + 2);
        failed.error = Some("provider".into());
        store.llm_calls().insert_batch(&[failed]).await.unwrap();
        let since = store
            .llm_calls()
            .summary_since(&scope, 1_000 + n - 3)
            .await
            .unwrap();
        assert_eq!(
            since,
            Summary {
                calls: 5,
                errors: 1,
                conversations: 1
            }
        );
    }

    on_both_engines!(batches_span_statements_and_skip_deleted_conversations);
}
