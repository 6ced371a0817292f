//! Single-use nonces, for values that must be accepted once only, such as the OAuth `state`
//! of a sign-in: a captured callback URL replayed later, or raced by a second tab, must not
//! sign anyone in a second time.
//!
//! [`RedisNonces`] keeps a used nonce in Redis with `SET … NX PX ttl`: one atomic command, so
//! of any number of concurrent uses on any number of nodes exactly one wins. The store crate
//! has the same contract over SQL (`bastion_store::nonces`) for deployments without Redis.
//! Only the nonce's SHA-256 is stored ([`nonce_hash`]), so the store never holds a value that
//! could still be presented.

use crate::shared_redis::ConnectionManager;
use sha2::{Digest, Sha256};
use std::time::Duration;
use thiserror::Error;

/// Why a nonce could not be checked. The caller must then refuse the request (503): treating
/// an unknown answer as "first use" would reopen the replay this module closes.
#[derive(Debug, Error)]
pub enum NonceError {
    #[error("the nonce store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The stored form of a nonce: lower-case hex SHA-256, 64 characters.
pub fn nonce_hash(nonce: &str) -> String {
    hex::encode(Sha256::digest(nonce.as_bytes()))
}

/// Used nonces in Redis, shared by every node that uses the same Redis and prefix.
#[derive(Clone)]
pub struct RedisNonces {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisNonces {
    /// Keys are `{prefix}{sha256 hex}`, e.g. with prefix `"bastion:nonce:"`.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> RedisNonces {
        RedisNonces {
            conn,
            prefix: prefix.into(),
        }
    }

    /// `true` the first time `nonce` is seen, `false` for every later use within `ttl`. The
    /// ttl should be at least the lifetime of the value that carries the nonce, so the record
    /// of its use does not expire while the value could still be accepted. A zero ttl counts
    /// as 1 ms (Redis refuses 0).
    pub async fn consume(&self, nonce: &str, ttl: Duration) -> Result<bool, NonceError> {
        let key = format!("{}{}", self.prefix, nonce_hash(nonce));
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        // `OK` when this call set the key, nil when it existed already.
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "nonce store: Redis unavailable; refusing the nonce");
                NonceError::Unavailable(Box::new(e))
            })?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_redis::{connect, relay, TEST_URL};

    fn prefix() -> String {
        format!(
            "bastion-test:nonce:{}:",
            hex::encode(rand::random::<[u8; 8]>())
        )
    }

    async fn nonces(prefix: &str) -> RedisNonces {
        let conn = connect(TEST_URL)
            .await
            .expect("Redis must run at 127.0.0.1:6379");
        RedisNonces::new(conn, prefix)
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        assert_eq!(
            nonce_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn a_nonce_is_accepted_once() {
        let n = nonces(&prefix()).await;
        let ttl = Duration::from_secs(5);
        assert!(n.consume("state-1", ttl).await.expect("redis"));
        assert!(!n.consume("state-1", ttl).await.expect("redis"), "replay");
        assert!(!n.consume("state-1", ttl).await.expect("redis"), "replay");
        assert!(n.consume("state-2", ttl).await.expect("redis"));
    }

    #[tokio::test]
    async fn the_record_expires_with_its_ttl() {
        let p = prefix();
        let n = nonces(&p).await;
        assert!(n
            .consume("short", Duration::from_millis(300))
            .await
            .expect("redis"));
        let mut conn = connect(TEST_URL).await.expect("redis");
        let pttl: i64 = redis::cmd("PTTL")
            .arg(format!("{p}{}", nonce_hash("short")))
            .query_async(&mut conn)
            .await
            .expect("pttl");
        assert!(0 < pttl && pttl <= 300, "{pttl}");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(n
            .consume("short", Duration::from_millis(300))
            .await
            .expect("redis"));
    }

    #[tokio::test]
    async fn only_the_hash_is_stored() {
        let p = prefix();
        let n = nonces(&p).await;
        n.consume("secret-state", Duration::from_millis(500))
            .await
            .expect("redis");
        let mut conn = connect(TEST_URL).await.expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{p}*"))
            .query_async(&mut conn)
            .await
            .expect("keys");
        assert_eq!(keys, vec![format!("{p}{}", nonce_hash("secret-state"))]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_sixteen_concurrent_uses_exactly_one_wins() {
        let p = prefix();
        // Two managers, as on two nodes.
        let a = nonces(&p).await;
        let b = nonces(&p).await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let n = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { n.consume("raced", Duration::from_secs(5)).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            if t.await.expect("task").expect("redis") {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn an_outage_is_an_error_not_a_first_use() {
        let relay = relay::start().await;
        let conn = connect(&relay.url).await.expect("Redis through the relay");
        let n = RedisNonces::new(conn, prefix());
        relay.cut();
        assert!(matches!(
            n.consume("during-outage", Duration::from_secs(5)).await,
            Err(NonceError::Unavailable(_))
        ));
    }
}
