//! Invitations: a single-use, expiring token that lets one email join one assistant with one
//! role at sign-up. Only the token's SHA-256 is stored; the token is shown once.

use crate::scope::AssistantScope;
use crate::users::normalize_email;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{AssistantId, InvitationId, MemberRole, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: InvitationId,
    pub assistant_id: AssistantId,
    pub email: String,
    pub role: MemberRole,
    pub invited_by: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
}

pub struct Invitations<'a> {
    pub(crate) pool: &'a AnyPool,
}

/// Read through [`select`], which joins the custom role an invitation may offer.
const COLUMNS: &str = "i.id, i.assistant_id, i.email, i.role, i.invited_by, i.created_at, i.expires_at, i.redeemed_at";

/// `SELECT … FROM invitations i …` with the custom-role join, followed by `filter`.
fn select(filter: &str) -> String {
    format!(
        "SELECT {COLUMNS}, {} FROM invitations i {} {filter}",
        row::MEMBER_ROLE_COLUMNS,
        row::custom_role_join("i"),
    )
}

fn invitation(r: &AnyRow) -> Result<Invitation> {
    Ok(Invitation {
        id: row::id(r, "id")?,
        assistant_id: row::id(r, "assistant_id")?,
        email: r.try_get("email")?,
        role: row::member_role(r, "role")?,
        invited_by: row::id(r, "invited_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        redeemed_at: r.try_get("redeemed_at")?,
    })
}

impl Invitations<'_> {
    pub async fn create(
        &self,
        scope: &AssistantScope,
        email: &str,
        role: &MemberRole,
        token_hash: &str,
        ttl_ms: i64,
    ) -> Result<Invitation> {
        // Whom to let in is a person's decision: API keys never hold members.manage.
        let invited_by = scope
            .user_id()
            .ok_or_else(|| StoreError::Invalid("only a person can invite members".into()))?;
        let now = now_ms();
        let inv = Invitation {
            id: InvitationId::new(),
            assistant_id: scope.assistant_id(),
            email: normalize_email(email),
            role: role.clone(),
            invited_by,
            created_at: now,
            expires_at: now + ttl_ms,
            redeemed_at: None,
        };
        sqlx::query(
            "INSERT INTO invitations (id, assistant_id, email, role, token_hash, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(inv.id.to_string())
        .bind(inv.assistant_id.to_string())
        .bind(&inv.email)
        .bind(role.stored())
        .bind(token_hash)
        .bind(inv.invited_by.to_string())
        .bind(now)
        .bind(inv.expires_at)
        .execute(self.pool)
        .await?;
        Ok(inv)
    }

    /// Pending (not redeemed, not expired) invitations of the scoped assistant.
    pub async fn list_pending(&self, scope: &AssistantScope) -> Result<Vec<Invitation>> {
        let sql = select(
            "WHERE i.assistant_id = $1 AND i.redeemed_at IS NULL AND i.expires_at > $2 ORDER BY i.created_at",
        );
        let rows = sqlx::query(&sql)
            .bind(scope.assistant_id().to_string())
            .bind(now_ms())
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(invitation).collect()
    }

    pub async fn revoke(&self, scope: &AssistantScope, id: InvitationId) -> Result<()> {
        let done = sqlx::query(
            "DELETE FROM invitations WHERE id = $1 AND assistant_id = $2 AND redeemed_at IS NULL",
        )
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Creates the account for `email` and redeems the invitation of `token_hash` in one
    /// transaction: the user, the membership and the spent token land together or not at all.
    /// `NotFound` for an unknown, spent or expired token or one issued to another email.
    pub async fn redeem_at_signup(
        &self,
        token_hash: &str,
        email: &str,
        password_hash: &str,
    ) -> Result<(crate::users::User, Invitation)> {
        let now = now_ms();
        let email = normalize_email(email);
        let mut tx = crate::begin(self.pool).await?;
        // The conditional update is the single-use check: of two concurrent redemptions,
        // only one changes the row. Ownership is only ever transferred, so an invitation
        // offering it (possible before transfers existed) is never honoured.
        let spent = sqlx::query(
            "UPDATE invitations SET redeemed_at = $1 WHERE token_hash = $2 AND email = $3 \
             AND redeemed_at IS NULL AND expires_at > $1 AND role <> 'owner'",
        )
        .bind(now)
        .bind(token_hash)
        .bind(&email)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        let sql = select("WHERE i.token_hash = $1");
        let inv = invitation(
            &sqlx::query(&sql)
                .bind(token_hash)
                .fetch_one(&mut *tx)
                .await?,
        )?;
        let user = crate::users::User {
            id: UserId::new(),
            email,
            is_operator: false,
            created_at: now,
        };
        crate::users::insert(&mut tx, &user, password_hash).await?;
        sqlx::query("UPDATE invitations SET redeemed_by = $1 WHERE id = $2")
            .bind(user.id.to_string())
            .bind(inv.id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO memberships (assistant_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(inv.assistant_id.to_string())
        .bind(user.id.to_string())
        .bind(inv.role.stored())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((user, inv))
    }
}
