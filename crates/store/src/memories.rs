//! What a user asked an assistant to remember. Every read and write is keyed by the scope's
//! assistant *and* user, so a fact never reaches another user or another assistant; an API
//! key has no memory.

use crate::scope::AssistantScope;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{MemoryId, UserId};
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub id: MemoryId,
    pub content: String,
    pub created_at: i64,
}

pub struct Memories<'a> {
    pub(crate) pool: &'a AnyPool,
}

/// At most this many facts per user and assistant: they all go into every prompt.
pub const MAX_PER_USER: i64 = 100;

fn person(scope: &AssistantScope) -> Result<UserId> {
    scope
        .user_id()
        .ok_or_else(|| StoreError::Invalid("only a person has memories".into()))
}

impl Memories<'_> {
    pub async fn list(&self, scope: &AssistantScope) -> Result<Vec<Memory>> {
        let user = person(scope)?;
        let rows = sqlx::query(
            "SELECT id, content, created_at FROM memories WHERE assistant_id = $1 AND user_id = $2 \
             ORDER BY created_at, id",
        )
        .bind(scope.assistant_id().to_string())
        .bind(user.to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Memory {
                    id: row::id(r, "id")?,
                    content: r.try_get("content")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn add(&self, scope: &AssistantScope, content: &str) -> Result<Memory> {
        let user = person(scope)?;
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM memories WHERE assistant_id = $1 AND user_id = $2",
        )
        .bind(scope.assistant_id().to_string())
        .bind(user.to_string())
        .fetch_one(self.pool)
        .await?;
        if count >= MAX_PER_USER {
            return Err(StoreError::Conflict(format!(
                "at most {MAX_PER_USER} memories per assistant; delete one first"
            )));
        }
        let m = Memory {
            id: MemoryId::new(),
            content: content.to_string(),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO memories (id, assistant_id, user_id, content, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(m.id.to_string())
        .bind(scope.assistant_id().to_string())
        .bind(user.to_string())
        .bind(&m.content)
        .bind(m.created_at)
        .execute(self.pool)
        .await?;
        Ok(m)
    }

    pub async fn delete(&self, scope: &AssistantScope, id: MemoryId) -> Result<()> {
        let user = person(scope)?;
        let done = sqlx::query(
            "DELETE FROM memories WHERE id = $1 AND assistant_id = $2 AND user_id = $3",
        )
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .bind(user.to_string())
        .execute(self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
