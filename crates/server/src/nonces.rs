//! Where single-use nonces (the OAuth `state`) are recorded: in Redis when `redis_url` is
//! set, so every node sees every use at once, otherwise in the database, which the nodes of
//! a small deployment share already. Either way a nonce is accepted once, and a store that
//! cannot answer is an error (503), never a first use.

use bastion_auth::nonce::{nonce_hash, NonceError, RedisNonces};
use bastion_store::Store;
use std::time::Duration;

/// The embedded store remembers a nonce at least this long: the row's expiry is computed
/// here and checked again by the store, and a shorter one could pass between the two.
const MIN_EMBEDDED_TTL: Duration = Duration::from_secs(1);

pub enum NonceStore {
    Redis(RedisNonces),
    Embedded(Store),
}

impl NonceStore {
    /// `true` the first time `nonce` is seen, `false` on any later use within `ttl`. Give a
    /// `ttl` at least as long as the value carrying the nonce stays valid.
    pub async fn consume(&self, nonce: &str, ttl: Duration) -> Result<bool, NonceError> {
        match self {
            NonceStore::Redis(redis) => redis.consume(nonce, ttl).await,
            NonceStore::Embedded(store) => {
                let ttl = ttl.max(MIN_EMBEDDED_TTL);
                let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                let expires_at = bastion_store::now_ms().saturating_add(ttl_ms);
                store
                    .nonces()
                    .consume(&nonce_hash(nonce), expires_at)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "nonce store: database unavailable; refusing the nonce");
                        NonceError::Unavailable(Box::new(e))
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn redis() -> NonceStore {
        let conn = bastion_auth::shared_redis::connect("redis://127.0.0.1:6379/")
            .await
            .expect("Redis must run at 127.0.0.1:6379");
        let prefix = format!(
            "bastion-test:nonce:{}:",
            hex::encode(rand::random::<[u8; 8]>())
        );
        NonceStore::Redis(RedisNonces::new(conn, prefix))
    }

    async fn sqlite(dir: &tempfile::TempDir) -> NonceStore {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        NonceStore::Embedded(Store::open(&url).await.expect("open SQLite"))
    }

    async fn accepted_once(store: NonceStore) {
        let ttl = Duration::from_secs(60);
        assert!(store.consume("state-a", ttl).await.expect("consume"));
        assert!(
            !store.consume("state-a", ttl).await.expect("consume"),
            "replay"
        );
        assert!(store.consume("state-b", ttl).await.expect("consume"));
        // A tiny ttl still records the use.
        assert!(store
            .consume("state-c", Duration::ZERO)
            .await
            .expect("consume"));
        assert!(!store
            .consume("state-c", Duration::ZERO)
            .await
            .expect("consume"));
    }

    async fn one_of_sixteen_wins(store: NonceStore) {
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.consume("raced", Duration::from_secs(60)).await })
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

    #[tokio::test]
    async fn redis_accepts_a_nonce_once() {
        accepted_once(redis().await).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_lets_one_of_sixteen_concurrent_uses_win() {
        one_of_sixteen_wins(redis().await).await
    }

    #[tokio::test]
    async fn sqlite_accepts_a_nonce_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        accepted_once(sqlite(&dir).await).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_lets_one_of_sixteen_concurrent_uses_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        one_of_sixteen_wins(sqlite(&dir).await).await
    }

    #[tokio::test]
    async fn postgres_accepts_a_nonce_once() {
        let db = bastion_test_pg::PgDatabase::create().await;
        let store = Store::open(&db.url).await.expect("open PostgreSQL");
        accepted_once(NonceStore::Embedded(store.clone())).await;
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_lets_one_of_sixteen_concurrent_uses_win() {
        let db = bastion_test_pg::PgDatabase::create().await;
        let store = Store::open(&db.url).await.expect("open PostgreSQL");
        one_of_sixteen_wins(NonceStore::Embedded(store.clone())).await;
        store.close().await;
    }

    #[tokio::test]
    async fn a_closed_database_is_an_error_not_a_first_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::open(&url).await.expect("open SQLite");
        store.close().await;
        let nonces = NonceStore::Embedded(store);
        assert!(matches!(
            nonces.consume("state", Duration::from_secs(60)).await,
            Err(NonceError::Unavailable(_))
        ));
    }
}
