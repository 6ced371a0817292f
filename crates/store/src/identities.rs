//! External identities: who a user is at an OAuth provider. `(provider, subject)` names at
//! most one user; a user may have several. Not tenant data.

use crate::users::{normalize_email, User};
use crate::{now_ms, row, Result, StoreError};
use bastion_core::UserId;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// Inserts a link; `Conflict` when `(provider, subject)` is linked already.
async fn insert(conn: &mut sqlx::AnyConnection, id: &Identity) -> Result<()> {
    sqlx::query(
        "INSERT INTO user_identities (provider, subject, user_id, email, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id.provider)
    .bind(&id.subject)
    .bind(id.user_id.to_string())
    .bind(&id.email)
    .bind(id.created_at)
    .execute(conn)
    .await
    .map_err(|e| StoreError::unique_as_conflict(e, TAKEN))?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub user_id: UserId,
    /// The email the provider verified when the identity was linked; empty when it vouched
    /// for none (an unverified claim is never kept).
    pub email: String,
    pub created_at: i64,
}

pub struct Identities<'a> {
    pub(crate) pool: &'a AnyPool,
}

fn identity(r: &AnyRow) -> Result<Identity> {
    Ok(Identity {
        provider: r.try_get("provider")?,
        subject: r.try_get("subject")?,
        user_id: row::id(r, "user_id")?,
        email: r.try_get("email")?,
        created_at: r.try_get("created_at")?,
    })
}

const TAKEN: &str = "this provider identity is already linked";

impl Identities<'_> {
    pub async fn find(&self, provider: &str, subject: &str) -> Result<Option<Identity>> {
        let r = sqlx::query(
            "SELECT provider, subject, user_id, email, created_at FROM user_identities \
             WHERE provider = $1 AND subject = $2",
        )
        .bind(provider)
        .bind(subject)
        .fetch_optional(self.pool)
        .await?;
        r.as_ref().map(identity).transpose()
    }

    pub async fn for_user(&self, user: UserId) -> Result<Vec<Identity>> {
        let rows = sqlx::query(
            "SELECT provider, subject, user_id, email, created_at FROM user_identities \
             WHERE user_id = $1 ORDER BY created_at",
        )
        .bind(user.to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(identity).collect()
    }

    /// Links `(provider, subject)` to an existing user. `Conflict` when it is linked already.
    pub async fn link(
        &self,
        provider: &str,
        subject: &str,
        user: UserId,
        verified_email: &str,
    ) -> Result<Identity> {
        let id = Identity {
            provider: provider.to_string(),
            subject: subject.to_string(),
            user_id: user,
            email: normalize_email(verified_email),
            created_at: now_ms(),
        };
        insert(&mut *self.pool.acquire().await?, &id).await?;
        Ok(id)
    }

    /// Creates a user with `email` and no password (an empty hash, which no password
    /// verifies) and links `(provider, subject)` to it, in one transaction. `Conflict` when
    /// the email is taken or the identity is linked already.
    pub async fn create_user(
        &self,
        email: &str,
        provider: &str,
        subject: &str,
        verified_email: &str,
    ) -> Result<(User, Identity)> {
        let now = now_ms();
        let user = User {
            id: UserId::new(),
            email: normalize_email(email),
            is_operator: false,
            created_at: now,
        };
        let id = Identity {
            provider: provider.to_string(),
            subject: subject.to_string(),
            user_id: user.id,
            email: normalize_email(verified_email),
            created_at: now,
        };
        let mut tx = crate::begin(self.pool).await?;
        crate::users::insert(&mut tx, &user, "").await?;
        insert(&mut tx, &id).await?;
        tx.commit().await?;
        Ok((user, id))
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn an_identity_names_one_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
        let ids = store.identities();
        assert!(ids.find("corp", "sub-1").await.unwrap().is_none());
        let (user, linked) = ids
            .create_user("x1@corp.oauth.invalid", "corp", "sub-1", "")
            .await
            .unwrap();
        assert_eq!(linked.user_id, user.id);
        assert_eq!(ids.find("corp", "sub-1").await.unwrap().unwrap(), linked);
        // The account has no password: its stored hash is empty, which verifies nothing.
        assert_eq!(
            store
                .users()
                .password_hash(user.id)
                .await
                .unwrap()
                .as_deref(),
            Some("")
        );
        // The same identity cannot be linked twice, not even to the same user.
        assert!(matches!(
            ids.link("corp", "sub-1", user.id, "").await,
            Err(crate::StoreError::Conflict(_))
        ));
        assert!(matches!(
            ids.create_user("x2@corp.oauth.invalid", "corp", "sub-1", "")
                .await,
            Err(crate::StoreError::Conflict(_))
        ));
        // The failed creation left no user behind.
        assert!(store
            .users()
            .by_email("x2@corp.oauth.invalid")
            .await
            .unwrap()
            .is_none());
        // Another provider's same subject is another identity.
        ids.link("other", "sub-1", user.id, "A@B.test")
            .await
            .unwrap();
        let all = ids.for_user(user.id).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].email, "a@b.test");
    }
}
