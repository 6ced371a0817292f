//! Brute-force limits on sign-in: failed password, TOTP and recovery-code attempts are
//! counted per account and per client IP, and a key that fails too often is locked with an
//! exponentially growing wait (`429` with `Retry-After`). Counted in Redis across nodes when
//! `redis_url` is set, in-process otherwise.
//!
//! Success clears only the account's count: clearing the IP's too would let one attacker
//! with one valid account reset their count between guesses at other accounts.

use crate::error::{ApiError, ApiResult};
use crate::flow::Meta;
use bastion_auth::attempts::{AttemptError, AttemptLimiter, Policy};
use bastion_auth::shared_redis::ConnectionManager;
use bastion_store::users::User;
use std::time::Duration;

pub struct Attempts {
    account: AttemptLimiter,
    ip: AttemptLimiter,
}

/// The keys one attempt counts against.
pub struct Attempt {
    account: String,
    ip: Option<String>,
}

impl Attempt {
    /// A password attempt on `email` (counted whether or not such a user exists, so the
    /// limit says nothing about which emails have accounts).
    pub fn password(email: &str, meta: &Meta) -> Attempt {
        Attempt {
            account: format!("pwd:acct:{email}"),
            ip: meta.ip.map(|ip| format!("pwd:ip:{ip}")),
        }
    }

    /// A TOTP or recovery-code attempt by `user`.
    pub fn second_factor(user: &User, meta: &Meta) -> Attempt {
        Attempt {
            account: format!("mfa:acct:{}", user.id),
            ip: meta.ip.map(|ip| format!("mfa:ip:{ip}")),
        }
    }

    fn keys(&self) -> impl Iterator<Item = (&str, bool)> {
        std::iter::once((self.account.as_str(), true))
            .chain(self.ip.as_deref().map(|ip| (ip, false)))
    }
}

/// Many people can share one address (offices, mobile carriers), so an IP gets more free
/// failures than an account does.
fn ip_policy() -> Policy {
    Policy {
        free_failures: 30,
        ..Policy::default()
    }
}

impl Attempts {
    pub fn new(redis: Option<ConnectionManager>) -> Attempts {
        match redis {
            Some(conn) => Attempts {
                account: AttemptLimiter::redis(
                    conn.clone(),
                    "bastion:attempts:",
                    Policy::default(),
                ),
                ip: AttemptLimiter::redis(conn, "bastion:attempts:", ip_policy()),
            },
            None => Attempts {
                account: AttemptLimiter::memory(Policy::default()),
                ip: AttemptLimiter::memory(ip_policy()),
            },
        }
    }

    fn limiter(&self, is_account: bool) -> &AttemptLimiter {
        if is_account {
            &self.account
        } else {
            &self.ip
        }
    }

    /// Refuses the attempt when any of its keys is locked, before the credential is checked.
    pub async fn check(&self, attempt: &Attempt) -> ApiResult<()> {
        let mut wait: Option<Duration> = None;
        for (key, is_account) in attempt.keys() {
            match self.limiter(is_account).check(key).await {
                Ok(()) => {}
                Err(AttemptError::Locked(l)) => {
                    wait = Some(wait.unwrap_or_default().max(l.retry_after));
                }
                Err(AttemptError::Unavailable(e)) => {
                    tracing::error!(error = %e, "attempt limiter unavailable; refusing sign-in");
                    return Err(ApiError::Unavailable);
                }
            }
        }
        match wait {
            Some(w) => {
                metrics::counter!("bastion_auth_failures_total", "reason" => "locked").increment(1);
                Err(ApiError::TooManyAttempts(round_up(w)))
            }
            None => Ok(()),
        }
    }

    /// Counts a failure against every key of the attempt.
    pub async fn failed(&self, attempt: &Attempt) -> ApiResult<()> {
        for (key, is_account) in attempt.keys() {
            self.limiter(is_account).record_failure(key).await;
        }
        Ok(())
    }

    pub async fn succeeded(&self, attempt: &Attempt) {
        self.account.record_success(&attempt.account).await;
    }
}

fn round_up(d: Duration) -> Duration {
    Duration::from_secs(d.as_millis().div_ceil(1000).max(1) as u64)
}
