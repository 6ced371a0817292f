//! Usage, and the spend caps and token limits enforced against it. Counts are kept in memory
//! and added to the store in the background (every `usage_flush_ms`), so a model call waits
//! on no database write; a counter is re-read from the store after a few seconds, which is
//! how other nodes' usage comes in. A cap can therefore be overshot by what other nodes spent
//! in that window, never by this node's own calls.

use bastion_store::usage::Counter;
use bastion_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A counter's key: `(subject, period)`.
pub type CounterKey = (String, String);

pub struct Meter {
    store: Store,
    /// The counter as last read from the store plus what this node added since.
    known: moka::sync::Cache<CounterKey, Arc<Mutex<Counter>>>,
    /// Added by this node and not yet written.
    pending: Mutex<HashMap<CounterKey, Counter>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain counters behind, still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Meter {
    pub fn new(store: Store, reread_after: Duration) -> Meter {
        Meter {
            store,
            known: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(reread_after)
                .build(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// What `subject` has used in `period`, as far as this node knows.
    pub async fn used(&self, key: &CounterKey) -> Result<Counter, bastion_store::StoreError> {
        if let Some(c) = self.known.get(key) {
            return Ok(*lock(&c));
        }
        let mut c = self.store.usage().get(&key.0, &key.1).await?;
        if let Some(p) = lock(&self.pending).get(key) {
            c.add(*p);
        }
        self.known.insert(key.clone(), Arc::new(Mutex::new(c)));
        Ok(c)
    }

    /// Adds `delta` to each counter.
    pub fn record(&self, keys: &[CounterKey], delta: Counter) {
        let mut pending = lock(&self.pending);
        for key in keys {
            pending.entry(key.clone()).or_default().add(delta);
            if let Some(c) = self.known.get(key) {
                lock(&c).add(delta);
            }
        }
    }

    /// Writes what is pending. On failure it stays pending for the next flush.
    pub async fn flush(&self) {
        let batch: Vec<(CounterKey, Counter)> = lock(&self.pending).drain().collect();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.usage().add(&batch).await {
            tracing::error!(error = %e, "usage counters could not be written; retrying");
            metrics::counter!("bastion_usage_write_failures_total").increment(1);
            let mut pending = lock(&self.pending);
            for (k, d) in batch {
                pending.entry(k).or_default().add(d);
            }
        }
    }
}

/// `2026-12` (UTC): the period of monthly counters.
pub fn month(now: time::OffsetDateTime) -> String {
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// `2026-12-01` (UTC): the period of daily counters.
pub fn day(now: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// Time left until the next UTC midnight, when daily limits reset.
pub fn until_tomorrow(now: time::OffsetDateTime) -> Duration {
    let left = 86_400
        - i64::from(now.hour()) * 3600
        - i64::from(now.minute()) * 60
        - i64::from(now.second());
    Duration::from_secs(left.max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_are_utc_calendar_months_and_days() {
        let t = datetime!(2026-02-03 23:59:30 UTC);
        assert_eq!(month(t), "2026-02");
        assert_eq!(day(t), "2026-02-03");
        assert_eq!(until_tomorrow(t), Duration::from_secs(30));
    }
}
