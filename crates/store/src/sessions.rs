//! Sessions: one row per sign-in, and the refresh tokens of that sign-in (only their SHA-256
//! is stored). A refresh token is spent by its one use, which issues its successor; using a
//! spent token again means it was copied, so the whole session (the token family) is revoked.
//! A user's sessions are their own data: every method takes the user id and never touches
//! another user's rows.

use crate::{now_ms, row, Result, StoreError};
use bastion_core::{SessionId, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// How the user signed in: `password`, `password+totp`, `oauth:<provider>`.
    pub method: String,
    pub ip: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

impl Session {
    /// Not revoked and within both its idle and its absolute lifetime at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }
}

/// What a sign-in records about itself.
pub struct NewSession<'a> {
    pub user_id: UserId,
    pub method: &'a str,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub idle_ttl_ms: i64,
    pub absolute_ttl_ms: i64,
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live and is now spent; its successor is stored.
    Rotated(Session),
    /// The token had been spent before: the session is now revoked.
    Reused(Session),
    /// The token is unspent but its session is revoked or expired.
    Ended(Session),
    /// No such token.
    Unknown,
}

pub struct Sessions<'a> {
    pub(crate) pool: &'a AnyPool,
}

const COLUMNS: &str = "id, user_id, method, ip, user_agent, created_at, last_used_at, \
     idle_expires_at, absolute_expires_at, revoked_at, revoked_reason";

