//! An assistant's MCP endpoint (`…/mcp-endpoint`, capability mcp.manage; the WebSocket at
//! `GET /mcp/ws?token=…`): see `chat/endpoint.rs`. Issuing a token revokes the previous one
//! and cuts off a server attached with it; deleting revokes every token at once.
//!
//! An attached server acts for the member who issued the token: its connection is refused
//! once that member no longer holds mcp.manage on the assistant. Its tools arrive in the
//! registry under the `endpoint` server, disabled until an admin enables them, and are
//! re-read (and checked for changes) every time it attaches.

use crate::chat::endpoint::{self, Attached, ATTACHED_URL, REVOCATION_POLL, SERVER_NAME};
use crate::chat::mcp;
use crate::error::{ApiError, ApiResult, Problem};
use crate::events::{self, SUCCESS};
use crate::flow::{Actor, InAssistant, Meta};
use crate::json::ApiJson;
use crate::json::ApiQuery;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bastion_core::{Access, Capability, Principal};
use bastion_store::tools::McpServer;
use bastion_store::AssistantScope;
use bastion_tools::mcp::McpLimits;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

const DEFAULT_TTL_DAYS: i64 = 30;
const MAX_TTL_DAYS: i64 = 365;
const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointCreate {
    /// Days the token lives, 1 to 365 (default 30).
    pub ttl_days: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointIssued {
    /// The WebSocket URL to give the MCP server, token included. Shown once.
    pub url: String,
    pub token: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    /// Whether a live token exists.
    pub active: bool,
    pub expires_at: Option<String>,
    /// Whether a server is attached now (on this node).
    pub connected: bool,
}

/// Issues a new token (revoking the previous one and cutting off its connection).
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/mcp-endpoint", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = EndpointCreate,
    responses((status = 201, body = EndpointIssued), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn issue(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    headers: axum::http::HeaderMap,
    ApiJson(input): ApiJson<EndpointCreate>,
) -> ApiResult<(StatusCode, Json<EndpointIssued>)> {
    let days = input.ttl_days.unwrap_or(DEFAULT_TTL_DAYS);
    if !(1..=MAX_TTL_DAYS).contains(&days) {
        return Err(ApiError::Unprocessable(format!(
            "ttl_days: 1 to {MAX_TTL_DAYS}"
        )));
    }
    if at.scope.user_id().is_none() {
        return Err(ApiError::Forbidden(
            "an MCP endpoint token is issued by a member, not a program".into(),
        ));
    }
    let expires_at = bastion_store::now_ms() + days * DAY_MS;
    let e = state
        .store
        .tools()
        .new_endpoint(&at.scope, expires_at)
        .await?;
    state.chat.attached.cut(at.scope.assistant_id());
    let token = endpoint::issue(state.keys.mcp_endpoint.as_ref(), &e)
        .ok_or_else(|| ApiError::Internal("the endpoint token could not be signed".into()))?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "mcp.endpoint.issue",
            SUCCESS,
            json!({"endpoint": e.id.to_string(), "expires_at": rfc3339(e.expires_at)}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(EndpointIssued {
            url: crate::routes::views::ws_url(
                &headers,
                meta.secure,
                &format!("/mcp/ws?token={token}"),
            ),
            token,
            expires_at: rfc3339(e.expires_at),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/mcp-endpoint", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EndpointView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(state): State<AppState>, at: InAssistant) -> ApiResult<Json<EndpointView>> {
    let live = state.store.tools().live_endpoint(&at.scope).await?;
    Ok(Json(EndpointView {
        active: live.is_some(),
        expires_at: live.map(|e| rfc3339(e.expires_at)),
        connected: state.chat.attached.is_connected(at.scope.assistant_id()),
    }))
}

/// Revokes every token of the endpoint and cuts off an attached server at once.
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/mcp-endpoint", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
) -> ApiResult<StatusCode> {
    let n = state.store.tools().revoke_endpoints(&at.scope).await?;
    state.chat.attached.cut(at.scope.assistant_id());
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "mcp.endpoint.revoke",
            SUCCESS,
            json!({"revoked": n}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct AttachQuery {
    /// The endpoint token.
    pub token: String,
}

/// Where an external MCP server attaches itself (it connects, bastion speaks MCP to it as
/// the client). Refused with 401 unless the token is well signed, unexpired, its row live,
/// and its issuer still holds mcp.manage on the assistant.
#[utoipa::path(get, path = "/mcp/ws", tag = "tools", params(AttachQuery),
    responses((status = 101, description = "WebSocket: JSON-RPC (MCP) text frames, bastion as the client"),
        (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn attach(
    State(state): State<AppState>,
    meta: Meta,
    ApiQuery(q): ApiQuery<AttachQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let scope = match admit(&state, &q.token).await {
        Some(scope) => scope,
        None => {
            metrics::counter!("bastion_mcp_endpoint_refused_total").increment(1);
            return Err(ApiError::Unauthenticated);
        }
    };
    let ws =
        ws.map_err(|_| ApiError::BadRequest("a WebSocket upgrade request is expected".into()))?;
    let max = state.settings.max_body_bytes;
    Ok(ws
        .max_message_size(max)
        .on_upgrade(move |socket| serve(socket, state, scope, meta))
        .into_response())
}

/// The scope an attached server acts in: its token's assistant, as its issuer.
async fn admit(
    state: &AppState,
    token: &str,
) -> Option<(AssistantScope, bastion_core::McpServerId)> {
    let now = bastion_store::now_ms();
    let mut keys: Vec<&[u8]> = vec![state.keys.mcp_endpoint.as_ref()];
    keys.extend(state.previous_keys.iter().map(|k| k.mcp_endpoint.as_ref()));
    let claims = endpoint::verify(&keys, token, now)?;
    let row = bastion_store::tools::endpoint_by_id(&state.store, claims.endpoint)
        .await
        .ok()??;
    if !row.is_live(now) || row.assistant_id != claims.assistant {
        return None;
    }
    let issuer: Principal = parse_user(&row.created_by)?;
    let grant = state
        .store
        .memberships()
        .grant(issuer.user()?, claims.assistant)
        .await
        .ok()??;
    let scope = grant.authorize(Access::Assistant(Capability::McpManage))?;
    Some((scope, claims.endpoint))
}

fn parse_user(s: &str) -> Option<Principal> {
    Some(Principal::User(s.strip_prefix("user:")?.parse().ok()?))
}

/// The messages of the socket as MCP's JSON-RPC frames.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("websocket: {0}")]
    Socket(#[from] axum::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    scope: (AssistantScope, bastion_core::McpServerId),
    meta: Meta,
) {
    let (scope, endpoint_id) = scope;
    let assistant = scope.assistant_id();
    let (tx, rx) = socket.split();
    let sink = Box::pin(tx.with(|m: rmcp_message::Client| async move {
        Ok::<_, FrameError>(Message::Text(serde_json::to_string(&m)?.into()))
    }));
    let stream = Box::pin(
        rx.take_while(|m| {
            futures::future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_))))
        })
        .filter_map(|m| async move {
            match m {
                Ok(Message::Text(t)) => serde_json::from_str::<rmcp_message::Server>(&t).ok(),
                _ => None,
            }
        }),
    );
    let limits = McpLimits {
        connect_timeout: Duration::from_secs(15),
        call_timeout: Duration::from_secs(120),
        ..McpLimits::default()
    };
    let session = match bastion_tools::mcp::attach(sink, stream, limits).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::info!(assistant = %assistant, error = %e, "an attached MCP server failed to initialize");
            return;
        }
    };
    let synced = match register(&state, &scope, &session).await {
        Ok(report) => report,
        Err(e) => {
            tracing::warn!(assistant = %assistant, error = %e.problem().detail, "attached MCP server not registered");
            return;
        }
    };
    let cut = Arc::new(tokio::sync::Notify::new());
    state.chat.attached.insert(
        assistant,
        Attached {
            endpoint: endpoint_id,
            session: session.clone(),
            cut: cut.clone(),
        },
    );
    state
        .audit(events::event(
            scope.workspace_id(),
            events::actor(scope.principal()),
            &meta,
            "mcp.endpoint.attach",
            assistant,
            SUCCESS,
            json!({"endpoint": endpoint_id.to_string(), "tools_added": synced.added, "tools_changed": synced.changed}),
        ))
        .await;
    // Until the server leaves, or the token is revoked here or on another node.
    loop {
        tokio::select! {
            _ = cut.notified() => break,
            _ = tokio::time::sleep(REVOCATION_POLL) => {
                if session.is_closed() {
                    break;
                }
                let live = bastion_store::tools::endpoint_by_id(&state.store, endpoint_id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|e| e.is_live(bastion_store::now_ms()));
                if !live {
                    break;
                }
            }
        }
    }
    state.chat.attached.remove(assistant, &cut);
    drop(session);
}

/// Reads the attached server's tools into the registry under the `endpoint` server.
async fn register(
    state: &AppState,
    scope: &AssistantScope,
    session: &bastion_tools::mcp::McpSession,
) -> ApiResult<mcp::SyncReport> {
    let repo = state.store.tools();
    let server: McpServer = match repo
        .servers(scope)
        .await?
        .into_iter()
        .find(|s| s.name == SERVER_NAME)
    {
        Some(s) => s,
        None => {
            let id = bastion_core::McpServerId::new();
            repo.add_server(scope, id, SERVER_NAME, ATTACHED_URL, None)
                .await?
        }
    };
    let offered = session
        .list_tools()
        .await
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    mcp::sync(state, scope, &server, &offered).await
}

/// rmcp's JSON-RPC message types, as bastion (the client) sends and receives them.
mod rmcp_message {
    pub type Client = bastion_tools::mcp::ClientJsonRpcMessage;
    pub type Server = bastion_tools::mcp::ServerJsonRpcMessage;
}
