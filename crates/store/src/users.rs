//! Users: global logins. Not tenant data; a user's own row is reachable by its id.

use crate::{now_ms, row, Result, StoreError};
use bastion_core::UserId;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub is_operator: bool,
    pub created_at: i64,
}

/// A user together with the password hash, for sign-in only.
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
}

pub struct Users<'a> {
    pub(crate) pool: &'a AnyPool,
}

/// Emails are compared case-insensitively: stored lower-cased and trimmed.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn user(r: &AnyRow) -> Result<User> {
    Ok(User {
        id: row::id(r, "id")?,
        email: r.try_get("email")?,
        is_operator: r.try_get::<i64, _>("is_operator")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

/// Inserts `user` with `password_hash` (empty for an account that signs in only through
/// OAuth), inside whatever transaction the caller holds. `Conflict` when the email is taken.
pub(crate) async fn insert(
    conn: &mut sqlx::AnyConnection,
    user: &User,
    password_hash: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, is_operator, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.id.to_string())
    .bind(&user.email)
    .bind(password_hash)
    .bind(i64::from(user.is_operator))
    .bind(user.created_at)
    .execute(conn)
    .await
    .map_err(|e| StoreError::unique_as_conflict(e, "a user with this email exists"))?;
    Ok(())
}

impl Users<'_> {
    pub async fn create(
        &self,
        email: &str,
        password_hash: &str,
        is_operator: bool,
    ) -> Result<User> {
        let user = User {
            id: UserId::new(),
            email: normalize_email(email),
            is_operator,
            created_at: now_ms(),
        };
        insert(&mut *self.pool.acquire().await?, &user, password_hash).await?;
        Ok(user)
    }

    pub async fn get(&self, id: UserId) -> Result<Option<User>> {
        let r = sqlx::query("SELECT id, email, is_operator, created_at FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool)
            .await?;
        r.as_ref().map(user).transpose()
    }

    pub async fn by_email(&self, email: &str) -> Result<Option<User>> {
        let r =
            sqlx::query("SELECT id, email, is_operator, created_at FROM users WHERE email = $1")
                .bind(normalize_email(email))
                .fetch_optional(self.pool)
                .await?;
        r.as_ref().map(user).transpose()
    }

    pub async fn credentials(&self, email: &str) -> Result<Option<UserCredentials>> {
        let r = sqlx::query(
            "SELECT id, email, is_operator, created_at, password_hash FROM users WHERE email = $1",
        )
        .bind(normalize_email(email))
        .fetch_optional(self.pool)
        .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(UserCredentials {
                user: user(&r)?,
                password_hash: r.try_get("password_hash")?,
            })),
        }
    }

    pub async fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        let r = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool)
            .await?;
        Ok(r.map(|r| r.try_get("password_hash")).transpose()?)
    }

    /// Replaces the password hash.
    pub async fn set_password(&self, id: UserId, password_hash: &str) -> Result<()> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id.to_string())
            .execute(self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<User>> {
        let rows =
            sqlx::query("SELECT id, email, is_operator, created_at FROM users ORDER BY created_at")
                .fetch_all(self.pool)
                .await?;
        rows.iter().map(user).collect()
    }

    pub async fn count(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }

    /// Deletes a user and (by cascade) their memberships. Refused while they are the last
    /// owner of any assistant or workspace, which would leave it without an owner.
    pub async fn delete(&self, id: UserId) -> Result<()> {
        let mut tx = crate::begin(self.pool).await?;
        // Lock every assistant this user belongs to, as each membership change does, so a
        // concurrent demotion or ownership transfer (which may make this user an owner)
        // cannot leave one without an owner between this check and the delete.
        sqlx::query(
            "UPDATE assistants SET updated_at = updated_at WHERE id IN \
             (SELECT assistant_id FROM memberships WHERE user_id = $1)",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let sole = sqlx::query(
            "SELECT COUNT(*) AS n FROM memberships m WHERE m.user_id = $1 AND m.role = 'owner' \
             AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.assistant_id = m.assistant_id \
             AND o.role = 'owner' AND o.user_id <> $1)",
        )
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let sole_ws = sqlx::query(
            "SELECT COUNT(*) AS n FROM workspace_members m WHERE m.user_id = $1 AND m.role = 'owner' \
             AND NOT EXISTS (SELECT 1 FROM workspace_members o WHERE o.workspace_id = m.workspace_id \
             AND o.role = 'owner' AND o.user_id <> $1)",
        )
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if sole.try_get::<i64, _>("n")? > 0 || sole_ws.try_get::<i64, _>("n")? > 0 {
            return Err(StoreError::LastOwner);
        }
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}
