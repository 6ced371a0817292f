//! OAuth 2.0 / OpenID Connect sign-in, free of HTTP routing: the server calls
//! [`OAuth::start`] to get the provider URL (and the browser-binding cookie value), then on
//! the callback [`OAuth::verify_state`], its nonce store (single use of
//! [`Flow::nonce_id`]), and [`OAuth::finish`], which exchanges the code and returns who the
//! provider says the user is.
//!
//! - `config`: provider settings and their checks;
//! - `state`: the HMAC-signed `state` parameter;
//! - `secrets`: the flow key and what it derives per flow (PKCE verifier, OIDC nonce,
//!   browser binding);
//! - `return_to`: where a finished sign-in may send the browser;
//! - `oidc`, `github`: the two ways of talking to a provider;
//! - `http`: the outbound client (no redirects, timeouts);
//! - `error`: why a sign-in failed.

pub mod config;
pub mod error;
mod github;
mod http;
pub mod oidc;
pub mod return_to;
pub mod secrets;
pub mod state;

pub use config::{ConfigError, ProviderConfig, ProviderKind};
pub use error::{IdTokenError, OAuthError};
pub use return_to::{AllowedOrigins, ReturnToError};
pub use secrets::{FlowSecrets, StateKey};
pub use state::{Flow, StateError, DEFAULT_TTL};

use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The provider's configured name.
    pub provider: String,
    /// The provider's stable id for the user (`sub`, or GitHub's numeric id).
    pub subject: String,
    pub email: Option<String>,
    /// Only `true` when the provider asserts it verified `email`.
    pub email_verified: bool,
}

impl ExternalIdentity {
    /// The email, only if the provider verified it.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }
}

enum Provider {
    Oidc(oidc::OidcProvider),
    Github(github::GithubProvider),
}

/// A started sign-in: send the browser to `location`, and set the browser-binding cookie
/// to `browser_binding` for as long as `flow` lives.
pub struct Started {
    pub location: Url,
    pub state: String,
    pub browser_binding: String,
    pub flow: Flow,
}

/// The configured providers and the flow key.
pub struct OAuth {
    key: StateKey,
    providers: BTreeMap<String, (ProviderKind, Provider)>,
    allowed: AllowedOrigins,
    ttl: Duration,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl OAuth {
    /// Checks and sets up every provider. `key` signs states and derives each flow's
    /// secrets; every node of a deployment must use the same one.
    pub fn new(
        key: StateKey,
        providers: &[ProviderConfig],
        allowed_return_origins: &[String],
    ) -> Result<Self, ConfigError> {
        let http = http::client();
        let mut map = BTreeMap::new();
        for cfg in providers {
            cfg.validate()?;
            let built = match cfg.kind {
                ProviderKind::Oidc | ProviderKind::Google => {
                    oidc::OidcProvider::new(cfg, http.clone()).map(Provider::Oidc)
                }
                ProviderKind::Github => {
                    github::GithubProvider::new(cfg, http.clone()).map(Provider::Github)
                }
            }
            .map_err(|reason| ConfigError {
                provider: cfg.name.clone(),
                field: "name",
                reason,
            })?;
            if map.insert(cfg.name.clone(), (cfg.kind, built)).is_some() {
                return Err(ConfigError {
                    provider: cfg.name.clone(),
                    field: "name",
                    reason: "two providers have this name".into(),
                });
            }
        }
        let allowed =
            AllowedOrigins::parse(allowed_return_origins).map_err(|reason| ConfigError {
                provider: String::new(),
                field: "oauth_allowed_return_origins",
                reason,
            })?;
        Ok(OAuth {
            key,
            providers: map,
            allowed,
            ttl: DEFAULT_TTL,
        })
    }

    /// How long a sign-in may take from start to callback (default 10 minutes).
    pub fn with_state_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn state_ttl(&self) -> Duration {
        self.ttl
    }

    pub fn providers(&self) -> impl Iterator<Item = (&str, ProviderKind)> {
        self.providers.iter().map(|(n, (k, _))| (n.as_str(), *k))
    }

    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    fn provider(&self, name: &str) -> Result<&Provider, OAuthError> {
        self.providers
            .get(name)
            .map(|(_, p)| p)
            .ok_or(OAuthError::UnknownProvider)
    }

    /// Starts a sign-in with `provider` that will return to `return_to` (checked here: a
    /// local path or an allowed origin). Fetches the provider's discovery document the
    /// first time.
    pub async fn start(
        &self,
        provider: &str,
        return_to: Option<&str>,
    ) -> Result<Started, OAuthError> {
        let p = self.provider(provider)?;
        let return_to = return_to::check(return_to, &self.allowed)?;
        let (state, flow) = self.key.issue(provider, &return_to, self.ttl, now());
        let secrets = self.key.secrets(&flow);
        let location = match p {
            Provider::Oidc(o) => o.authorize_url(&state, &secrets).await?,
            Provider::Github(g) => g.authorize_url(&state, &secrets),
        };
        Ok(Started {
            location,
            state,
            browser_binding: secrets.browser_binding,
            flow,
        })
    }

    /// Verifies the callback's `state` for the provider of the callback's path: signature,
    /// expiry, provider, and the return path against the current rules.
    pub fn verify_state(&self, provider: &str, state: &str) -> Result<Flow, OAuthError> {
        self.provider(provider)?;
        let flow = self.key.verify(state, provider, now())?;
        return_to::check(Some(&flow.return_to), &self.allowed)?;
        Ok(flow)
    }

    /// Whether the browser-binding cookie the callback carried belongs to `flow`.
    pub fn browser_binding_matches(&self, flow: &Flow, cookie: Option<&str>) -> bool {
        cookie.is_some_and(|c| self.key.browser_binding_matches(flow, c))
    }

    /// Exchanges the authorization `code` of a verified (and single-use-checked) `flow` and
    /// returns the identity the provider vouches for.
    pub async fn finish(&self, flow: &Flow, code: &str) -> Result<ExternalIdentity, OAuthError> {
        if code.is_empty() || code.len() > 2048 {
            return Err(OAuthError::MissingCode);
        }
        let secrets = self.key.secrets(flow);
        match self.provider(&flow.provider)? {
            Provider::Oidc(o) => o.finish(&flow.provider, code, &secrets).await,
            Provider::Github(g) => g.finish(&flow.provider, code, &secrets).await,
        }
    }
}
