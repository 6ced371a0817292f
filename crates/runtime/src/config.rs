//! Timeouts and retry policy of a [`crate::Client`].

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// TCP + TLS connect.
    pub connect_timeout: Duration,
    /// From sending the request until the response headers arrive. Long enough for a
    /// provider to queue a request and start a slow model.
    pub response_timeout: Duration,
    /// The longest gap between two chunks of a streamed body; for a non-streamed call, the
    /// time allowed to read the whole body once the headers are in.
    pub idle_timeout: Duration,
    /// Attempts in total, the first included (0 is taken as 1).
    pub max_attempts: u32,
    /// The first retry waits up to this long; each further one doubles it …
    pub backoff_base: Duration,
    /// … up to this cap, which also caps a provider's `Retry-After`.
    pub backoff_max: Duration,
    /// Hosts a provider endpoint may resolve to private, loopback or link-local addresses
    /// through (exact host names or IP literals); every other host must be public.
    pub private_hosts: Vec<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_attempts: 3,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
            private_hosts: Vec::new(),
        }
    }
}
