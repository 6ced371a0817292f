//! Custom domains of an assistant: a request whose Host is one of them resolves to it.

use crate::scope::AssistantScope;
use crate::{now_ms, Result, StoreError};
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone)]
pub struct Domain {
    pub domain: String,
    pub created_at: i64,
}

pub struct Domains<'a> {
    pub(crate) pool: &'a AnyPool,
}

impl Domains<'_> {
    pub async fn list(&self, scope: &AssistantScope) -> Result<Vec<Domain>> {
        let rows = sqlx::query(
            "SELECT domain, created_at FROM assistant_domains WHERE assistant_id = $1 ORDER BY domain",
        )
        .bind(scope.assistant_id().to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Domain {
                    domain: r.try_get("domain")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Adds `domain` (already validated and lower-cased); a domain belongs to one assistant.
    pub async fn add(&self, scope: &AssistantScope, domain: &str) -> Result<Domain> {
        let d = Domain {
            domain: domain.to_string(),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO assistant_domains (domain, assistant_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(&d.domain)
        .bind(scope.assistant_id().to_string())
        .bind(d.created_at)
        .execute(self.pool)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "this domain is already in use"))?;
        Ok(d)
    }

    pub async fn remove(&self, scope: &AssistantScope, domain: &str) -> Result<()> {
        let done =
            sqlx::query("DELETE FROM assistant_domains WHERE domain = $1 AND assistant_id = $2")
                .bind(domain)
                .bind(scope.assistant_id().to_string())
                .execute(self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
