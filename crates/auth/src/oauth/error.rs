//! Why an OAuth sign-in failed. Messages say what failed and never carry a secret, a token
//! or a provider's raw response body; `reason()` is a stable code for audit and metrics.

use super::return_to::ReturnToError;
use super::state::StateError;

/// What was wrong with the ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the token response carries no ID token")]
    Missing,
    #[error("the ID token is not a well-formed JWT")]
    Malformed,
    #[error("the ID token's algorithm is not allowed (only RS256, PS256, ES256 and EdDSA)")]
    Algorithm,
    #[error("the ID token's signature does not verify with the provider's keys")]
    Signature,
    #[error("the ID token was issued by another issuer")]
    Issuer,
    #[error("the ID token was issued for another client")]
    Audience,
    #[error("the ID token's nonce does not match this sign-in")]
    Nonce,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token's issue time is not plausible")]
    IssuedAt,
    #[error("the ID token is not acceptable")]
    Other,
}

impl IdTokenError {
    pub fn reason(&self) -> &'static str {
        match self {
            IdTokenError::Missing => "id_token_missing",
            IdTokenError::Malformed => "id_token_malformed",
            IdTokenError::Algorithm => "id_token_algorithm",
            IdTokenError::Signature => "id_token_signature",
            IdTokenError::Issuer => "id_token_issuer",
            IdTokenError::Audience => "id_token_audience",
            IdTokenError::Nonce => "id_token_nonce",
            IdTokenError::Expired => "id_token_expired",
            IdTokenError::IssuedAt => "id_token_iat",
            IdTokenError::Other => "id_token_invalid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("no sign-in provider has this name")]
    UnknownProvider,
    #[error(transparent)]
    ReturnTo(#[from] ReturnToError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the sign-in was not started in this browser")]
    BrowserMismatch,
    #[error("the sign-in was already completed or abandoned: start it again")]
    Replayed,
    /// The provider sent the browser back with `error=…` (e.g. the user declined).
    #[error("the provider refused the sign-in ({0})")]
    Denied(String),
    #[error("the callback lacks the authorization code")]
    MissingCode,
    /// Discovery, JWKS or the API could not be reached or answered nonsense.
    #[error("the sign-in provider could not be reached or answered unexpectedly ({0})")]
    Provider(String),
    /// The token endpoint refused the code (wrong PKCE verifier, reused or expired code…).
    #[error("the provider refused the authorization code ({0})")]
    TokenExchange(String),
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
    /// The provider's answer lacks what identifies the user.
    #[error("the provider did not identify the user ({0})")]
    Identity(String),
}

impl OAuthError {
    /// A short stable code for audit events, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            OAuthError::UnknownProvider => "unknown_provider",
            OAuthError::ReturnTo(_) => "return_to_refused",
            OAuthError::State(e) => e.reason(),
            OAuthError::BrowserMismatch => "browser_mismatch",
            OAuthError::Replayed => "state_replayed",
            OAuthError::Denied(_) => "provider_denied",
            OAuthError::MissingCode => "missing_code",
            OAuthError::Provider(_) => "provider_unavailable",
            OAuthError::TokenExchange(_) => "token_exchange",
            OAuthError::IdToken(e) => e.reason(),
            OAuthError::Identity(_) => "identity_missing",
        }
    }

    /// Whether the fault lies with the provider or the network rather than the request.
    pub fn is_provider_fault(&self) -> bool {
        matches!(self, OAuthError::Provider(_))
    }
}

/// Keeps at most `max` characters of a provider-supplied string, printable ASCII only, so a
/// provider cannot stuff a log line or an error message.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}
