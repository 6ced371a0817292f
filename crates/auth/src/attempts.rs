//! Limits on failed sign-in attempts (password, TOTP, recovery code), so that guessing a
//! credential online costs an attacker time that grows with every wrong guess.
//!
//! The caller builds the keys and chooses what to count: typically one key per account
//! (`"pwd:acct:<email>"`, which stops a guesser spread over many addresses) and one per
//! client address (`"pwd:ip:<ip>"`, which stops one address spraying many accounts). Before
//! verifying a credential it calls [`AttemptLimiter::check`] for each key; after a wrong one,
//! [`AttemptLimiter::record_failure`]; after a right one, [`AttemptLimiter::record_success`]
//! on the account key (not on the address key: one valid account of the attacker's own must
//! not reset the count of the address it sprays from).
//!
//! Counting follows [`Policy`]: the first `free_failures` failures cost nothing; each one after
//! that locks the key for `base_lock * 2^(failures - free_failures)`, at most `max_lock`. The
//! count is forgotten `window` after the last failure (plus the lock it earned), so slow,
//! occasional typos never add up, while a sustained attack keeps doubling its wait.
//!
//! Two backends: [`AttemptLimiter::memory`] for a single node, and [`AttemptLimiter::redis`]
//! so that all nodes of a cluster count together (an attacker gains nothing by spreading
//! guesses over nodes). Keys are hashed (SHA-256) before they are stored, so neither backend
//! holds e-mail addresses in clear and a long key costs no more memory than a short one.
//!
//! Failure of the shared backend never makes sign-in fail open: [`AttemptLimiter::check`]
//! returns [`AttemptError::Unavailable`] (the server answers 503) rather than letting an
//! uncounted guess through.

use moka::sync::Cache;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use thiserror::Error;

/// How many failures are free and how long the locks after them last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures within `window` that cost nothing (typos happen).
    pub free_failures: u32,
    /// How long a count is remembered after the last failure.
    pub window: Duration,
    /// The unit of the exponential lock: failure `free_failures + k` locks for `base_lock * 2^k`.
    pub base_lock: Duration,
    /// The longest lock: the cap keeps a locked-out legitimate user's wait bounded.
    pub max_lock: Duration,
}

impl Default for Policy {
    /// 5 free failures per 15 minutes; then 2 s, 4 s, 8 s, … up to 15 minutes.
    fn default() -> Self {
        Policy {
            free_failures: 5,
            window: Duration::from_secs(15 * 60),
            base_lock: Duration::from_secs(1),
            max_lock: Duration::from_secs(15 * 60),
        }
    }
}

/// Doubling stops here; 2^40 ms is decades, so any real `max_lock` caps first. The Lua
/// script below uses the same bound so both backends compute the same locks.
const MAX_EXPONENT: u64 = 40;

impl Policy {
    /// The lock earned by the `failures`-th counted failure, `None` while failures are free.
    /// Computed in whole milliseconds, the resolution of Redis expiries, and never zero.
    pub fn lock_for(&self, failures: u64) -> Option<Duration> {
        let over = failures.checked_sub(u64::from(self.free_failures))?;
        if over == 0 {
            return None;
        }
        let base = millis(self.base_lock);
        let max = millis(self.max_lock);
        let lock = base
            .saturating_mul(1u64 << over.min(MAX_EXPONENT))
            .min(max)
            .max(1);
        Some(Duration::from_millis(lock))
    }

    /// How long a count lives after a failure that earned `lock`.
    fn memory_ttl(&self, lock: Option<Duration>) -> Duration {
        (self.window + lock.unwrap_or_default()).max(Duration::from_millis(1))
    }
}

/// A key is locked: refuse the attempt without checking the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("too many failed attempts: retry after {} s", self.retry_after_secs())]
pub struct Locked {
    /// What is left of the lock (never zero). For the `Retry-After` header use
    /// [`Locked::retry_after_secs`]: this exact value lets tests use millisecond policies.
    pub retry_after: Duration,
}

impl Locked {
    fn new(retry_after: Duration) -> Locked {
        Locked {
            retry_after: retry_after.max(Duration::from_millis(1)),
        }
    }

    /// Whole seconds to wait, rounded up and at least 1, as `Retry-After` wants: a client
    /// told "0" would retry at once and meet the same lock.
    pub fn retry_after_secs(&self) -> u64 {
        let ms = millis(self.retry_after);
        ms.div_ceil(1000).max(1)
    }
}

