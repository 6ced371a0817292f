//! Assistants: the tenant boundary. Resolution (by id, slug or domain) reads the public facts
//! needed to route a request; everything else goes through a scope.

use crate::scope::{AssistantScope, WorkspaceScope};
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{AssistantId, MemberRole, UserId, WorkspaceId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assistant {
    pub id: AssistantId,
    pub workspace_id: WorkspaceId,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Fields an update may change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct AssistantPatch {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
}

pub struct Assistants<'a> {
    pub(crate) pool: &'a AnyPool,
}

const COLUMNS: &str =
    "a.id, a.workspace_id, a.slug, a.name, a.description, a.created_at, a.updated_at";

fn assistant(r: &AnyRow) -> Result<Assistant> {
    Ok(Assistant {
        id: row::id(r, "id")?,
        workspace_id: row::id(r, "workspace_id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Assistants<'_> {
    /// Creates an assistant in the scoped workspace, with `scope`'s user as its first owner.
    pub async fn create(
        &self,
        scope: &WorkspaceScope,
        slug: &str,
        name: &str,
        description: &str,
    ) -> Result<Assistant> {
        let now = now_ms();
        let a = Assistant {
            id: AssistantId::new(),
            workspace_id: scope.workspace_id(),
            slug: slug.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query(
            "INSERT INTO assistants (id, workspace_id, slug, name, description, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(a.id.to_string())
        .bind(a.workspace_id.to_string())
        .bind(&a.slug)
        .bind(&a.name)
        .bind(&a.description)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "an assistant with this slug exists"))?;
        sqlx::query(
            "INSERT INTO memberships (assistant_id, user_id, role, created_at, updated_at) VALUES ($1, $2, 'owner', $3, $3)",
        )
        .bind(a.id.to_string())
        .bind(scope.user_id().to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(a)
    }

    pub async fn by_id(&self, id: AssistantId) -> Result<Option<Assistant>> {
        let sql = format!("SELECT {COLUMNS} FROM assistants a WHERE a.id = $1");
        let r = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(self.pool)
            .await?;
        r.as_ref().map(assistant).transpose()
    }

    pub async fn by_slug(&self, slug: &str) -> Result<Option<Assistant>> {
        let sql = format!("SELECT {COLUMNS} FROM assistants a WHERE a.slug = $1");
        let r = sqlx::query(&sql)
            .bind(slug)
            .fetch_optional(self.pool)
            .await?;
        r.as_ref().map(assistant).transpose()
    }

    pub async fn by_domain(&self, domain: &str) -> Result<Option<Assistant>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM assistants a JOIN assistant_domains d ON d.assistant_id = a.id WHERE d.domain = $1"
        );
        let r = sqlx::query(&sql)
            .bind(domain)
            .fetch_optional(self.pool)
            .await?;
        r.as_ref().map(assistant).transpose()
    }

    /// The assistants `user` is a member of, with their role in each.
    pub async fn list_for_user(&self, user: UserId) -> Result<Vec<(Assistant, MemberRole)>> {
        let sql = format!(
            "SELECT {COLUMNS}, m.role, {} FROM assistants a JOIN memberships m ON m.assistant_id = a.id \
             {} WHERE m.user_id = $1 ORDER BY a.created_at",
            row::MEMBER_ROLE_COLUMNS,
            row::custom_role_join("m"),
        );
        let rows = sqlx::query(&sql)
            .bind(user.to_string())
            .fetch_all(self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((assistant(r)?, row::member_role(r, "role")?)))
            .collect()
    }

    pub async fn list_in_workspace(&self, scope: &WorkspaceScope) -> Result<Vec<Assistant>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM assistants a WHERE a.workspace_id = $1 ORDER BY a.created_at"
        );
        let rows = sqlx::query(&sql)
            .bind(scope.workspace_id().to_string())
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(assistant).collect()
    }

    pub async fn get(&self, scope: &AssistantScope) -> Result<Assistant> {
        self.by_id(scope.assistant_id())
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub async fn update(&self, scope: &AssistantScope, patch: AssistantPatch) -> Result<Assistant> {
        let current = self.get(scope).await?;
        let slug = patch.slug.unwrap_or(current.slug);
        let name = patch.name.unwrap_or(current.name);
        let description = patch.description.unwrap_or(current.description);
        sqlx::query(
            "UPDATE assistants SET slug = $1, name = $2, description = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&slug)
        .bind(&name)
        .bind(&description)
        .bind(now_ms())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "an assistant with this slug exists"))?;
        self.get(scope).await
    }

    /// Deletes the assistant and, by cascade, its members, domains and invitations.
    /// Returns the domains it had, for cache invalidation.
    pub async fn delete(&self, scope: &AssistantScope) -> Result<Vec<String>> {
        let mut tx = crate::begin(self.pool).await?;
        let rows = sqlx::query("SELECT domain FROM assistant_domains WHERE assistant_id = $1")
            .bind(scope.assistant_id().to_string())
            .fetch_all(&mut *tx)
            .await?;
        let domains = rows
            .iter()
            .map(|r| r.try_get::<String, _>("domain"))
            .collect::<Result<Vec<_>, _>>()?;
        // Its devices are unbound (their channels cut), not deleted: a device's identity is
        // its own, and its next handshake shows a fresh code for its next owner.
        sqlx::query(&format!(
            "UPDATE devices SET {} WHERE assistant_id = $2",
            crate::devices::UNBIND
        ))
        .bind(crate::now_ms())
        .bind(scope.assistant_id().to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM devices WHERE assistant_id IS NULL AND secret_hash IS NULL")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM assistants WHERE id = $1")
            .bind(scope.assistant_id().to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(domains)
    }
}
