//! Memberships: (user, assistant, role). The grant lookup feeds authorization; changes keep
//! at least one owner per assistant.

use crate::scope::{AssistantScope, Grant};
use crate::users::normalize_email;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{AssistantId, MemberRole, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: MemberRole,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct Memberships<'a> {
    pub(crate) pool: &'a AnyPool,
}

fn member(r: &AnyRow) -> Result<Member> {
    Ok(Member {
        user_id: row::id(r, "user_id")?,
        email: r.try_get("email")?,
        role: row::member_role(r, "role")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Serializes membership changes of one assistant: a no-op write to its row takes the row
/// lock on PostgreSQL (and the write lock on SQLite), so two concurrent demotions cannot
/// both see the other as the remaining owner.
pub(crate) async fn lock_assistant(tx: &mut Transaction<'_, Any>, id: AssistantId) -> Result<()> {
    sqlx::query("UPDATE assistants SET updated_at = updated_at WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn other_owners(tx: &mut Transaction<'_, Any>, id: AssistantId, user: UserId) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM memberships WHERE assistant_id = $1 AND role = 'owner' AND user_id <> $2",
    )
    .bind(id.to_string())
    .bind(user.to_string())
    .fetch_one(&mut **tx)
    .await?;
    Ok(r.try_get("n")?)
}

/// Whether `user` is an owner of the assistant; `NotFound` when not a member.
pub(crate) async fn is_owner(
    tx: &mut Transaction<'_, Any>,
    id: AssistantId,
    user: UserId,
) -> Result<bool> {
    let r = sqlx::query("SELECT role FROM memberships WHERE assistant_id = $1 AND user_id = $2")
        .bind(id.to_string())
        .bind(user.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(r.try_get::<String, _>("role")? == "owner")
}

/// Refuses a custom role that is not the assistant's (the handler resolved it in scope; this
/// keeps the row consistent even if the role was deleted in between).
async fn check_role_exists(
    tx: &mut Transaction<'_, Any>,
    id: AssistantId,
    role: &MemberRole,
) -> Result<()> {
    if let MemberRole::Custom { id: role_id, .. } = role {
        sqlx::query("SELECT id FROM assistant_roles WHERE id = $1 AND assistant_id = $2")
            .bind(role_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
    }
    Ok(())
}

impl Memberships<'_> {
    /// The user's membership of an assistant, if any: the input to authorization.
    pub async fn grant(&self, user: UserId, assistant: AssistantId) -> Result<Option<Grant>> {
        let sql = format!(
            "SELECT m.role, {}, a.workspace_id, w.require_mfa FROM memberships m \
             JOIN assistants a ON a.id = m.assistant_id JOIN workspaces w ON w.id = a.workspace_id \
             {} WHERE m.assistant_id = $1 AND m.user_id = $2",
            row::MEMBER_ROLE_COLUMNS,
            row::custom_role_join("m"),
        );
        let r = sqlx::query(&sql)
            .bind(assistant.to_string())
            .bind(user.to_string())
            .fetch_optional(self.pool)
            .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(Grant {
                user_id: user,
                assistant_id: assistant,
                workspace_id: row::id(&r, "workspace_id")?,
                role: row::member_role(&r, "role")?,
                require_mfa: r.try_get::<i64, _>("require_mfa")? != 0,
            })),
        }
    }

    pub async fn list(&self, scope: &AssistantScope) -> Result<Vec<Member>> {
        let sql = format!(
            "SELECT m.user_id, u.email, m.role, {}, m.created_at, m.updated_at FROM memberships m \
             JOIN users u ON u.id = m.user_id {} WHERE m.assistant_id = $1 ORDER BY m.created_at",
            row::MEMBER_ROLE_COLUMNS,
            row::custom_role_join("m"),
        );
        let rows = sqlx::query(&sql)
            .bind(scope.assistant_id().to_string())
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(member).collect()
    }

    pub async fn get(&self, scope: &AssistantScope, user: UserId) -> Result<Member> {
        let sql = format!(
            "SELECT m.user_id, u.email, m.role, {}, m.created_at, m.updated_at FROM memberships m \
             JOIN users u ON u.id = m.user_id {} WHERE m.assistant_id = $1 AND m.user_id = $2",
            row::MEMBER_ROLE_COLUMNS,
            row::custom_role_join("m"),
        );
        let r = sqlx::query(&sql)
            .bind(scope.assistant_id().to_string())
            .bind(user.to_string())
            .fetch_optional(self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        member(&r)
    }

    /// Makes the user with `email` a member with `role`. `NotFound` when no such user exists.
    pub async fn add_by_email(
        &self,
        scope: &AssistantScope,
        email: &str,
        role: &MemberRole,
    ) -> Result<Member> {
        let u = sqlx::query("SELECT id FROM users WHERE email = $1")
            .bind(normalize_email(email))
            .fetch_optional(self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let user: UserId = row::id(&u, "id")?;
        self.add(scope, user, role).await?;
        self.get(scope, user).await
    }

    pub async fn add(&self, scope: &AssistantScope, user: UserId, role: &MemberRole) -> Result<()> {
        let now = now_ms();
        let mut tx = crate::begin(self.pool).await?;
        lock_assistant(&mut tx, scope.assistant_id()).await?;
        check_role_exists(&mut tx, scope.assistant_id(), role).await?;
        sqlx::query(
            "INSERT INTO memberships (assistant_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(scope.assistant_id().to_string())
        .bind(user.to_string())
        .bind(role.stored())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "already a member"))?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes a member's role; the last owner cannot be demoted.
    pub async fn set_role(
        &self,
        scope: &AssistantScope,
        user: UserId,
        role: &MemberRole,
    ) -> Result<Member> {
        let id = scope.assistant_id();
        let mut tx = crate::begin(self.pool).await?;
        lock_assistant(&mut tx, id).await?;
        check_role_exists(&mut tx, id, role).await?;
        if is_owner(&mut tx, id, user).await?
            && !role.is_owner()
            && other_owners(&mut tx, id, user).await? == 0
        {
            return Err(StoreError::LastOwner);
        }
        sqlx::query("UPDATE memberships SET role = $1, updated_at = $2 WHERE assistant_id = $3 AND user_id = $4")
            .bind(role.stored())
            .bind(now_ms())
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get(scope, user).await
    }

    /// Removes a member; the last owner cannot be removed.
    pub async fn remove(&self, scope: &AssistantScope, user: UserId) -> Result<()> {
        let id = scope.assistant_id();
        let mut tx = crate::begin(self.pool).await?;
        lock_assistant(&mut tx, id).await?;
        if is_owner(&mut tx, id, user).await? && other_owners(&mut tx, id, user).await? == 0 {
            return Err(StoreError::LastOwner);
        }
        sqlx::query("DELETE FROM memberships WHERE assistant_id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        // An ownership offer to or from someone who left is withdrawn: being added again
        // later must not revive it.
        sqlx::query(
            "DELETE FROM ownership_offers WHERE assistant_id = $1 AND (to_user = $2 OR from_user = $2)",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