/// Why an attempt may not go ahead.
#[derive(Debug, Error)]
pub enum AttemptError {
    /// The key is locked; the server answers 429 with `Retry-After`.
    #[error(transparent)]
    Locked(#[from] Locked),
    /// The shared counter cannot be read, so whether the key is locked is unknown. Sign-in
    /// fails closed (the server answers 503): an outage must not lift every lock.
    #[error("the attempt limiter is unavailable")]
    Unavailable(#[source] redis::RedisError),
}

/// Counts failed attempts per key and locks keys that fail too often. Cheap to clone.
#[derive(Clone)]
pub struct AttemptLimiter {
    policy: Policy,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Memory(Cache<[u8; 32], Entry>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
}

/// One key's count in memory.
#[derive(Clone, Debug)]
struct Entry {
    failures: u64,
    locked_until: Option<Instant>,
    /// When the count is forgotten; checked on read as well, so correctness does not depend
    /// on when the cache gets round to evicting it.
    expires: Instant,
    /// The lifetime given to the cache, so it evicts the entry on its own.
    ttl: Duration,
}

/// Lets the cache drop each entry when its count expires: memory is bounded by time as well
/// as by capacity.
struct EntryExpiry;

impl moka::Expiry<[u8; 32], Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &[u8; 32], value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &[u8; 32],
        value: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// How many keys the in-process backend remembers at most. A flood of distinct keys beyond
/// this evicts counts (moka admits by frequency, so a key under sustained attack tends to
/// stay); with the default per-entry size of well under 100 bytes this is a few MB.
pub const DEFAULT_MEMORY_CAPACITY: u64 = 100_000;

/// The Redis side of a failure, atomic so that failures on several nodes are all counted:
/// count it, and if it is past the free ones, lock the key. The count lives `window` past the
/// lock it earned, so an attacker who waits out a lock meets a longer one on the next miss.
/// KEYS: count, lock. ARGV: window ms, free failures, base lock ms, max lock ms, max exponent.
/// Returns the lock in ms, 0 for none.
const RECORD_FAILURE: &str = r"
local n = redis.call('INCR', KEYS[1])
local over = n - tonumber(ARGV[2])
local lock = 0
if over > 0 then
  local e = math.min(over, tonumber(ARGV[5]))
  lock = math.floor(math.max(math.min(tonumber(ARGV[3]) * (2 ^ e), tonumber(ARGV[4])), 1))
  redis.call('SET', KEYS[2], '1', 'PX', lock)
end
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[1]) + lock, 1))
return lock
";

impl AttemptLimiter {
    /// In-process counting for a single node, bounded to [`DEFAULT_MEMORY_CAPACITY`] keys.
    pub fn memory(policy: Policy) -> AttemptLimiter {
        AttemptLimiter::memory_with_capacity(policy, DEFAULT_MEMORY_CAPACITY)
    }

    /// In-process counting remembering at most `capacity` keys.
    pub fn memory_with_capacity(policy: Policy, capacity: u64) -> AttemptLimiter {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(EntryExpiry)
            .build();
        AttemptLimiter {
            policy,
            backend: Backend::Memory(cache),
        }
    }

