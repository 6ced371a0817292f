//! Workspaces: customer accounts. Reads and writes of one go through its scope.

use crate::scope::{WorkspaceGrant, WorkspaceScope};
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{Role, UserId, WorkspaceId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    /// Owners and admins must have signed in with a second factor to act in it.
    pub require_mfa: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct Workspaces<'a> {
    pub(crate) pool: &'a AnyPool,
}

fn workspace(r: &AnyRow) -> Result<Workspace> {
    Ok(Workspace {
        id: row::id(r, "id")?,
        name: r.try_get("name")?,
        require_mfa: r.try_get::<i64, _>("require_mfa")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Workspaces<'_> {
    /// Creates a workspace with `owner` as its first owner.
    pub async fn create(&self, name: &str, owner: UserId) -> Result<Workspace> {
        let now = now_ms();
        let ws = Workspace {
            id: WorkspaceId::new(),
            name: name.to_string(),
            require_mfa: false,
            created_at: now,
            updated_at: now,
        };
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query(
            "INSERT INTO workspaces (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)",
        )
        .bind(ws.id.to_string())
        .bind(&ws.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
        )
        .bind(ws.id.to_string())
        .bind(owner.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ws)
    }

    /// The user's membership of a workspace, if any: the input to authorization.
    pub async fn grant(
        &self,
        user: UserId,
        workspace: WorkspaceId,
    ) -> Result<Option<WorkspaceGrant>> {
        let r = sqlx::query(
            "SELECT m.role, w.require_mfa FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id \
             WHERE m.workspace_id = $1 AND m.user_id = $2",
        )
        .bind(workspace.to_string())
        .bind(user.to_string())
        .fetch_optional(self.pool)
        .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(WorkspaceGrant {
                user_id: user,
                workspace_id: workspace,
                role: row::role(&r, "role")?,
                require_mfa: r.try_get::<i64, _>("require_mfa")? != 0,
            })),
        }
    }

    pub async fn get(&self, scope: &WorkspaceScope) -> Result<Workspace> {
        let r = sqlx::query(
            "SELECT id, name, require_mfa, created_at, updated_at FROM workspaces WHERE id = $1",
        )
        .bind(scope.workspace_id().to_string())
        .fetch_optional(self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        workspace(&r)
    }

    /// The workspaces `user` belongs to, with their role in each.
    pub async fn list_for_user(&self, user: UserId) -> Result<Vec<(Workspace, Role)>> {
        let rows = sqlx::query(
            "SELECT w.id, w.name, w.require_mfa, w.created_at, w.updated_at, m.role FROM workspaces w \
             JOIN workspace_members m ON m.workspace_id = w.id WHERE m.user_id = $1 ORDER BY w.created_at",
        )
        .bind(user.to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((workspace(r)?, row::role(r, "role")?)))
            .collect()
    }

    /// Changes the fields given; `None` leaves a field as it is.
    pub async fn update(
        &self,
        scope: &WorkspaceScope,
        name: Option<&str>,
        require_mfa: Option<bool>,
    ) -> Result<Workspace> {
        sqlx::query(
            "UPDATE workspaces SET name = COALESCE($1, name), require_mfa = COALESCE($2, require_mfa), \
             updated_at = $3 WHERE id = $4",
        )
        .bind(name)
        .bind(require_mfa.map(i64::from))
        .bind(now_ms())
        .bind(scope.workspace_id().to_string())
        .execute(self.pool)
        .await?;
        self.get(scope).await
    }

    /// Deletes the workspace and, by cascade, its assistants and everything they own.
    /// Returns the ids of the assistants that went with it, for cache invalidation.
    pub async fn delete(&self, scope: &WorkspaceScope) -> Result<Vec<bastion_core::AssistantId>> {
        let mut tx = crate::begin(self.pool).await?;
        let rows = sqlx::query("SELECT id FROM assistants WHERE workspace_id = $1")
            .bind(scope.workspace_id().to_string())
            .fetch_all(&mut *tx)
            .await?;
        let ids = rows
            .iter()
            .map(|r| row::id(r, "id"))
            .collect::<Result<Vec<_>>>()?;
        sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(scope.workspace_id().to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids)
    }
}
