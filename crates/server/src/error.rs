//! The one place where errors become HTTP: RFC 9457 `application/problem+json`, with a
//! stable `code`, and never an internal detail (those go to the log with the request id).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bastion_store::StoreError;
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthenticated,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "missing or wrong CSRF token: send the X-CSRF-Token header with requests that use cookies"
    )]
    Csrf,
    #[error("this workspace requires multi-factor sign-in for owners and admins: enable TOTP and sign in again with a code")]
    MfaRequired,
    #[error("too many failed attempts; try again in {} seconds", .0.as_secs().max(1))]
    TooManyAttempts(std::time::Duration),
    #[error("request rate limit reached; try again in {} seconds", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    /// An OAuth sign-in that failed; the message says what failed, never a secret.
    #[error(transparent)]
    OAuth(#[from] bastion_auth::oauth::OAuthError),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("expected a JSON body with content-type application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unprocessable(String),
    #[error("the request took too long")]
    Timeout,
    /// A spend cap would be exceeded: refused before the provider is reached.
    #[error("{0}")]
    SpendCap(String),
    /// A token limit of the assistant (per conversation, per user per day) is reached.
    #[error("{detail}")]
    LimitReached {
        detail: String,
        retry_after: Option<std::time::Duration>,
    },
    /// The model provider failed; the message never carries its key or raw answer.
    #[error("{}", provider_detail(.0))]
    Provider(bastion_runtime::ProviderError),
    #[error("the service is not ready")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

/// The problem+json body (RFC 9457) with bastion's `code` extension.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI for the problem type; `about:blank` means the HTTP status says it all.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// A stable machine-readable code.
    pub code: &'static str,
}

impl ApiError {
    pub fn forbidden() -> Self {
        ApiError::Forbidden("your role on this resource does not allow this action".into())
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Csrf => (StatusCode::FORBIDDEN, "csrf"),
            MfaRequired => (StatusCode::FORBIDDEN, "mfa_required"),
            TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            OAuth(e) => {
                use bastion_auth::oauth::OAuthError as O;
                match e {
                    O::UnknownProvider => (StatusCode::NOT_FOUND, "not_found"),
                    O::ReturnTo(_) => (StatusCode::BAD_REQUEST, "return_to_refused"),
                    O::Provider(_) => (StatusCode::BAD_GATEWAY, "oauth_provider_unavailable"),
                    _ => (StatusCode::UNAUTHORIZED, "oauth_failed"),
                }
            }
            NotFound => (StatusCode::NOT_FOUND, "not_found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            SpendCap(_) => (StatusCode::PAYMENT_REQUIRED, "spend_cap_reached"),
            LimitReached { .. } => (StatusCode::TOO_MANY_REQUESTS, "token_limit_reached"),
            Provider(e) => {
                use bastion_runtime::ProviderError as P;
                match e {
                    P::Unauthorized => (StatusCode::BAD_GATEWAY, "provider_auth_failed"),
                    P::RateLimited { .. } => {
                        (StatusCode::TOO_MANY_REQUESTS, "provider_rate_limited")
                    }
                    P::Unavailable { .. } => (StatusCode::BAD_GATEWAY, "provider_unavailable"),
                    P::Rejected { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "provider_rejected"),
                    P::Timeout => (StatusCode::GATEWAY_TIMEOUT, "provider_timeout"),
                    P::Connect => (StatusCode::BAD_GATEWAY, "provider_unreachable"),
                    P::AddressRefused => (StatusCode::BAD_GATEWAY, "provider_address_refused"),
                    P::Protocol(_) => (StatusCode::BAD_GATEWAY, "provider_protocol_error"),
                }
            }
            Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The problem+json body, also sent inside streams that fail after they began.
    pub fn problem(&self) -> Problem {
        let (status, code) = self.parts();
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            code,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::LastOwner => ApiError::Conflict(
                "the last owner cannot be removed or demoted; transfer ownership first".into(),
            ),
            StoreError::OfferExpired => ApiError::Conflict(
                "the ownership offer has expired; an owner can make a new one".into(),
            ),
            StoreError::OffererNotOwner => ApiError::Conflict(
                "the user who offered ownership is no longer an owner; the offer is void".into(),
            ),
            StoreError::Invalid(what) => ApiError::Unprocessable(what),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let problem = self.problem();
        let mut res = (status, axum::Json(problem)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match &self {
            ApiError::TooManyAttempts(wait) | ApiError::RateLimited(wait) => Some(*wait),
            ApiError::LimitReached { retry_after, .. } => *retry_after,
            ApiError::Provider(bastion_runtime::ProviderError::RateLimited { retry_after }) => {
                Some(retry_after.unwrap_or(std::time::Duration::from_secs(1)))
            }
            _ => None,
        };
        if let Some(wait) = retry_after {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
        }
        if matches!(self, ApiError::Unauthenticated) {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// What a client is told about a provider failure: what happened and what to do, in words
/// of ours (the runtime's errors already keep keys and raw answers out).
fn provider_detail(e: &bastion_runtime::ProviderError) -> String {
    use bastion_runtime::ProviderError as P;
    match e {
        P::Unauthorized => {
            "the model provider refused the assistant's provider key; an admin should check it"
                .into()
        }
        P::RateLimited { .. } => {
            "the model provider is rate limiting this assistant; try again shortly".into()
        }
        P::Unavailable { status } => {
            format!("the model provider is unavailable (status {status}); try again shortly")
        }
        P::Rejected { status, message } => {
            format!("the model provider refused the request (status {status}): {message}")
        }
        P::Timeout => "the model provider did not answer in time".into(),
        P::Connect => "the model provider could not be reached".into(),
        P::AddressRefused => {
            "the provider key's base URL points at a private or loopback address; \
            the operator must list its exact host in provider_private_hosts"
                .into()
        }
        P::Protocol(what) => {
            format!("the model provider sent an answer bastion could not read: {what}")
        }
    }
}
