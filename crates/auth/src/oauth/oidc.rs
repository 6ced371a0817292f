//! OpenID Connect (any issuer, and Google): discovery and JWKS fetched and cached, the
//! authorization request with PKCE S256 and a nonce, the code exchange, and ID token
//! validation through the openidconnect crate (signature via the issuer's JWKS with
//! asymmetric algorithms only, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`).

use super::config::{secure_url, ProviderConfig};
use super::error::{sanitize, IdTokenError, OAuthError};
use super::secrets::FlowSecrets;
use super::ExternalIdentity;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier,
    CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    reqwest, AuthUrl, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IssuerUrl, JsonWebKeySet, JsonWebKeySetUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};
use url::Url;

/// How long discovered metadata (and the JWKS fetched with it) is trusted before a re-fetch.
const METADATA_TTL: Duration = Duration::from_secs(60 * 60);
/// ID tokens must have been issued within this window around now.
const IAT_MAX_AGE_SECS: i64 = 10 * 60;
const IAT_MAX_SKEW_SECS: i64 = 60;

/// The only signature algorithms accepted: asymmetric ones. HS* (a shared secret that is the
/// client secret, or worse a public key used as one) and `none` are refused.
pub const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 4] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EdDsa,
];

#[derive(Clone)]
struct Discovered {
    auth_url: AuthUrl,
    token_url: TokenUrl,
    jwks_url: JsonWebKeySetUrl,
    jwks: CoreJsonWebKeySet,
    fetched_at: Instant,
}

pub(crate) struct OidcProvider {
    client_id: ClientId,
    client_secret: SecretString,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    scopes: Vec<Scope>,
    http: reqwest::Client,
    cache: RwLock<Option<Arc<Discovered>>>,
    /// One fetch at a time (discovery or JWKS), so a burst of callbacks makes one request.
    fetching: Mutex<()>,
}

impl OidcProvider {
    pub(crate) fn new(cfg: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        let issuer = cfg.effective_issuer().ok_or("no issuer")?;
        Ok(OidcProvider {
            client_id: ClientId::new(cfg.client_id.clone()),
            client_secret: cfg.client_secret.clone(),
            issuer: IssuerUrl::new(issuer.to_string()).map_err(|e| e.to_string())?,
            redirect: RedirectUrl::new(cfg.redirect_uri.clone()).map_err(|e| e.to_string())?,
            scopes: cfg
                .effective_scopes()
                .into_iter()
                .filter(|s| s != "openid") // the crate always asks for openid
                .map(Scope::new)
                .collect(),
            http,
            cache: RwLock::new(None),
            fetching: Mutex::new(()),
        })
    }

    fn fresh(d: &Option<Arc<Discovered>>) -> Option<Arc<Discovered>> {
        d.as_ref()
            .filter(|d| d.fetched_at.elapsed() < METADATA_TTL)
            .cloned()
    }

