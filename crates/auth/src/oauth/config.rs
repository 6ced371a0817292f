//! What an operator declares for each sign-in provider, and the checks that refuse a
//! configuration that would be unsafe (a redirect URI in clear over the network, an issuer
//! reached without TLS, a provider name that cannot sit in a URL path).

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// Google's OpenID Connect issuer, used when a `google` provider names none.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
pub const GITHUB_AUTHORIZE_URL: &str = "https://github.com/login/oauth/authorize";
pub const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
pub const GITHUB_API_BASE_URL: &str = "https://api.github.com";

/// How bastion talks to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenID Connect issuer, found through discovery.
    Oidc,
    /// Google: OpenID Connect at `https://accounts.google.com` unless `issuer` says otherwise.
    Google,
    /// GitHub: plain OAuth 2.0, the identity read from its REST API.
    Github,
}

/// One sign-in provider, as written in the settings (`[[oauth_providers]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider's id in paths (`/api/v1/auth/oauth/{name}/start`): lower-case letters,
    /// digits, `-` and `_`, at most 32.
    pub name: String,
    pub kind: ProviderKind,
    /// The OpenID issuer (`oidc`: required; `google`: defaults to accounts.google.com).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub client_id: String,
    /// Never serialized and never printed (`Debug` shows `[REDACTED]`).
    #[serde(skip_serializing)]
    pub client_secret: SecretString,
    /// The exact callback URL registered at the provider; https unless the host is loopback.
    pub redirect_uri: String,
    /// Scopes to request; defaults per kind (`openid email profile`, or `read:user user:email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// GitHub only: overrides of its endpoints (for GitHub Enterprise, or a local fake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
}

/// A provider setting that cannot be used: which provider, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("provider {provider:?}, field `{field}`: {reason}")]
pub struct ConfigError {
    pub provider: String,
    pub field: &'static str,
    pub reason: String,
}

impl ProviderConfig {
    fn bad(&self, field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            provider: self.name.clone(),
            field,
            reason: reason.into(),
        }
    }

    /// The issuer to discover (OIDC and Google), `None` for GitHub.
    pub fn effective_issuer(&self) -> Option<&str> {
        match self.kind {
            ProviderKind::Oidc => self.issuer.as_deref(),
            ProviderKind::Google => Some(self.issuer.as_deref().unwrap_or(GOOGLE_ISSUER)),
            ProviderKind::Github => None,
        }
    }

    /// The path of `redirect_uri` (`None` when it is not a URL).
    pub fn redirect_path(&self) -> Option<String> {
        Url::parse(&self.redirect_uri)
            .ok()
            .map(|u| u.path().to_string())
    }

    pub fn effective_scopes(&self) -> Vec<String> {
        if let Some(s) = &self.scopes {
            return s.clone();
        }
        let defaults: &[&str] = match self.kind {
            ProviderKind::Oidc | ProviderKind::Google => &["openid", "email", "profile"],
            ProviderKind::Github => &["read:user", "user:email"],
        };
        defaults.iter().map(|s| s.to_string()).collect()
    }

    /// Checks every field; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_provider_name(&self.name) {
            return Err(self.bad(
                "name",
                "must be 1 to 32 lower-case letters, digits, '-' or '_'",
            ));
        }
        if self.client_id.trim().is_empty() || self.client_id.len() > 512 {
            return Err(self.bad("client_id", "must not be empty"));
        }
        let secret = self.client_secret.expose_secret();
        if secret.trim().is_empty() || secret.len() > 1024 {
            return Err(self.bad("client_secret", "must not be empty"));
        }
        secure_url(&self.redirect_uri).map_err(|r| self.bad("redirect_uri", r))?;
        match self.kind {
            ProviderKind::Oidc | ProviderKind::Google => {
                match self.effective_issuer() {
                    None => return Err(self.bad("issuer", "an oidc provider needs its issuer URL")),
                    Some(i) => {
                        let u = secure_url(i).map_err(|r| self.bad("issuer", r))?;
                        if u.query().is_some() {
                            return Err(self.bad("issuer", "must not have a query"));
                        }
                    }
                }
                for (field, v) in [
                    ("authorize_url", &self.authorize_url),
                    ("token_url", &self.token_url),
                    ("api_base_url", &self.api_base_url),
                ] {
                    if v.is_some() {
                        return Err(self.bad(
                            field,
                            "only for github providers (OpenID providers are discovered from their issuer)",
                        ));
                    }
                }
            }
            ProviderKind::Github => {
                if self.issuer.is_some() {
                    return Err(self.bad("issuer", "github is not an OpenID issuer; leave it out"));
                }
                for (field, v) in [
                    ("authorize_url", &self.authorize_url),
                    ("token_url", &self.token_url),
                    ("api_base_url", &self.api_base_url),
                ] {
                    if let Some(v) = v {
                        secure_url(v).map_err(|r| self.bad(field, r))?;
                    }
                }
            }
        }
        if let Some(scopes) = &self.scopes {
            if scopes.is_empty()
                || scopes
                    .iter()
                    .any(|s| s.is_empty() || s.len() > 128 || !s.chars().all(is_scope_char))
            {
                return Err(self.bad(
                    "scopes",
                    "must be a non-empty list of scope tokens (no spaces or quotes)",
                ));
            }
        }
        Ok(())
    }
}

