//! Usage counters: tokens, cost and calls per subject and period. Counters are only ever
//! added to (`UPSERT … + excluded`), so several nodes flushing at once never lose a count.

use crate::{Result, Store};
use sqlx::Row;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
    pub calls: i64,
}

impl Counter {
    pub fn add(&mut self, other: Counter) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_micros += other.cost_micros;
        self.calls += other.calls;
    }
    pub fn tokens(&self) -> i64 {
        self.input_tokens + self.output_tokens
    }
}

pub struct Usage<'a> {
    pub(crate) store: &'a Store,
}

impl Usage<'_> {
    /// The counter of `subject` in `period` (zero if none).
    pub async fn get(&self, subject: &str, period: &str) -> Result<Counter> {
        let r = sqlx::query(
            "SELECT input_tokens, output_tokens, cost_micros, calls FROM usage_counters \
             WHERE subject = $1 AND period = $2",
        )
        .bind(subject)
        .bind(period)
        .fetch_optional(&self.store.pool)
        .await?;
        Ok(match r {
            Some(r) => Counter {
                input_tokens: r.try_get("input_tokens")?,
                output_tokens: r.try_get("output_tokens")?,
                cost_micros: r.try_get("cost_micros")?,
                calls: r.try_get("calls")?,
            },
            None => Counter::default(),
        })
    }

    /// Adds each delta to its counter, in one transaction.
    pub async fn add(&self, deltas: &[((String, String), Counter)]) -> Result<()> {
        let mut tx = crate::begin(&self.store.pool).await?;
        for ((subject, period), d) in deltas {
            sqlx::query(
                "INSERT INTO usage_counters (subject, period, input_tokens, output_tokens, \
                 cost_micros, calls) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (subject, period) DO UPDATE SET \
                 input_tokens = usage_counters.input_tokens + excluded.input_tokens, \
                 output_tokens = usage_counters.output_tokens + excluded.output_tokens, \
                 cost_micros = usage_counters.cost_micros + excluded.cost_micros, \
                 calls = usage_counters.calls + excluded.calls",
            )
            .bind(subject)
            .bind(period)
            .bind(d.input_tokens)
            .bind(d.output_tokens)
            .bind(d.cost_micros)
            .bind(d.calls)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_both_engines;

    /// Nodes flushing at once add up: no count is overwritten by another's.
    async fn concurrent_flushes_add_up(store: &Store) {
        let one = Counter {
            input_tokens: 3,
            output_tokens: 5,
            cost_micros: 7,
            calls: 1,
        };
        let key = ("provider_key:k".to_string(), "2026-12".to_string());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let batch = vec![
                    (key.clone(), one),
                    (("assistant:a".into(), "2026-12".into()), one),
                ];
                tokio::spawn(async move {
                    for _ in 0..5 {
                        store.usage().add(&batch).await.expect("add");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let total = store.usage().get(&key.0, &key.1).await.unwrap();
        assert_eq!(
            total,
            Counter {
                input_tokens: 120,
                output_tokens: 200,
                cost_micros: 280,
                calls: 40
            }
        );
        // Another period is another counter.
        let next = store.usage().get(&key.0, "2027-01").await.unwrap();
        assert_eq!(next, Counter::default());
    }

    on_both_engines!(concurrent_flushes_add_up);
}
