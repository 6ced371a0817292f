//! Request rates on every route: per client address, checked before authentication (a
//! flood costs no token check), then per principal (each user; each API key, under its own
//! `rate_limit_per_minute` when it has one, checked in authorization). Counted on this
//! node, in memory: a guard against floods on any route, where Redis would add a round trip
//! to every request; a deployment of N nodes lets through up to N times the limit. Over a
//! limit the answer is 429 with `Retry-After`.

use super::context::{Authenticated, Meta};
use crate::error::ApiError;
use crate::state::AppState;
use bastion_auth::rate::RateError;

/// Load balancers' probes, which must keep answering whatever else is refused.
fn exempt(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz")
}

async fn hit(
    state: &AppState,
    scope: &'static str,
    key: String,
    limit: u32,
) -> Result<(), ApiError> {
    match state.request_rates.hit(&key, limit).await {
        Ok(()) => Ok(()),
        Err(RateError::Limited(wait)) => {
            metrics::counter!("bastion_rate_limited_total", "scope" => scope).increment(1);
            Err(ApiError::RateLimited(wait))
        }
        Err(RateError::Unavailable(_)) => Err(ApiError::Unavailable),
    }
}

/// The client address's requests this minute.
pub async fn per_address(state: &AppState, meta: &Meta) -> Result<(), ApiError> {
    match meta.ip {
        Some(ip) if !exempt(&meta.route) => {
            hit(
                state,
                "address",
                format!("ip:{ip}"),
                state.settings.rate_limit_ip_per_minute,
            )
            .await
        }
        _ => Ok(()),
    }
}

/// The authenticated principal's requests this minute.
pub async fn per_principal(
    state: &AppState,
    meta: &Meta,
    principal: Option<&Authenticated>,
) -> Result<(), ApiError> {
    if exempt(&meta.route) {
        return Ok(());
    }
    match principal {
        Some(Authenticated::User(c)) => {
            let limit = state.settings.rate_limit_user_per_minute;
            hit(state, "user", format!("user:{}", c.user.id), limit).await
        }
        // A key with its own limit is held to it in authorization (across nodes).
        Some(Authenticated::Key(k)) if k.key().rate_limit_per_minute.is_none() => {
            let limit = state.settings.rate_limit_key_per_minute;
            hit(state, "api_key", format!("key:{}", k.key().id), limit).await
        }
        _ => Ok(()),
    }
}
