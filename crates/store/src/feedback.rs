//! Ratings of assistant messages: one per message and principal (a second rating replaces
//! the first), listed and counted per assistant for whoever holds `feedback.read`.

use crate::conversations::Conversation;
use crate::scope::AssistantScope;
use crate::{now_ms, row, Result};
use bastion_core::{ConversationId, MessageId};
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub principal: String,
    /// +1 (thumbs up) or -1 (thumbs down).
    pub rating: i64,
    pub comment: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub up: i64,
    pub down: i64,
}

pub struct FeedbackRepo<'a> {
    pub(crate) pool: &'a AnyPool,
}

impl FeedbackRepo<'_> {
    /// Records the scope's rating of a message of `c` (a conversation it may read; the
    /// handler checked the message is an assistant message of it).
    pub async fn put(
        &self,
        scope: &AssistantScope,
        c: &Conversation,
        message: MessageId,
        rating: i64,
        comment: &str,
    ) -> Result<Feedback> {
        let f = Feedback {
            message_id: message,
            conversation_id: c.id,
            principal: scope.principal().to_string(),
            rating,
            comment: comment.to_string(),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO feedback (message_id, principal, assistant_id, conversation_id, rating, \
             comment, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (message_id, principal) DO UPDATE SET rating = excluded.rating, \
             comment = excluded.comment, created_at = excluded.created_at",
        )
        .bind(f.message_id.to_string())
        .bind(&f.principal)
        .bind(scope.assistant_id().to_string())
        .bind(c.id.to_string())
        .bind(f.rating)
        .bind(&f.comment)
        .bind(f.created_at)
        .execute(self.pool)
        .await?;
        Ok(f)
    }

    /// The scoped assistant's feedback, newest first.
    pub async fn list(&self, scope: &AssistantScope, limit: i64) -> Result<Vec<Feedback>> {
        let rows = sqlx::query(
            "SELECT message_id, conversation_id, principal, rating, comment, created_at \
             FROM feedback WHERE assistant_id = $1 ORDER BY created_at DESC LIMIT $2",
        )
        .bind(scope.assistant_id().to_string())
        .bind(limit)
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Feedback {
                    message_id: row::id(r, "message_id")?,
                    conversation_id: row::id(r, "conversation_id")?,
                    principal: r.try_get("principal")?,
                    rating: r.try_get("rating")?,
                    comment: r.try_get("comment")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn counts(&self, scope: &AssistantScope) -> Result<Counts> {
        let (up, down): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN rating > 0 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN rating < 0 THEN 1 ELSE 0 END), 0) \
             FROM feedback WHERE assistant_id = $1",
        )
        .bind(scope.assistant_id().to_string())
        .fetch_one(self.pool)
        .await?;
        Ok(Counts { up, down })
    }
}