/// `[a-z0-9_-]{1,32}`: safe in a path segment and a cookie, and case cannot make two of them.
pub fn is_provider_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// Parses `s` as an absolute URL that is `https`, or `http` to a loopback host only; with no
/// user info and no fragment.
pub fn secure_url(s: &str) -> Result<Url, String> {
    let u = Url::parse(s).map_err(|e| format!("{s:?} is not an absolute URL ({e})"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry user info ('user@')".into());
    }
    if u.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    match u.scheme() {
        "https" => {}
        "http" if is_loopback(&u) => {}
        "http" => {
            return Err(
                "must be https (plain http is allowed only to a loopback host such as 127.0.0.1)"
                    .into(),
            )
        }
        other => return Err(format!("scheme {other:?} is not https")),
    }
    if u.host().is_none() {
        return Err("must name a host".into());
    }
    Ok(u)
}

/// Whether the URL's host is 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc() -> ProviderConfig {
        ProviderConfig {
            name: "corp".into(),
            kind: ProviderKind::Oidc,
            issuer: Some("https://id.example.com".into()),
            client_id: "bastion".into(),
            client_secret: SecretString::from("s3cret-value"),
            redirect_uri: "https://bastion.example.com/api/v1/auth/oauth/corp/callback".into(),
            scopes: None,
            authorize_url: None,
            token_url: None,
            api_base_url: None,
        }
    }

    #[test]
    fn a_sound_provider_passes() {
        oidc().validate().unwrap();
        let local = ProviderConfig {
            issuer: Some("http://127.0.0.1:9000".into()),
            redirect_uri: "http://localhost:8080/api/v1/auth/oauth/corp/callback".into(),
            ..oidc()
        };
        local.validate().unwrap();
    }

    #[test]
    fn the_client_secret_is_never_printed_nor_serialized() {
        let c = oidc();
        assert!(!format!("{c:?}").contains("s3cret-value"));
        assert!(!serde_json::to_string(&c).unwrap().contains("s3cret-value"));
    }

    #[test]
    fn unsafe_redirect_uris_are_refused() {
        for bad in [
            "http://bastion.example.com/api/v1/auth/oauth/corp/callback",
            "https://user@bastion.example.com/cb",
            "https://bastion.example.com/cb#frag",
            "/api/v1/auth/oauth/corp/callback",
            "javascript:alert(1)",
        ] {
            let c = ProviderConfig {
                redirect_uri: bad.into(),
                ..oidc()
            };
            assert_eq!(c.validate().unwrap_err().field, "redirect_uri", "{bad}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let c = ProviderConfig {
            name: "Corp".into(),
            ..oidc()
        };
        assert_eq!(c.validate().unwrap_err().field, "name");
        let c = ProviderConfig {
            issuer: Some("http://id.example.com".into()),
            ..oidc()
        };
        assert_eq!(c.validate().unwrap_err().field, "issuer");
        let c = ProviderConfig {
            issuer: None,
            ..oidc()
        };
        assert_eq!(c.validate().unwrap_err().field, "issuer");
        let c = ProviderConfig {
            token_url: Some("https://x.example.com/token".into()),
            ..oidc()
        };
        assert_eq!(c.validate().unwrap_err().field, "token_url");
        let c = ProviderConfig {
            scopes: Some(vec!["openid email".into()]),
            ..oidc()
        };
        assert_eq!(c.validate().unwrap_err().field, "scopes");
        let c = ProviderConfig {
            client_secret: SecretString::from(""),
            ..oidc()
        };
        assert_eq!(c.validate().unwrap_err().field, "client_secret");
    }

    #[test]
    fn kinds_have_their_defaults() {
        let g = ProviderConfig {
            kind: ProviderKind::Google,
            issuer: None,
            ..oidc()
        };
        g.validate().unwrap();
        assert_eq!(g.effective_issuer(), Some(GOOGLE_ISSUER));
        let gh = ProviderConfig {
            kind: ProviderKind::Github,
            issuer: None,
            ..oidc()
        };
        gh.validate().unwrap();
        assert_eq!(gh.effective_scopes(), vec!["read:user", "user:email"]);
        let parsed: Result<ProviderConfig, _> = serde_json::from_value(serde_json::json!({
            "name": "x", "kind": "oidc", "client_id": "a", "client_secret": "b",
            "redirect_uri": "https://a.example/cb", "issur": "https://typo.example"
        }));
        assert!(parsed.unwrap_err().to_string().contains("issur"));
    }
}
