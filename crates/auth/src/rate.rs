//! Request-rate limits per credential (an API key's `rate_limit_per_minute`): a fixed
//! window of one minute, counted in Redis across nodes when configured, in-process
//! otherwise. A fixed window lets a client burst up to twice its limit across a window
//! boundary, which is acceptable for a cost guard and keeps the check to one round trip.
//!
//! As with sign-in attempts, an unreachable Redis refuses the request rather than letting
//! an uncounted one through.

use moka::sync::Cache;
use redis::aio::ConnectionManager;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum RateError {
    /// Over the limit; the window ends after this long.
    #[error("rate limit reached")]
    Limited(Duration),
    #[error("the rate limit store is unreachable")]
    Unavailable(#[source] redis::RedisError),
}

enum Backend {
    /// (window number, requests counted in it).
    Memory(Cache<String, (u64, u32)>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
}

pub struct RateLimiter {
    backend: Backend,
}

/// The current window's number and how long it has left.
fn window_now() -> (u64, Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let w = WINDOW.as_millis() as u64;
    let ms = now.as_millis() as u64;
    (ms / w, Duration::from_millis(w - ms % w))
}

/// Count the request and let Redis drop the counter with its window.
/// KEYS: counter. ARGV: window ms. Returns the count including this request.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

impl RateLimiter {
    pub fn memory() -> RateLimiter {
        RateLimiter {
            backend: Backend::Memory(
                Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(WINDOW * 2)
                    .build(),
            ),
        }
    }

    pub fn redis(conn: ConnectionManager, key_prefix: impl Into<String>) -> RateLimiter {
        RateLimiter {
            backend: Backend::Redis {
                conn,
                prefix: key_prefix.into(),
            },
        }
    }

    /// Counts one request under `key` and refuses it if it is past `limit` in this window.
    pub async fn hit(&self, key: &str, limit: u32) -> Result<(), RateError> {
        let (window, left) = window_now();
        let count = match &self.backend {
            Backend::Memory(cache) => {
                let entry = cache.entry(key.to_string()).and_upsert_with(|old| {
                    match old.map(|e| e.into_value()) {
                        Some((w, n)) if w == window => (w, n.saturating_add(1)),
                        _ => (window, 1),
                    }
                });
                u64::from(entry.into_value().1)
            }
            Backend::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                redis::cmd("EVAL")
                    .arg(HIT)
                    .arg(1)
                    .arg(format!("{prefix}{key}:{window}"))
                    .arg(WINDOW.as_millis() as u64)
                    .query_async::<u64>(&mut conn)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "rate limiter: cannot count; refusing the request");
                        RateError::Unavailable(e)
                    })?
            }
        };
        if count > u64::from(limit) {
            return Err(RateError::Limited(left));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limit_counts_per_key() {
        let r = RateLimiter::memory();
        let (w0, _) = window_now();
        for _ in 0..3 {
            r.hit("a", 3).await.expect("within the limit");
        }
        // Unless the minute turned over meanwhile, the fourth is refused.
        let fourth = r.hit("a", 3).await;
        if window_now().0 == w0 {
            assert!(matches!(fourth, Err(RateError::Limited(_))));
        }
        r.hit("b", 3).await.expect("another key has its own count");
    }

    mod redis_backend {
        use super::*;
        use crate::shared_redis::{connect, relay, TestPrefix, TEST_URL};

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn two_nodes_sharing_redis_count_together() {
            let p = TestPrefix::new();
            let node = || async {
                let conn = connect(TEST_URL).await.expect("Redis at 127.0.0.1:6379");
                RateLimiter::redis(conn, p.0.clone())
            };
            let (a, b) = (node().await, node().await);
            let (w0, _) = window_now();
            a.hit("k", 3).await.expect("1");
            b.hit("k", 3).await.expect("2");
            a.hit("k", 3).await.expect("3");
            let fourth = b.hit("k", 3).await;
            if window_now().0 == w0 {
                assert!(
                    matches!(fourth, Err(RateError::Limited(_))),
                    "requests on both nodes count against one limit: {fourth:?}"
                );
            }
        }

        #[tokio::test]
        async fn a_redis_outage_refuses_the_request() {
            let p = TestPrefix::new();
            let relay = relay::start().await;
            let conn = connect(&relay.url).await.expect("Redis through the relay");
            let r = RateLimiter::redis(conn, p.0.clone());
            r.hit("k", 100).await.expect("counted");
            relay.cut();
            assert!(matches!(
                r.hit("k", 100).await,
                Err(RateError::Unavailable(_))
            ));
        }
    }
}
