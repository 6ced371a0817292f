//! What the flow hands a handler. Each is an extractor that reads what `gate` inserted; a
//! handler asking for a context its route's access rule does not produce gets a 500, which
//! the route tests catch.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use bastion_auth::tokens::TokenScope;
use bastion_core::{Principal, SessionId};
use bastion_store::assistants::Assistant;
use bastion_store::users::User;
use bastion_store::{AssistantScope, KeyGrant, WorkspaceScope};
use std::net::IpAddr;
use std::sync::Arc;

/// The signed-in user making the request, and the sign-in (session) their token is from.
#[derive(Clone)]
pub struct Caller {
    pub user: Arc<User>,
    pub session: SessionId,
    /// How the sign-in was made (RFC 8176 `amr`), carried into tokens derived from it.
    pub amr: Vec<String>,
    /// The token came in a cookie (so the CSRF check applied) rather than a header.
    pub via_cookie: bool,
    /// Set when the token is narrowed to one assistant and some of its capabilities.
    pub scope: Option<TokenScope>,
}

impl Caller {
    pub fn principal(&self) -> Principal {
        Principal::User(self.user.id)
    }

    /// The sign-in passed a second factor.
    pub fn mfa(&self) -> bool {
        bastion_auth::tokens::amr_has_mfa(&self.amr)
    }
}

/// Who authenticated: a person (full or scoped token) or a program (an API key).
#[derive(Clone)]
pub enum Authenticated {
    User(Caller),
    Key(Arc<KeyGrant>),
}

impl Authenticated {
    pub fn principal(&self) -> Principal {
        match self {
            Authenticated::User(c) => c.principal(),
            Authenticated::Key(k) => Principal::ApiKey(k.key().id),
        }
    }
}

/// The principal of an authorized request, whatever kind it is: what handlers of routes an
/// API key can reach take (instead of [`Caller`], which only a person's request has).
#[derive(Clone, Copy, Debug)]
pub struct Actor(pub Principal);

/// The authorized assistant: its scope (the key to its rows) and its record.
#[derive(Clone)]
pub struct InAssistant {
    pub scope: AssistantScope,
    pub assistant: Arc<Assistant>,
}

/// The API key a program's request came with; `None` for a person's request. The model
/// endpoints charge its spend cap.
#[derive(Clone)]
pub struct KeyUsed(pub Option<Arc<KeyGrant>>);

impl<S: Send + Sync> FromRequestParts<S> for KeyUsed {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(KeyUsed(parts.extensions.get::<Arc<KeyGrant>>().cloned()))
    }
}

/// The authorized workspace.
#[derive(Clone)]
pub struct InWorkspace {
    pub scope: WorkspaceScope,
}

/// Facts about the request itself, for audit events.
#[derive(Clone, Debug)]
pub struct Meta {
    pub ip: Option<IpAddr>,
    /// The `User-Agent`, cut to 256 bytes, for the sessions list.
    pub user_agent: String,
    pub method: axum::http::Method,
    /// The matched route template (`/api/v1/assistants/{assistant_id}/…`).
    pub route: String,
    /// The client reached bastion over TLS: bastion's own, or a trusted proxy's that says
    /// so in `X-Forwarded-Proto`.
    pub secure: bool,
}

impl Meta {
    pub fn ip_string(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

macro_rules! from_extensions {
    ($t:ty) => {
        impl<S: Send + Sync> FromRequestParts<S> for $t {
            type Rejection = ApiError;
            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
                parts.extensions.get::<$t>().cloned().ok_or_else(|| {
                    ApiError::Internal(format!(
                        "route declares an access rule that does not provide {}",
                        stringify!($t)
                    ))
                })
            }
        }
    };
}

from_extensions!(Caller);
from_extensions!(Actor);
from_extensions!(InAssistant);
from_extensions!(InWorkspace);
from_extensions!(Meta);

/// The last path parameter of a route (the item under an assistant or workspace: a
/// member's user id, a domain, a key id), as `T`; a missing or malformed one is a 404 like
/// any unknown item.
pub struct ItemParam<T = String>(pub T);

impl<S: Send + Sync, T: std::str::FromStr> FromRequestParts<S> for ItemParam<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let (_, raw) = params.iter().last().ok_or(ApiError::NotFound)?;
        raw.parse().map(ItemParam).map_err(|_| ApiError::NotFound)
    }
}

/// The path parameters by name, for routes with more than one item under the tenant (a
/// message of a conversation); [`PathParams::id`] parses one, a malformed one is a 404.
#[derive(Clone)]
pub struct PathParams(std::collections::HashMap<String, String>);

impl PathParams {
    pub fn id<T: std::str::FromStr>(&self, name: &str) -> Result<T, ApiError> {
        self.0
            .get(name)
            .and_then(|v| v.parse().ok())
            .ok_or(ApiError::NotFound)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        Ok(PathParams(
            params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }
}
