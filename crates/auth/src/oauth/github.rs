//! GitHub: plain OAuth 2.0 (no ID token). The code is exchanged (with the PKCE verifier) at
//! the token URL, then the user is read from the REST API: `/user` for the stable numeric
//! id, `/user/emails` for the primary address and whether GitHub verified it.

use super::config::{ProviderConfig, GITHUB_API_BASE_URL, GITHUB_AUTHORIZE_URL, GITHUB_TOKEN_URL};
use super::error::{sanitize, OAuthError};
use super::secrets::FlowSecrets;
use super::ExternalIdentity;
use openidconnect::reqwest;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

pub(crate) struct GithubProvider {
    client_id: String,
    client_secret: SecretString,
    redirect_uri: String,
    scopes: String,
    authorize_url: Url,
    token_url: Url,
    api_base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

impl GithubProvider {
    pub(crate) fn new(cfg: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        let parse = |v: &Option<String>, default: &str| {
            Url::parse(v.as_deref().unwrap_or(default)).map_err(|e| e.to_string())
        };
        Ok(GithubProvider {
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            redirect_uri: cfg.redirect_uri.clone(),
            scopes: cfg.effective_scopes().join(" "),
            authorize_url: parse(&cfg.authorize_url, GITHUB_AUTHORIZE_URL)?,
            token_url: parse(&cfg.token_url, GITHUB_TOKEN_URL)?,
            api_base: cfg
                .api_base_url
                .as_deref()
                .unwrap_or(GITHUB_API_BASE_URL)
                .trim_end_matches('/')
                .to_string(),
            http,
        })
    }

    pub(crate) fn authorize_url(&self, state: &str, secrets: &FlowSecrets) -> Url {
        let mut u = self.authorize_url.clone();
        u.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("code_challenge", &secrets.pkce_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("allow_signup", "false");
        u
    }

    pub(crate) async fn finish(
        &self,
        provider: &str,
        code: &str,
        secrets: &FlowSecrets,
    ) -> Result<ExternalIdentity, OAuthError> {
        let unreachable = |what: &str| OAuthError::Provider(format!("{what} could not be reached"));
        let res = self
            .http
            .post(self.token_url.clone())
            .header("accept", "application/json")
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
                ("code", code),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("code_verifier", secrets.pkce_verifier.expose_secret()),
            ])
            .send()
            .await
            .map_err(|_| unreachable("the token endpoint"))?;
        let status = res.status();
        let answer: TokenAnswer = res.json().await.map_err(|_| {
            OAuthError::Provider(format!("the token endpoint answered {status} without JSON"))
        })?;
        // GitHub reports a refused code with 200 and an `error` field.
        let token = match (answer.access_token, answer.error) {
            (Some(t), None) if status.is_success() && !t.is_empty() => SecretString::from(t),
            (_, Some(e)) => return Err(OAuthError::TokenExchange(sanitize(&e, 100))),
            _ => return Err(OAuthError::TokenExchange(format!("status {status}"))),
        };
        let user: GithubUser = self
            .api(&token, "/user")
            .await?
            .json()
            .await
            .map_err(|_| OAuthError::Identity("GitHub's /user answer lacks an id".into()))?;
        // Without the user:email scope this fails: then there is no email, not an error.
        let email = match self.api(&token, "/user/emails").await {
            Ok(res) => res
                .json::<Vec<GithubEmail>>()
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|e| e.primary && e.verified))
                .map(|e| e.email),
            Err(_) => None,
        };
        Ok(ExternalIdentity {
            provider: provider.to_string(),
            subject: user.id.to_string(),
            email_verified: email.is_some(),
            email,
        })
    }

    async fn api(&self, token: &SecretString, path: &str) -> Result<reqwest::Response, OAuthError> {
        let res = self
            .http
            .get(format!("{}{path}", self.api_base))
            .bearer_auth(token.expose_secret())
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|_| OAuthError::Provider("the GitHub API could not be reached".into()))?;
        if !res.status().is_success() {
            return Err(OAuthError::Provider(format!(
                "the GitHub API answered {} for {path}",
                res.status()
            )));
        }
        Ok(res)
    }
}