    async fn discovered(&self) -> Result<Arc<Discovered>, OAuthError> {
        if let Some(d) = Self::fresh(&*self.cache.read().await) {
            return Ok(d);
        }
        let _one = self.fetching.lock().await;
        if let Some(d) = Self::fresh(&*self.cache.read().await) {
            return Ok(d);
        }
        let meta = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                OAuthError::Provider(format!(
                    "discovery failed: {}",
                    sanitize(&e.to_string(), 200)
                ))
            })?;
        let token_url = meta
            .token_endpoint()
            .cloned()
            .ok_or_else(|| OAuthError::Provider("discovery names no token_endpoint".into()))?;
        // The issuer is trusted, but its metadata still may not send bastion (or the
        // browser) anywhere in clear.
        for (what, u) in [
            (
                "authorization_endpoint",
                meta.authorization_endpoint().url(),
            ),
            ("token_endpoint", token_url.url()),
            ("jwks_uri", meta.jwks_uri().url()),
        ] {
            secure_url(u.as_str())
                .map_err(|r| OAuthError::Provider(format!("discovery's {what} {r}")))?;
        }
        let d = Arc::new(Discovered {
            auth_url: meta.authorization_endpoint().clone(),
            token_url,
            jwks_url: meta.jwks_uri().clone(),
            jwks: meta.jwks().clone(),
            fetched_at: Instant::now(),
        });
        *self.cache.write().await = Some(d.clone());
        Ok(d)
    }

    /// Re-fetches the JWKS after a token named a key it lacks, unless another task already
    /// replaced the `seen` snapshot meanwhile.
    async fn refresh_jwks(&self, seen: &Arc<Discovered>) -> Result<Arc<Discovered>, OAuthError> {
        let _one = self.fetching.lock().await;
        if let Some(now) = self.cache.read().await.as_ref() {
            if !Arc::ptr_eq(now, seen) {
                return Ok(now.clone());
            }
        }
        let jwks = JsonWebKeySet::fetch_async(&seen.jwks_url, &self.http)
            .await
            .map_err(|e| {
                OAuthError::Provider(format!(
                    "JWKS fetch failed: {}",
                    sanitize(&e.to_string(), 200)
                ))
            })?;
        let d = Arc::new(Discovered {
            jwks,
            ..(**seen).clone()
        });
        *self.cache.write().await = Some(d.clone());
        Ok(d)
    }

    fn client(
        &self,
        d: &Discovered,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
    > {
        CoreClient::new(self.client_id.clone(), self.issuer.clone(), d.jwks.clone())
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_string(),
            ))
            .set_auth_uri(d.auth_url.clone())
            .set_token_uri(d.token_url.clone())
            .set_redirect_uri(self.redirect.clone())
    }

    /// The provider's authorization URL for this flow.
    pub(crate) async fn authorize_url(
        &self,
        state: &str,
        secrets: &FlowSecrets,
    ) -> Result<Url, OAuthError> {
        let d = self.discovered().await?;
        let state = state.to_string();
        let nonce = secrets.oidc_nonce.clone();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            secrets.pkce_verifier.expose_secret().to_string(),
        ));
        let (url, _, _) = self
            .client(&d)
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scopes(self.scopes.iter().cloned())
            .set_pkce_challenge(challenge)
            .url();
        Ok(url)
    }

    /// Exchanges `code` (with the PKCE verifier) and validates the ID token.
    pub(crate) async fn finish(
        &self,
        provider: &str,
        code: &str,
        secrets: &FlowSecrets,
    ) -> Result<ExternalIdentity, OAuthError> {
        let d = self.discovered().await?;
        let verifier = PkceCodeVerifier::new(secrets.pkce_verifier.expose_secret().to_string());
        let response = self
            .client(&d)
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = response.id_token().ok_or(IdTokenError::Missing)?;
        let nonce = Nonce::new(secrets.oidc_nonce.clone());
        let claims = match self.verify(id_token, &d, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Perhaps the issuer rotated its keys: fetch the JWKS again, once.
                let d = self.refresh_jwks(&d).await?;
                self.verify(id_token, &d, &nonce)
            }
            other => other,
        }
        .map_err(claims_error)?;
        if let Some(azp) = claims.authorized_party() {
            if **azp != *self.client_id {
                return Err(IdTokenError::Audience.into());
            }
        }
        let subject = claims.subject().as_str();
        if subject.is_empty() || subject.len() > 255 {
            return Err(OAuthError::Identity(
                "the ID token's sub is empty or too long".into(),
            ));
        }
        Ok(ExternalIdentity {
            provider: provider.to_string(),
            subject: subject.to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
        })
    }

    fn verify(
        &self,
        token: &CoreIdToken,
        d: &Discovered,
        nonce: &Nonce,
    ) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
        // A public-client verifier: it never holds the client secret, so no HS* token could
        // verify even if the algorithm list were widened.
        let verifier = CoreIdTokenVerifier::new_public_client(
            self.client_id.clone(),
            self.issuer.clone(),
            d.jwks.clone(),
        )
        .set_allowed_algs(ALLOWED_ALGS)
        .set_issue_time_verifier_fn(|iat| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let iat = iat.timestamp();
            if iat > now + IAT_MAX_SKEW_SECS {
                Err("iat: issued in the future".into())
            } else if iat < now - IAT_MAX_AGE_SECS {
                Err("iat: issued too long ago".into())
            } else {
                Ok(())
            }
        });
        token.claims(&verifier, nonce).cloned()
    }
}

fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    e: RequestTokenError<RE, T>,
) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            OAuthError::TokenExchange(sanitize(&r.to_string(), 200))
        }
        RequestTokenError::Request(_) => {
            OAuthError::Provider("the token endpoint could not be reached".into())
        }
        RequestTokenError::Parse(err, _body) => {
            // The body may hold tokens: it is never repeated. Only where parsing failed.
            let path = err.path().to_string();
            if path.starts_with("id_token") {
                if err.inner().to_string().contains("Algorithm") {
                    IdTokenError::Algorithm.into()
                } else {
                    IdTokenError::Malformed.into()
                }
            } else {
                OAuthError::Provider(format!(
                    "the token response could not be parsed (at {})",
                    sanitize(&path, 60)
                ))
            }
        }
        RequestTokenError::Other(s) => OAuthError::Provider(sanitize(&s, 200)),
    }
}

fn claims_error(e: ClaimsVerificationError) -> OAuthError {
    use ClaimsVerificationError as C;
    use SignatureVerificationError as S;
    let kind = match e {
        C::SignatureVerification(S::DisallowedAlg(_) | S::UnsupportedAlg(_) | S::NoSignature) => {
            IdTokenError::Algorithm
        }
        C::SignatureVerification(_) => IdTokenError::Signature,
        C::InvalidAudience(_) => IdTokenError::Audience,
        C::InvalidIssuer(_) => IdTokenError::Issuer,
        C::InvalidNonce(_) => IdTokenError::Nonce,
        C::Expired(m) if m.starts_with("iat:") => IdTokenError::IssuedAt,
        C::Expired(_) => IdTokenError::Expired,
        C::Unsupported(_) => IdTokenError::Malformed,
        _ => IdTokenError::Other,
    };
    kind.into()
}
