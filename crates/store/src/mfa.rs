//! A user's second factor: the sealed TOTP secret (pending until confirmed by a first code),
//! the last accepted time step (so no code works twice), and hashed recovery codes. The
//! sealing itself happens above the store; these rows only ever hold ciphertext and hashes.

use crate::{now_ms, Result, StoreError};
use bastion_core::UserId;
use sqlx::{AnyPool, Row};

pub struct Mfa<'a> {
    pub(crate) pool: &'a AnyPool,
}

/// What is stored about a user's TOTP.
#[derive(Debug, Default)]
pub struct TotpState {
    pub secret: Option<String>,
    pub pending: Option<String>,
    pub last_step: Option<i64>,
}

impl TotpState {
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }
}

/// Which sealed TOTP column of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpColumn {
    Secret,
    Pending,
}

impl TotpColumn {
    fn name(self) -> &'static str {
        match self {
            TotpColumn::Secret => "totp_secret",
            TotpColumn::Pending => "totp_pending_secret",
        }
    }
}

impl Mfa<'_> {
    /// Every sealed TOTP value, `limit` users at a time in id order after `after`: for the
    /// operator's vault commands, never on a request path.
    pub async fn sealed_page(
        &self,
        after: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<(UserId, TotpColumn, String)>> {
        let rows = sqlx::query(
            "SELECT id, totp_secret, totp_pending_secret FROM users WHERE id > $1 \
             AND (totp_secret IS NOT NULL OR totp_pending_secret IS NOT NULL) ORDER BY id LIMIT $2",
        )
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let id: UserId = crate::row::id(r, "id")?;
            for col in [TotpColumn::Secret, TotpColumn::Pending] {
                if let Some(v) = r.try_get::<Option<String>, _>(col.name())? {
                    out.push((id, col, v));
                }
            }
        }
        Ok(out)
    }

    /// Replaces one sealed TOTP value by its re-sealed form, only if it is still `old`.
    pub async fn replace_sealed(
        &self,
        user: UserId,
        col: TotpColumn,
        old: &str,
        new: &str,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE users SET {c} = $1 WHERE id = $2 AND {c} = $3",
            c = col.name()
        );
        let done = sqlx::query(&sql)
            .bind(new)
            .bind(user.to_string())
            .bind(old)
            .execute(self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn totp(&self, user: UserId) -> Result<TotpState> {
        let r = sqlx::query(
            "SELECT totp_secret, totp_pending_secret, totp_last_step FROM users WHERE id = $1",
        )
        .bind(user.to_string())
        .fetch_optional(self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(TotpState {
            secret: r.try_get("totp_secret")?,
            pending: r.try_get("totp_pending_secret")?,
            last_step: r.try_get("totp_last_step")?,
        })
    }

    /// Stores a new secret awaiting its first code; it replaces any earlier pending one.
    pub async fn set_pending(&self, user: UserId, sealed: &str) -> Result<()> {
        sqlx::query("UPDATE users SET totp_pending_secret = $1 WHERE id = $2")
            .bind(sealed)
            .bind(user.to_string())
            .execute(self.pool)
            .await?;
        Ok(())
    }

    /// Turns the pending secret (which must still be `sealed`) into the enabled one, records
    /// the step its first code was in, and replaces the recovery codes, all at once.
    pub async fn enable(
        &self,
        user: UserId,
        sealed: &str,
        step: i64,
        recovery_hashes: &[String],
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = crate::begin(self.pool).await?;
        let done = sqlx::query(
            "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
             totp_enabled_at = $1, totp_last_step = $2 WHERE id = $3 AND totp_pending_secret = $4",
        )
        .bind(now)
        .bind(step)
        .bind(user.to_string())
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "the TOTP enrolment changed meanwhile; start again".into(),
            ));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        for h in recovery_hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
            )
            .bind(user.to_string())
            .bind(h)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn disable(&self, user: UserId) -> Result<()> {
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, \
             totp_enabled_at = NULL, totp_last_step = NULL WHERE id = $1",
        )
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records `step` as used, if it is later than the last one used: one conditional
    /// UPDATE, so two sign-ins racing with the same code cannot both pass.
    pub async fn accept_step(&self, user: UserId, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 \
             AND totp_secret IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user.to_string())
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends a recovery code; false when it is unknown or already spent.
    pub async fn use_recovery_code(&self, user: UserId, code_hash: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 \
             AND used_at IS NULL",
        )
        .bind(now_ms())
        .bind(user.to_string())
        .bind(code_hash)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn recovery_codes_left(&self, user: UserId) -> Result<i64> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user.to_string())
        .fetch_one(self.pool)
        .await?;
        Ok(r.try_get("n")?)
    }
}
