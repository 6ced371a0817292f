//! Single-use nonces (the OAuth `state`) for deployments without Redis: a row exists once a
//! nonce has been used. The primary key makes the use atomic on both engines: of concurrent
//! inserts of one hash exactly one adds a row, whatever the number of nodes sharing the
//! database. The caller passes the nonce's hash, never the nonce.

use crate::{now_ms, Result, StoreError};
use sqlx::AnyPool;

pub struct Nonces<'a> {
    pub(crate) pool: &'a AnyPool,
}

impl Nonces<'_> {
    /// Records the use of `nonce_hash`, remembered until `expires_at_ms` (unix ms): `true` if
    /// this is its first use, `false` if it was used before. Expired rows are purged first so
    /// the table stays as small as the nonces still alive; a nonce whose row was purged is not
    /// replayable anyway, because the value carrying it expires with it (that is what
    /// `expires_at_ms` must say). An `expires_at_ms` not in the future is refused (`Invalid`):
    /// its row could be purged by a concurrent call and the nonce accepted twice.
    pub async fn consume(&self, nonce_hash: &str, expires_at_ms: i64) -> Result<bool> {
        let now = now_ms();
        if expires_at_ms <= now {
            return Err(StoreError::Invalid("the nonce has already expired".into()));
        }
        sqlx::query("DELETE FROM used_nonces WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO used_nonces (nonce_hash, expires_at) VALUES ($1, $2) \
             ON CONFLICT (nonce_hash) DO NOTHING",
        )
        .bind(nonce_hash)
        .bind(expires_at_ms)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::{now_ms, Store, StoreError};
    use sqlx::Row;

    async fn a_nonce_is_consumed_once(store: &Store) {
        let later = now_ms() + 60_000;
        let nonces = store.nonces();
        assert!(nonces.consume("h1", later).await.expect("consume"));
        assert!(
            !nonces.consume("h1", later).await.expect("consume"),
            "replay"
        );
        assert!(
            !nonces.consume("h1", later + 5).await.expect("consume"),
            "replay"
        );
        assert!(nonces.consume("h2", later).await.expect("consume"));
    }

    async fn expired_rows_are_purged(store: &Store) {
        let soon = now_ms() + 100;
        assert!(store.nonces().consume("old", soon).await.expect("consume"));
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert!(store
            .nonces()
            .consume("new", now_ms() + 60_000)
            .await
            .expect("consume"));
        let rows = sqlx::query("SELECT nonce_hash FROM used_nonces")
            .fetch_all(&store.pool)
            .await
            .expect("select");
        let left: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("nonce_hash").expect("column"))
            .collect();
        assert_eq!(left, vec!["new".to_string()]);
    }

    async fn an_already_expired_nonce_is_refused(store: &Store) {
        assert!(matches!(
            store.nonces().consume("late", now_ms() - 1).await,
            Err(StoreError::Invalid(_))
        ));
    }

    async fn of_sixteen_concurrent_uses_exactly_one_wins(store: &Store) {
        let later = now_ms() + 60_000;
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.nonces().consume("raced", later).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            if t.await.expect("task").expect("consume") {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }

    crate::testing::on_both_engines!(
        a_nonce_is_consumed_once,
        expired_rows_are_purged,
        an_already_expired_nonce_is_refused,
        of_sixteen_concurrent_uses_exactly_one_wins,
    );
}
