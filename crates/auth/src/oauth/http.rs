//! The HTTP client bastion uses to talk to sign-in providers: openidconnect's own reqwest
//! client, with redirects disabled (a provider endpoint cannot bounce bastion to another
//! address) and bounded time for every call.

use openidconnect::reqwest;
use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("bastion/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with rustls and no custom certificates always builds")
}
