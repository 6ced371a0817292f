//! Conversations and their messages. A conversation belongs to the principal that started it
//! (a user or an API key); others reach it only when their scope holds
//! `conversations.read_all`. Writes of the runtime (a message growing as the model answers)
//! go through the same scope checks: the handler first proves the conversation is the
//! caller's own with [`Conversations::own`].

use crate::scope::AssistantScope;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{ApiKeyId, Capability, ConversationId, MessageId, Principal, UserId};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    pub assistant_id: bastion_core::AssistantId,
    pub owner: Principal,
    pub title: String,
    /// Tokens in and out of every model call in it, for the per-conversation limit.
    pub tokens_used: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
}

impl MessageRole {
    fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Fully written.
    Complete,
    /// An answer being written as the model streams it.
    Streaming,
    /// An answer cut short by a crash or restart: what was written is what the user saw.
    Interrupted,
    /// An answer the model call failed to produce (the content holds what arrived before).
    Failed,
}

impl MessageStatus {
    fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Interrupted => "interrupted",
            MessageStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<MessageStatus> {
        [
            MessageStatus::Complete,
            MessageStatus::Streaming,
            MessageStatus::Interrupted,
            MessageStatus::Failed,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct Conversations<'a> {
    pub(crate) pool: &'a AnyPool,
}

const COLUMNS: &str =
    "id, assistant_id, user_id, api_key_id, title, tokens_used, created_at, updated_at";
const MESSAGE_COLUMNS: &str =
    "id, conversation_id, role, content, status, input_tokens, output_tokens, created_at, updated_at";

fn conversation(r: &AnyRow) -> Result<Conversation> {
    let user: Option<String> = r.try_get("user_id")?;
    let key: Option<String> = r.try_get("api_key_id")?;
    let owner = match (user, key) {
        (Some(u), None) => Principal::User(
            u.parse::<UserId>()
                .map_err(|_| StoreError::Corrupt("conversations.user_id".into()))?,
        ),
        (None, Some(k)) => Principal::ApiKey(
            k.parse::<ApiKeyId>()
                .map_err(|_| StoreError::Corrupt("conversations.api_key_id".into()))?,
        ),
        _ => {
            return Err(StoreError::Corrupt(
                "a conversation without one owner".into(),
            ))
        }
    };
    Ok(Conversation {
        id: row::id(r, "id")?,
        assistant_id: row::id(r, "assistant_id")?,
        owner,
        title: r.try_get("title")?,
        tokens_used: r.try_get("tokens_used")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn message(r: &AnyRow) -> Result<Message> {
    let role: String = r.try_get("role")?;
    let status: String = r.try_get("status")?;
    Ok(Message {
        id: row::id(r, "id")?,
        conversation_id: row::id(r, "conversation_id")?,
        role: match role.as_str() {
            "user" => MessageRole::User,
            "assistant" => MessageRole::Assistant,
            other => return Err(StoreError::Corrupt(format!("message role {other:?}"))),
        },
        content: r.try_get("content")?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("message status {status:?}")))?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Whether the scope reaches every conversation of its assistant, not only its own.
pub fn reads_all(scope: &AssistantScope) -> bool {
    scope
        .holding()
        .capabilities
        .contains(Capability::ConversationsReadAll)
}

fn owner_columns(p: Principal) -> (Option<String>, Option<String>) {
    match p {
        Principal::User(u) => (Some(u.to_string()), None),
        Principal::ApiKey(k) => (None, Some(k.to_string())),
    }
}

impl Conversations<'_> {
    pub async fn create(&self, scope: &AssistantScope, title: &str) -> Result<Conversation> {
        let now = now_ms();
        let c = Conversation {
            id: ConversationId::new(),
            assistant_id: scope.assistant_id(),
            owner: scope.principal(),
            title: title.to_string(),
            tokens_used: 0,
            created_at: now,
            updated_at: now,
        };
        let (user, key) = owner_columns(c.owner);
        sqlx::query(&format!(
            "INSERT INTO conversations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(c.id.to_string())
        .bind(c.assistant_id.to_string())
        .bind(user)
        .bind(key)
        .bind(&c.title)
        .bind(c.tokens_used)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(self.pool)
        .await?;
        Ok(c)
    }

    /// The scope's own conversations, or every one of the assistant's when it reads all;
    /// newest activity first, `limit` from the one before `before` (its id).
    pub async fn list(
        &self,
        scope: &AssistantScope,
        limit: i64,
        before: Option<ConversationId>,
    ) -> Result<Vec<Conversation>> {
        let (user, key) = owner_columns(scope.principal());
        let all = reads_all(scope);
        let before_at = match before {
            Some(b) => Some(self.visible(scope, b).await?.updated_at),
            None => None,
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM conversations WHERE assistant_id = $1 \
             AND ($2 = 1 OR user_id = $3 OR api_key_id = $4) \
             AND ($5 < 0 OR updated_at < $5) ORDER BY updated_at DESC, id DESC LIMIT $6"
        ))
        .bind(scope.assistant_id().to_string())
        .bind(i64::from(all))
        .bind(user.unwrap_or_default())
        .bind(key.unwrap_or_default())
        .bind(before_at.unwrap_or(-1))
        .bind(limit)
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(conversation).collect()
    }

    async fn find(&self, scope: &AssistantScope, id: ConversationId) -> Result<Conversation> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM conversations WHERE id = $1 AND assistant_id = $2"
        ))
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .fetch_optional(self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        conversation(&r)
    }

    /// Whether the scoped assistant has a conversation `id` (whoever's it is): for routes
    /// that show something about any conversation, like its traces, with contents withheld.
    pub async fn exists(&self, scope: &AssistantScope, id: ConversationId) -> Result<bool> {
        match self.find(scope, id).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A conversation the scope may read: its own, or any when it reads all. Others are
    /// not found.
    pub async fn visible(
        &self,
        scope: &AssistantScope,
        id: ConversationId,
    ) -> Result<Conversation> {
        let c = self.find(scope, id).await?;
        if c.owner == scope.principal() || reads_all(scope) {
            Ok(c)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// A conversation of the scope's own: the only kind it may write to.
    pub async fn own(&self, scope: &AssistantScope, id: ConversationId) -> Result<Conversation> {
        let c = self.find(scope, id).await?;
        if c.owner == scope.principal() {
            Ok(c)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Deletes one of the scope's own conversations, with its messages, traces and feedback.
    pub async fn delete(&self, scope: &AssistantScope, id: ConversationId) -> Result<()> {
        let c = self.own(scope, id).await?;
        let mut tx = crate::begin(self.pool).await?;
        // Explicitly, child first: SQLite enforces ON DELETE CASCADE only with foreign keys
        // switched on, and this must hold whatever the connection's pragmas.
        for sql in [
            "DELETE FROM feedback WHERE conversation_id = $1",
            "DELETE FROM llm_calls WHERE conversation_id = $1",
            "DELETE FROM messages WHERE conversation_id = $1",
            "DELETE FROM conversations WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(c.id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The messages of a conversation the handler obtained through [`Self::visible`] or
    /// [`Self::own`], oldest first.
    pub async fn messages(&self, c: &Conversation) -> Result<Vec<Message>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY id"
        ))
        .bind(c.id.to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(message).collect()
    }

    /// Appends a message to `c` (obtained through [`Self::own`]) and touches it.
    pub async fn append(
        &self,
        c: &Conversation,
        role: MessageRole,
        content: &str,
        status: MessageStatus,
    ) -> Result<Message> {
        let now = now_ms();
        let m = Message {
            id: MessageId::new(),
            conversation_id: c.id,
            role,
            content: content.to_string(),
            status,
            input_tokens: 0,
            output_tokens: 0,
            created_at: now,
            updated_at: now,
        };
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query(&format!(
            "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(m.id.to_string())
        .bind(c.id.to_string())
        .bind(role.as_str())
        .bind(&m.content)
        .bind(status.as_str())
        .bind(0i64)
        .bind(0i64)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE conversations SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(c.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(m)
    }

    /// Writes what an answer holds so far; called before the client is sent it.
    pub async fn write_progress(
        &self,
        c: &Conversation,
        m: MessageId,
        content: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE messages SET content = $1, updated_at = $2 \
             WHERE id = $3 AND conversation_id = $4 AND status = 'streaming'",
        )
        .bind(content)
        .bind(now_ms())
        .bind(m.to_string())
        .bind(c.id.to_string())
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Ends an answer: its final content, status and tokens, added to the conversation's.
    pub async fn finish(
        &self,
        c: &Conversation,
        m: MessageId,
        content: &str,
        status: MessageStatus,
        input_tokens: i64,
        output_tokens: i64,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query(
            "UPDATE messages SET content = $1, status = $2, input_tokens = $3, output_tokens = $4, \
             updated_at = $5 WHERE id = $6 AND conversation_id = $7",
        )
        .bind(content)
        .bind(status.as_str())
        .bind(input_tokens)
        .bind(output_tokens)
        .bind(now)
        .bind(m.to_string())
        .bind(c.id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE conversations SET tokens_used = tokens_used + $1, updated_at = $2 WHERE id = $3",
        )
        .bind(input_tokens + output_tokens)
        .bind(now)
        .bind(c.id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Answers left `streaming` and untouched since `untouched_since` were cut short by a
    /// process that died: they become `interrupted`, keeping what they held. (A live stream
    /// touches its message at every chunk and times out when idle, so on a shared database
    /// a sweep with a margin never takes another node's live answer.) Returns how many.
    pub async fn interrupt_unfinished(&self, untouched_since: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE messages SET status = 'interrupted', updated_at = $1 \
             WHERE status = 'streaming' AND updated_at <= $2",
        )
        .bind(now_ms())
        .bind(untouched_since)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A message of a conversation the scope may read (for feedback).
    pub async fn message(&self, c: &Conversation, id: MessageId) -> Result<Message> {
        let r = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND conversation_id = $2"
        ))
        .bind(id.to_string())
        .bind(c.id.to_string())
        .fetch_optional(self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        message(&r)
    }
}
