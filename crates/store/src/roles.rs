//! Custom roles of an assistant: a name and a subset of the capabilities. Members and
//! invitations refer to one by id; a role still held or offered cannot be deleted.

use crate::memberships::lock_assistant;
use crate::scope::AssistantScope;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{CapabilitySet, MemberRole, RoleId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone)]
pub struct CustomRole {
    pub id: RoleId,
    pub name: String,
    pub capabilities: CapabilitySet,
    pub created_at: i64,
    pub updated_at: i64,
}

impl CustomRole {
    pub fn member_role(&self) -> MemberRole {
        MemberRole::Custom {
            id: self.id,
            name: self.name.clone(),
            capabilities: self.capabilities,
        }
    }
}

pub struct Roles<'a> {
    pub(crate) pool: &'a AnyPool,
}

const COLUMNS: &str = "id, name, capabilities, created_at, updated_at";

fn custom_role(r: &AnyRow) -> Result<CustomRole> {
    Ok(CustomRole {
        id: row::id(r, "id")?,
        name: r.try_get("name")?,
        capabilities: row::capabilities(r, "capabilities")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Roles<'_> {
    pub async fn list(&self, scope: &AssistantScope) -> Result<Vec<CustomRole>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM assistant_roles WHERE assistant_id = $1 ORDER BY created_at"
        );
        let rows = sqlx::query(&sql)
            .bind(scope.assistant_id().to_string())
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(custom_role).collect()
    }

    pub async fn get(&self, scope: &AssistantScope, id: RoleId) -> Result<CustomRole> {
        let sql =
            format!("SELECT {COLUMNS} FROM assistant_roles WHERE id = $1 AND assistant_id = $2");
        let r = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .fetch_optional(self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        custom_role(&r)
    }

    pub async fn by_name(&self, scope: &AssistantScope, name: &str) -> Result<Option<CustomRole>> {
        let sql =
            format!("SELECT {COLUMNS} FROM assistant_roles WHERE assistant_id = $1 AND name = $2");
        let r = sqlx::query(&sql)
            .bind(scope.assistant_id().to_string())
            .bind(name)
            .fetch_optional(self.pool)
            .await?;
        r.as_ref().map(custom_role).transpose()
    }

    /// `Conflict` when the assistant already has a role of that name.
    pub async fn create(
        &self,
        scope: &AssistantScope,
        name: &str,
        capabilities: CapabilitySet,
    ) -> Result<CustomRole> {
        let now = now_ms();
        let role = CustomRole {
            id: RoleId::new(),
            name: name.to_string(),
            capabilities,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO assistant_roles (id, assistant_id, name, capabilities, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(role.id.to_string())
        .bind(scope.assistant_id().to_string())
        .bind(&role.name)
        .bind(capabilities.to_names())
        .bind(now)
        .execute(self.pool)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "a role with this name exists"))?;
        Ok(role)
    }

    /// Changes the fields given; `None` leaves a field as it is.
    pub async fn update(
        &self,
        scope: &AssistantScope,
        id: RoleId,
        name: Option<&str>,
        capabilities: Option<CapabilitySet>,
    ) -> Result<CustomRole> {
        let done = sqlx::query(
            "UPDATE assistant_roles SET name = COALESCE($1, name), capabilities = COALESCE($2, capabilities), \
             updated_at = $3 WHERE id = $4 AND assistant_id = $5",
        )
        .bind(name)
        .bind(capabilities.map(CapabilitySet::to_names))
        .bind(now_ms())
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "a role with this name exists"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get(scope, id).await
    }

    /// Deletes a role nobody holds and no pending invitation offers (`Conflict` otherwise).
    pub async fn delete(&self, scope: &AssistantScope, id: RoleId) -> Result<()> {
        let assistant = scope.assistant_id();
        let mut tx = crate::begin(self.pool).await?;
        lock_assistant(&mut tx, assistant).await?;
        let used = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM memberships WHERE assistant_id = $1 AND role = $2) \
             + (SELECT COUNT(*) FROM invitations WHERE assistant_id = $1 AND role = $2 \
                AND redeemed_at IS NULL AND expires_at > $3) AS n",
        )
        .bind(assistant.to_string())
        .bind(id.to_string())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        if used.try_get::<i64, _>("n")? > 0 {
            return Err(StoreError::Conflict(
                "the role is held by members or offered by pending invitations".into(),
            ));
        }
        let done = sqlx::query("DELETE FROM assistant_roles WHERE id = $1 AND assistant_id = $2")
            .bind(id.to_string())
            .bind(assistant.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}
