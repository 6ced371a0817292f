//! The one request flow (DESIGN.md): every route passes through [`gate`], which runs
//! resolve → authenticate → authorize in that order before the handler, and hands the
//! handler an authorized context. [`record`] wraps everything and writes the request log
//! line and metrics. A route cannot be registered without declaring its [`Access`].

pub mod authenticate;
pub mod authorize;
pub mod client_ip;
pub mod context;
pub mod rate;
pub mod record;
pub mod resolve;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bastion_core::Access;
pub use context::{
    Actor, Authenticated, Caller, InAssistant, InWorkspace, ItemParam, KeyUsed, Meta, PathParams,
};
use record::Recorded;

/// The per-route state of the gate: the app and the access rule the route declared.
#[derive(Clone)]
pub struct Gate {
    pub state: AppState,
    pub access: Access,
}

pub async fn gate(
    State(gate): State<Gate>,
    params: RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    let mut recorded = Recorded::default();
    let mut res = match pass(&gate, &params, req, &mut recorded).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    res.extensions_mut().insert(recorded);
    res
}

async fn pass(
    gate: &Gate,
    params: &RawPathParams,
    mut req: Request,
    recorded: &mut Recorded,
) -> Result<Request, ApiError> {
    let state = &gate.state;
    // 1. Resolve the assistant (Host and/or path) and the workspace named in the path.
    let target = resolve::resolve(state, req.headers(), params).await?;
    if let Some(a) = &target.assistant {
        recorded.assistant = Some(a.id);
    }
    let meta = Meta {
        ip: client_ip::client_ip(&state.settings.trusted_proxies, &req),
        secure: state.settings.serves_tls()
            || client_ip::forwarded_https(&state.settings.trusted_proxies, &req),
        user_agent: user_agent(req.headers()),
        method: req.method().clone(),
        route: req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
    };
    rate::per_address(state, &meta).await?;
    // 2. Authenticate the principal.
    let principal =
        authenticate::authenticate(state, req.method(), req.headers(), gate.access).await?;
    if let Some(p) = &principal {
        recorded.principal = Some(p.principal());
    }
    rate::per_principal(state, &meta, principal.as_ref()).await?;
    // 3. Authorize the declared access, producing the tenant scope the handler will use.
    authorize::authorize(
        state,
        gate.access,
        principal,
        target,
        &meta,
        req.extensions_mut(),
    )
    .await?;
    req.extensions_mut().insert(meta);
    Ok(req)
}

fn user_agent(headers: &axum::http::HeaderMap) -> String {
    let ua = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut end = ua.len().min(256);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    ua[..end].to_string()
}

/// Answers every path no route matches, with the same problem+json as the rest.
pub async fn not_found() -> impl IntoResponse {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed
}