    /// Counting shared by every node that uses the same Redis and `key_prefix`. Expiry is
    /// Redis's own, so the nodes' clocks need not agree.
    pub fn redis(
        conn: ConnectionManager,
        key_prefix: impl Into<String>,
        policy: Policy,
    ) -> AttemptLimiter {
        AttemptLimiter {
            policy,
            backend: Backend::Redis {
                conn,
                prefix: key_prefix.into(),
            },
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether an attempt under `key` may go ahead. Call it before verifying the credential,
    /// so a locked key learns nothing, not even whether its guess was right.
    pub async fn check(&self, key: &str) -> Result<(), AttemptError> {
        match &self.backend {
            Backend::Memory(cache) => {
                let now = Instant::now();
                let locked = cache
                    .get(&digest(key))
                    .filter(|e| e.expires > now)
                    .and_then(|e| e.locked_until)
                    .filter(|until| *until > now);
                match locked {
                    Some(until) => Err(Locked::new(until - now).into()),
                    None => Ok(()),
                }
            }
            Backend::Redis { conn, prefix } => {
                let (_, lock_key) = redis_keys(prefix, key);
                let mut conn = conn.clone();
                let pttl: i64 = redis::cmd("PTTL")
                    .arg(&lock_key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "attempt limiter: cannot read a lock; refusing the attempt");
                        AttemptError::Unavailable(e)
                    })?;
                match pttl {
                    // -2: no lock. -1 (a lock without expiry) is never written by this module.
                    ms if ms > 0 => Err(Locked::new(Duration::from_millis(ms as u64)).into()),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Counts a failed attempt under `key`. Returns the lock this failure set (or lengthened),
    /// `None` while failures are still free. If Redis cannot be reached the failure is logged
    /// and not counted: the attempt has failed anyway, and [`AttemptLimiter::check`] refuses
    /// every attempt for as long as Redis stays unreachable.
    pub async fn record_failure(&self, key: &str) -> Option<Locked> {
        match &self.backend {
            Backend::Memory(cache) => {
                let now = Instant::now();
                let policy = self.policy;
                let mut earned = None;
                cache.entry(digest(key)).and_compute_with(|current| {
                    let previous = current
                        .map(|e| e.into_value())
                        .filter(|e| e.expires > now)
                        .map_or(0, |e| e.failures);
                    let failures = previous.saturating_add(1);
                    let lock = policy.lock_for(failures);
                    earned = lock;
                    let ttl = policy.memory_ttl(lock);
                    moka::ops::compute::Op::Put(Entry {
                        failures,
                        locked_until: lock.map(|d| now + d),
                        expires: now + ttl,
                        ttl,
                    })
                });
                earned.map(Locked::new)
            }
            Backend::Redis { conn, prefix } => {
                let (count_key, lock_key) = redis_keys(prefix, key);
                let mut conn = conn.clone();
                let result: redis::RedisResult<i64> = redis::cmd("EVAL")
                    .arg(RECORD_FAILURE)
                    .arg(2)
                    .arg(&count_key)
                    .arg(&lock_key)
                    .arg(millis(self.policy.window))
                    .arg(self.policy.free_failures)
                    .arg(millis(self.policy.base_lock))
                    .arg(millis(self.policy.max_lock))
                    .arg(MAX_EXPONENT)
                    .query_async(&mut conn)
                    .await;
                match result {
                    Ok(ms) if ms > 0 => Some(Locked::new(Duration::from_millis(ms as u64))),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "attempt limiter: cannot count a failed attempt");
                        None
                    }
                }
            }
        }
    }

    /// Forgets the count (and any lock) of `key`: a user who got in is not penalised for the
    /// typos before. Errors are logged: the worst outcome is a stale count that expires.
    pub async fn record_success(&self, key: &str) {
        match &self.backend {
            Backend::Memory(cache) => cache.invalidate(&digest(key)),
            Backend::Redis { conn, prefix } => {
                let (count_key, lock_key) = redis_keys(prefix, key);
                let mut conn = conn.clone();
                let result: redis::RedisResult<i64> = redis::cmd("DEL")
                    .arg(&count_key)
                    .arg(&lock_key)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, "attempt limiter: cannot clear a count");
                }
            }
        }
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The count and lock keys of `key`. The hash sits in a `{hash tag}` so both keys live on the
/// same Redis Cluster slot, as a script touching both requires.
fn redis_keys(prefix: &str, key: &str) -> (String, String) {
    let h = hex::encode(digest(key));
    (format!("{prefix}{{{h}}}:n"), format!("{prefix}{{{h}}}:l"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short_policy() -> Policy {
        Policy {
            free_failures: 3,
            window: Duration::from_millis(500),
            base_lock: Duration::from_millis(50),
            max_lock: Duration::from_millis(400),
        }
    }

    #[test]
    fn the_default_policy_is_five_free_then_doubling_up_to_fifteen_minutes() {
        let p = Policy::default();
        assert_eq!(p.lock_for(5), None);
        assert_eq!(p.lock_for(6), Some(Duration::from_secs(2)));
        assert_eq!(p.lock_for(7), Some(Duration::from_secs(4)));
        assert_eq!(p.lock_for(1_000), Some(Duration::from_secs(900)));
        assert_eq!(p.lock_for(u64::MAX), Some(Duration::from_secs(900)));
    }

    #[test]
    fn retry_after_secs_rounds_up_and_is_never_zero() {
        assert_eq!(Locked::new(Duration::from_millis(1)).retry_after_secs(), 1);
        assert_eq!(Locked::new(Duration::ZERO).retry_after_secs(), 1);
        assert_eq!(
            Locked::new(Duration::from_millis(2001)).retry_after_secs(),
            3
        );
        assert_eq!(Locked::new(Duration::from_secs(4)).retry_after_secs(), 4);
    }

    // The behaviour tests run the same scenario on both backends.

    async fn locks_after_the_free_failures(l: AttemptLimiter) {
        let key = "pwd:acct:alice@example.com";
        for _ in 0..3 {
            assert!(l.check(key).await.is_ok());
            assert_eq!(
                l.record_failure(key).await,
                None,
                "free failures lock nothing"
            );
        }
        let lock = l.record_failure(key).await.expect("the 4th failure locks");
        assert_eq!(lock.retry_after, Duration::from_millis(100));
        match l.check(key).await {
            Err(AttemptError::Locked(locked)) => {
                assert!(locked.retry_after <= Duration::from_millis(100));
                assert!(locked.retry_after > Duration::ZERO);
            }
            other => panic!("a locked key must be refused, got {other:?}"),
        }
        assert!(
            l.check("pwd:acct:bob@example.com").await.is_ok(),
            "another key is not affected"
        );
    }

    async fn locks_double_and_are_capped(l: AttemptLimiter) {
        let key = "totp:acct:carol";
        for _ in 0..3 {
            l.record_failure(key).await;
        }
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(l.record_failure(key).await.map(|x| x.retry_after));
        }
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(seen, vec![ms(100), ms(200), ms(400), ms(400), ms(400)]);
    }

    async fn the_lock_expires(l: AttemptLimiter) {
        let key = "pwd:ip:192.0.2.7";
        for _ in 0..4 {
            l.record_failure(key).await;
        }
        assert!(matches!(l.check(key).await, Err(AttemptError::Locked(_))));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(l.check(key).await.is_ok(), "a lock ends after its time");
        // The count outlives the lock: the next failure locks again, for twice as long.
        let again = l
            .record_failure(key)
            .await
            .expect("still past the free failures");
        assert_eq!(again.retry_after, Duration::from_millis(200));
    }

    async fn the_count_is_forgotten_after_the_window(l: AttemptLimiter) {
        let key = "recovery:acct:dave";
        for _ in 0..3 {
            l.record_failure(key).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            l.record_failure(key).await,
            None,
            "failures older than the window no longer count"
        );
    }

    async fn success_clears_the_count(l: AttemptLimiter) {
        let key = "pwd:acct:erin";
        for _ in 0..4 {
            l.record_failure(key).await;
        }
        assert!(l.check(key).await.is_err());
        l.record_success(key).await;
        assert!(l.check(key).await.is_ok(), "success lifts the lock");
        for _ in 0..3 {
            assert_eq!(
                l.record_failure(key).await,
                None,
                "and restarts the free count"
            );
        }
        assert!(l.record_failure(key).await.is_some());
    }

    async fn concurrent_failures_are_all_counted(l: AttemptLimiter) {
        let key = "pwd:acct:frank";
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.record_failure(key).await })
            })
            .collect();
        let mut locks = Vec::new();
        for t in tasks {
            if let Some(lock) = t.await.expect("task") {
                locks.push(lock.retry_after);
            }
        }
        locks.sort();
        let ms = Duration::from_millis;
        // 10 failures: 3 free, then 100, 200, 400 (capped) × 5.
        let mut expected = vec![ms(100), ms(200)];
        expected.extend([ms(400); 5]);
        assert_eq!(locks, expected);
    }

    mod memory {
        use super::*;

        fn limiter() -> AttemptLimiter {
            AttemptLimiter::memory(short_policy())
        }

        #[tokio::test]
        async fn locks_after_the_free_failures() {
            super::locks_after_the_free_failures(limiter()).await
        }
        #[tokio::test]
        async fn locks_double_and_are_capped() {
            super::locks_double_and_are_capped(limiter()).await
        }
        #[tokio::test]
        async fn the_lock_expires() {
            super::the_lock_expires(limiter()).await
        }
        #[tokio::test]
        async fn the_count_is_forgotten_after_the_window() {
            super::the_count_is_forgotten_after_the_window(limiter()).await
        }
        #[tokio::test]
        async fn success_clears_the_count() {
            super::success_clears_the_count(limiter()).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_failures_are_all_counted() {
            super::concurrent_failures_are_all_counted(limiter()).await
        }

        #[tokio::test]
        async fn many_keys_cannot_grow_memory_past_the_capacity() {
            let l = AttemptLimiter::memory_with_capacity(short_policy(), 100);
            for i in 0..5_000 {
                l.record_failure(&format!("pwd:ip:{i}")).await;
            }
            let Backend::Memory(cache) = &l.backend else {
                unreachable!("memory limiter")
            };
            cache.run_pending_tasks();
            assert!(cache.entry_count() <= 100, "{}", cache.entry_count());
        }

        #[tokio::test]
        async fn entries_leave_memory_when_their_count_expires() {
            let l = limiter();
            l.record_failure("pwd:ip:198.51.100.1").await;
            let Backend::Memory(cache) = &l.backend else {
                unreachable!("memory limiter")
            };
            assert!(cache.contains_key(&digest("pwd:ip:198.51.100.1")));
            tokio::time::sleep(Duration::from_millis(550)).await;
            // The cache itself treats the entry as gone (its timer wheel frees the memory
            // on its next tick), not only our own `expires` check.
            assert!(!cache.contains_key(&digest("pwd:ip:198.51.100.1")));
        }
    }

    mod redis_backend {
        use super::*;

        use crate::shared_redis::TestPrefix as Prefix;

        async fn limiter(prefix: &Prefix) -> AttemptLimiter {
            let conn = crate::shared_redis::connect(crate::shared_redis::TEST_URL)
                .await
                .expect("Redis must run at 127.0.0.1:6379");
            AttemptLimiter::redis(conn, prefix.0.clone(), short_policy())
        }

        #[tokio::test]
        async fn locks_after_the_free_failures() {
            let p = Prefix::new();
            super::locks_after_the_free_failures(limiter(&p).await).await
        }
        #[tokio::test]
        async fn locks_double_and_are_capped() {
            let p = Prefix::new();
            super::locks_double_and_are_capped(limiter(&p).await).await
        }
        #[tokio::test]
        async fn the_lock_expires() {
            let p = Prefix::new();
            super::the_lock_expires(limiter(&p).await).await
        }
        #[tokio::test]
        async fn the_count_is_forgotten_after_the_window() {
            let p = Prefix::new();
            super::the_count_is_forgotten_after_the_window(limiter(&p).await).await
        }
        #[tokio::test]
        async fn success_clears_the_count() {
            let p = Prefix::new();
            super::success_clears_the_count(limiter(&p).await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_failures_are_all_counted() {
            let p = Prefix::new();
            super::concurrent_failures_are_all_counted(limiter(&p).await).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn two_nodes_sharing_redis_count_together() {
            let p = Prefix::new();
            // Two limiters with their own connections, as on two nodes.
            let node_a = limiter(&p).await;
            let node_b = limiter(&p).await;
            let key = "pwd:acct:grace";
            assert_eq!(node_a.record_failure(key).await, None);
            assert_eq!(node_b.record_failure(key).await, None);
            assert_eq!(node_a.record_failure(key).await, None);
            let lock = node_b
                .record_failure(key)
                .await
                .expect("the 4th failure counted across both nodes locks");
            assert_eq!(lock.retry_after, Duration::from_millis(100));
            assert!(
                matches!(node_a.check(key).await, Err(AttemptError::Locked(_))),
                "a lock set on one node holds on the other"
            );
            node_a.record_success(key).await;
            assert!(node_b.check(key).await.is_ok(), "and so does clearing it");
        }

        #[tokio::test]
        async fn keys_are_stored_hashed() {
            let p = Prefix::new();
            let l = limiter(&p).await;
            l.record_failure("pwd:acct:heidi@example.com").await;
            let client = redis::Client::open(crate::shared_redis::TEST_URL).expect("url");
            let mut c = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", p.0))
                .query_async(&mut c)
                .await
                .expect("keys");
            assert_eq!(keys.len(), 1);
            assert!(!keys[0].contains("heidi"), "{}", keys[0]);
        }

        #[tokio::test]
        async fn a_redis_outage_fails_closed() {
            let p = Prefix::new();
            let relay = crate::shared_redis::relay::start().await;
            let conn = crate::shared_redis::connect(&relay.url)
                .await
                .expect("Redis through the relay");
            let l = AttemptLimiter::redis(conn, p.0.clone(), short_policy());
            let key = "pwd:acct:ivan";
            assert!(l.check(key).await.is_ok());
            relay.cut();
            match l.check(key).await {
                Err(AttemptError::Unavailable(_)) => {}
                other => panic!("an unknown lock state must refuse the attempt, got {other:?}"),
            }
            assert_eq!(l.record_failure(key).await, None, "logged, not a panic");
            l.record_success(key).await;
        }
    }
}
