//! Failure budgets over fixed windows: "at most N failed guesses per hour and per day" for a
//! key (a user, an address, everyone). Unlike [`crate::attempts`], which slows a guesser down
//! exponentially, a budget is a hard cap: the chance that guessing succeeds stays bounded by
//! the budget, however patient the guesser is. Counted in Redis across nodes when configured,
//! in-process otherwise; an unreachable Redis refuses the guess rather than letting an
//! uncounted one through.

use moka::sync::Cache;
use redis::aio::ConnectionManager;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BudgetError {
    /// The budget of a window is spent; it renews after this long.
    #[error("the failure budget is spent")]
    Spent(Duration),
    #[error("the failure budget store is unreachable")]
    Unavailable(#[source] redis::RedisError),
}

/// One cap: `limit` failures per `window` under keys with this `name`.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub limit: u64,
    pub window: Duration,
}

enum Backend {
    Memory(Cache<String, u64>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
}

pub struct FailureBudget {
    backend: Backend,
}

fn window_of(window: Duration) -> (u64, Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let w = window.as_millis().max(1) as u64;
    (now / w, Duration::from_millis(w - now % w))
}

fn counter_key(key: &str, cap: Cap) -> (String, Duration) {
    let (n, left) = window_of(cap.window);
    (format!("{key}:{}:{n}", cap.window.as_secs()), left)
}

/// Add one and let Redis drop the counter with its window. KEYS: counter. ARGV: window ms.
const ADD: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

impl FailureBudget {
    /// In-process counters; `longest` is the longest window any cap uses.
    pub fn memory(longest: Duration) -> FailureBudget {
        FailureBudget {
            backend: Backend::Memory(
                Cache::builder()
                    .max_capacity(200_000)
                    .time_to_live(longest)
                    .build(),
            ),
        }
    }

    pub fn redis(conn: ConnectionManager, prefix: impl Into<String>) -> FailureBudget {
        FailureBudget {
            backend: Backend::Redis {
                conn,
                prefix: prefix.into(),
            },
        }
    }

    async fn count(&self, key: &str) -> Result<u64, BudgetError> {
        match &self.backend {
            Backend::Memory(c) => Ok(c.get(key).unwrap_or(0)),
            Backend::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                redis::cmd("GET")
                    .arg(format!("{prefix}{key}"))
                    .query_async::<Option<u64>>(&mut conn)
                    .await
                    .map(|n| n.unwrap_or(0))
                    .map_err(BudgetError::Unavailable)
            }
        }
    }

    /// Refuses when any `(key, cap)` has spent its budget in the current window.
    pub async fn check(&self, caps: &[(&str, Cap)]) -> Result<(), BudgetError> {
        let mut wait: Option<Duration> = None;
        for (key, cap) in caps {
            let (k, left) = counter_key(key, *cap);
            if self.count(&k).await? >= cap.limit {
                wait = Some(wait.unwrap_or_default().max(left));
            }
        }
        match wait {
            Some(w) => Err(BudgetError::Spent(w)),
            None => Ok(()),
        }
    }

    /// Counts one failure against every `(key, cap)`.
    pub async fn failed(&self, caps: &[(&str, Cap)]) -> Result<(), BudgetError> {
        for (key, cap) in caps {
            let (k, left) = counter_key(key, *cap);
            match &self.backend {
                Backend::Memory(c) => {
                    c.entry(k).and_upsert_with(|old| {
                        old.map(|e| e.into_value()).unwrap_or(0).saturating_add(1)
                    });
                }
                Backend::Redis { conn, prefix } => {
                    let mut conn = conn.clone();
                    redis::cmd("EVAL")
                        .arg(ADD)
                        .arg(1)
                        .arg(format!("{prefix}{k}"))
                        .arg(left.as_millis() as u64 + 1000)
                        .query_async::<u64>(&mut conn)
                        .await
                        .map_err(BudgetError::Unavailable)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    async fn spends_after_limit(b: FailureBudget) {
        let cap = Cap {
            limit: 3,
            window: HOUR,
        };
        let other = Cap {
            limit: 100,
            window: HOUR,
        };
        for _ in 0..3 {
            b.check(&[("user:a", cap), ("all", other)])
                .await
                .expect("within budget");
            b.failed(&[("user:a", cap), ("all", other)])
                .await
                .expect("counted");
        }
        assert!(matches!(
            b.check(&[("user:a", cap), ("all", other)]).await,
            Err(BudgetError::Spent(w)) if w <= HOUR
        ));
        b.check(&[("user:b", cap), ("all", other)])
            .await
            .expect("another user has its own");
    }

    #[tokio::test]
    async fn the_memory_budget_is_a_hard_cap_per_key() {
        spends_after_limit(FailureBudget::memory(HOUR)).await;
    }

    #[tokio::test]
    async fn the_redis_budget_is_shared_and_capped() {
        use crate::shared_redis::{connect, TestPrefix, TEST_URL};
        let p = TestPrefix::new();
        let conn = connect(TEST_URL).await.expect("Redis at 127.0.0.1:6379");
        spends_after_limit(FailureBudget::redis(conn.clone(), p.0.clone())).await;
        // A second node sharing Redis sees the spent budget.
        let other = FailureBudget::redis(conn, p.0.clone());
        let cap = Cap {
            limit: 3,
            window: HOUR,
        };
        assert!(other.check(&[("user:a", cap)]).await.is_err());
    }
}
