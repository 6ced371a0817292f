//! Failed activation-code guesses, capped per user, per client address and in all, per hour
//! and per day. Any live code can be hit by a guess, so only a hard cap bounds the odds: with
//! the defaults (20 a day per user) and 1,000 live codes of 32^6, a user's daily odds stay
//! under 2e-5 (see docs/SECURITY.md).

use crate::error::{ApiError, ApiResult};
use crate::flow::Meta;
use crate::Settings;
use bastion_auth::budget::{BudgetError, Cap, FailureBudget};
use bastion_core::UserId;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

pub struct CodeGuesses {
    budget: FailureBudget,
    caps: [Cap; 6],
}

impl CodeGuesses {
    pub fn new(s: &Settings, redis: Option<bastion_auth::shared_redis::ConnectionManager>) -> Self {
        let cap = |limit, window| Cap { limit, window };
        CodeGuesses {
            budget: match redis {
                Some(conn) => FailureBudget::redis(conn, "bastion:codes:"),
                None => FailureBudget::memory(DAY),
            },
            caps: [
                cap(s.activation_failures_user_hour, HOUR),
                cap(s.activation_failures_user_day, DAY),
                cap(s.activation_failures_ip_hour, HOUR),
                cap(s.activation_failures_ip_day, DAY),
                cap(s.activation_failures_global_hour, HOUR),
                cap(s.activation_failures_global_day, DAY),
            ],
        }
    }

    fn keys(&self, user: UserId, meta: &Meta) -> Vec<(String, Cap)> {
        let user = format!("user:{user}");
        let ip = format!("ip:{}", meta.ip_string());
        let c = self.caps;
        vec![
            (user.clone(), c[0]),
            (user, c[1]),
            (ip.clone(), c[2]),
            (ip, c[3]),
            ("all".to_string(), c[4]),
            ("all".to_string(), c[5]),
        ]
    }

    /// Refuses with 429 (and when to retry) once any budget is spent.
    pub async fn check(&self, user: UserId, meta: &Meta) -> ApiResult<()> {
        let keys = self.keys(user, meta);
        let refs: Vec<(&str, Cap)> = keys.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        self.budget.check(&refs).await.map_err(to_api)
    }

    pub async fn failed(&self, user: UserId, meta: &Meta) -> ApiResult<()> {
        metrics::counter!("bastion_activation_code_failures_total").increment(1);
        let keys = self.keys(user, meta);
        let refs: Vec<(&str, Cap)> = keys.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        self.budget.failed(&refs).await.map_err(to_api)
    }
}

fn to_api(e: BudgetError) -> ApiError {
    match e {
        BudgetError::Spent(wait) => ApiError::TooManyAttempts(wait),
        BudgetError::Unavailable(e) => {
            tracing::error!(error = %e, "activation guess budget unavailable; refusing");
            ApiError::Unavailable
        }
    }
}
