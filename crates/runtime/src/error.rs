//! The ways a provider call fails.
//!
//! Every Display string is safe to log and to show a user: none carries the provider key, the
//! endpoint URL, or a raw provider body. The only provider text that gets through is the
//! `error.message` of a refused request, redacted and shortened (`redact.rs`), because
//! it is what tells a user *why* ("maximum context length is …").

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 401/403 from the provider: the provider key we hold is wrong, revoked or lacks access.
    #[error("the provider refused our credentials")]
    Unauthorized,
    /// 429, still after the retries. `retry_after` is the provider's last `Retry-After`, as
    /// sent (not capped), for passing on to our own caller.
    #[error("the provider is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    /// A 5xx (Anthropic's 529 "overloaded" included), still after the retries when retryable.
    #[error("the provider is unavailable (HTTP {status})")]
    Unavailable { status: u16 },
    /// Any other 4xx: the provider refused this request (context too long, unknown model, …).
    #[error("the provider rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// No connection, no response headers, or a stream gap within the configured time.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The connection could not be made or broke before a response (no address, refused,
    /// TLS failure).
    #[error("could not connect to the provider")]
    Connect,
    /// The endpoint's address is private, loopback, link-local or metadata, and the operator
    /// did not list its host in `provider_private_hosts`.
    #[error("the provider's address is not public and its host is not allowed by the operator")]
    AddressRefused,
    /// A response we cannot use: malformed JSON, a stream cut off before its end, an
    /// oversized body. The text is our own short description.
    #[error("unexpected response from the provider: {0}")]
    Protocol(String),
}

impl ProviderError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Unauthorized => "unauthorized",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::Rejected { .. } => "rejected",
            ProviderError::Timeout => "timeout",
            ProviderError::Connect => "connect",
            ProviderError::AddressRefused => "address_refused",
            ProviderError::Protocol(_) => "protocol",
        }
    }

    pub(crate) fn protocol(what: &str) -> ProviderError {
        ProviderError::Protocol(what.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable_labels() {
        let all = [
            (ProviderError::Unauthorized, "unauthorized"),
            (
                ProviderError::RateLimited { retry_after: None },
                "rate_limited",
            ),
            (ProviderError::Unavailable { status: 529 }, "unavailable"),
            (
                ProviderError::Rejected {
                    status: 400,
                    message: String::new(),
                },
                "rejected",
            ),
            (ProviderError::Timeout, "timeout"),
            (ProviderError::Connect, "connect"),
            (ProviderError::AddressRefused, "address_refused"),
            (ProviderError::protocol("x"), "protocol"),
        ];
        for (err, kind) in all {
            assert_eq!(err.kind(), kind);
        }
    }
}