fn session(r: &AnyRow) -> Result<Session> {
    Ok(Session {
        id: row::id(r, "id")?,
        user_id: row::id(r, "user_id")?,
        method: r.try_get("method")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        idle_expires_at: r.try_get("idle_expires_at")?,
        absolute_expires_at: r.try_get("absolute_expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        revoked_reason: r.try_get("revoked_reason")?,
    })
}

/// Reasons a session ends, as stored.
pub mod reason {
    pub const LOGOUT: &str = "logout";
    pub const REVOKED: &str = "revoked";
    pub const SIGN_OUT_EVERYWHERE: &str = "sign_out_everywhere";
    pub const REFRESH_REUSE: &str = "refresh_token_reuse";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const MFA_CHANGED: &str = "mfa_changed";
    pub const OPERATOR: &str = "operator";
}

impl Sessions<'_> {
    /// Records a sign-in and its first refresh token.
    pub async fn create(&self, new: NewSession<'_>, refresh_hash: &str) -> Result<Session> {
        let now = now_ms();
        let absolute = now + new.absolute_ttl_ms;
        let s = Session {
            id: SessionId::new(),
            user_id: new.user_id,
            method: new.method.to_string(),
            ip: new.ip.to_string(),
            user_agent: new.user_agent.to_string(),
            created_at: now,
            last_used_at: now,
            idle_expires_at: (now + new.idle_ttl_ms).min(absolute),
            absolute_expires_at: absolute,
            revoked_at: None,
            revoked_reason: None,
        };
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, method, ip, user_agent, created_at, last_used_at, \
             idle_expires_at, absolute_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(s.id.to_string())
        .bind(s.user_id.to_string())
        .bind(&s.method)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.idle_expires_at)
        .bind(s.absolute_expires_at)
        .execute(&mut *tx)
        .await?;
        insert_token(&mut tx, refresh_hash, s.id, 0, now).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Spends the refresh token `old_hash` and, if its session is live, stores `new_hash` as
    /// its successor. The spend is one conditional UPDATE, so of two concurrent uses of the
    /// same token exactly one spends it; the other is a reuse.
    pub async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        idle_ttl_ms: i64,
    ) -> Result<Rotation> {
        let now = now_ms();
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL",
        )
        .bind(now)
        .bind(old_hash)
        .execute(self.pool)
        .await?
        .rows_affected();
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("s.{c} AS {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns}, t.generation AS generation FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1"
        );
        let Some(r) = sqlx::query(&sql)
            .bind(old_hash)
            .fetch_optional(self.pool)
            .await?
        else {
            return Ok(Rotation::Unknown);
        };
        let mut s = session(&r)?;
        let generation: i64 = r.try_get("generation")?;
        if spent == 0 {
            if s.revoked_at.is_none() {
                self.end(s.user_id, Some(s.id), reason::REFRESH_REUSE)
                    .await?;
                s.revoked_at = Some(now);
                s.revoked_reason = Some(reason::REFRESH_REUSE.into());
            }
            return Ok(Rotation::Reused(s));
        }
        if !s.is_live(now) {
            return Ok(Rotation::Ended(s));
        }
        let idle = (now + idle_ttl_ms).min(s.absolute_expires_at);
        let mut tx = crate::begin(self.pool).await?;
        insert_token(&mut tx, new_hash, s.id, generation + 1, now).await?;
        sqlx::query("UPDATE sessions SET last_used_at = $1, idle_expires_at = $2 WHERE id = $3")
            .bind(now)
            .bind(idle)
            .bind(s.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        s.last_used_at = now;
        s.idle_expires_at = idle;
        Ok(Rotation::Rotated(s))
    }

    /// A session by id, whoever's it is: for the request flow's liveness check, which then
    /// compares its user with the token's.
    pub async fn get(&self, id: SessionId) -> Result<Option<Session>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1");
        let r = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(self.pool)
            .await?;
        r.as_ref().map(session).transpose()
    }

    /// The session a refresh token (spent or not) belongs to.
    pub async fn session_of_token(&self, token_hash: &str) -> Result<Option<SessionId>> {
        let r = sqlx::query("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.pool)
            .await?;
        r.as_ref().map(|r| row::id(r, "session_id")).transpose()
    }

    /// The user's live sessions, newest first.
    pub async fn list_live(&self, user: UserId) -> Result<Vec<Session>> {
        let now = now_ms();
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
             AND idle_expires_at > $2 AND absolute_expires_at > $2 ORDER BY created_at DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user.to_string())
            .bind(now)
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(session).collect()
    }

    /// Revokes one of the user's sessions; `NotFound` when it is not theirs or not live.
    pub async fn revoke(&self, user: UserId, id: SessionId, why: &str) -> Result<()> {
        match self.end(user, Some(id), why).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    /// Revokes every live session of the user except `keep`; returns how many ended.
    pub async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        why: &str,
    ) -> Result<u64> {
        let keep = keep.map(|k| k.to_string()).unwrap_or_default();
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
             WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4",
        )
        .bind(now_ms())
        .bind(why)
        .bind(user.to_string())
        .bind(keep)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn end(&self, user: UserId, id: Option<SessionId>, why: &str) -> Result<u64> {
        let Some(id) = id else { return Ok(0) };
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
             WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(why)
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    hash: &str,
    session: SessionId,
    generation: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(hash)
    .bind(session.to_string())
    .bind(generation)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::time::Duration;

    async fn on_both(test: impl AsyncFn(&Store)) {
        crate::testing::on_sqlite(&test).await;
        crate::testing::on_postgres(&test).await;
    }

    async fn start(store: &Store, idle_ttl_ms: i64, absolute_ttl_ms: i64, first: &str) -> Session {
        let user = store
            .users()
            .create(&format!("{first}@x.test"), "hash", false)
            .await
            .expect("user");
        let new = NewSession {
            user_id: user.id,
            method: "password",
            ip: "127.0.0.1",
            user_agent: "test",
            idle_ttl_ms,
            absolute_ttl_ms,
        };
        store.sessions().create(new, first).await.expect("session")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_token_unused_past_the_idle_expiry_ends() {
        on_both(async |store: &Store| {
            start(store, 150, 60_000, "idle-a").await;
            tokio::time::sleep(Duration::from_millis(250)).await;
            let r = store
                .sessions()
                .rotate("idle-a", "idle-b", 150)
                .await
                .unwrap();
            assert!(matches!(r, Rotation::Ended(_)), "{r:?}");
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn use_extends_the_idle_expiry_but_never_past_the_absolute_one() {
        on_both(async |store: &Store| {
            let first = start(store, 1_000, 1_200, "abs-a").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let r = store
                .sessions()
                .rotate("abs-a", "abs-b", 1_000)
                .await
                .unwrap();
            let Rotation::Rotated(s) = r else {
                panic!("a use within the idle window: {r:?}")
            };
            // Renewed, but capped at the absolute expiry set at sign-in.
            assert!(s.idle_expires_at > first.idle_expires_at);
            assert_eq!(s.idle_expires_at, first.absolute_expires_at);
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            let r = store
                .sessions()
                .rotate("abs-b", "abs-c", 1_000)
                .await
                .unwrap();
            assert!(matches!(r, Rotation::Ended(_)), "{r:?}");
        })
        .await
    }
}
