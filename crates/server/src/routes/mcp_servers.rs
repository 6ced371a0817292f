//! An assistant's MCP servers (`…/mcp-servers`, capability mcp.manage): Streamable HTTP
//! endpoints on the assistant's egress allowlist, reached through the egress guard. Adding
//! a server reads its tool list into the registry (each tool disabled and usable by nobody
//! until an admin enables it); `…/sync` re-reads it, disabling tools that changed.

use crate::chat::mcp::{self, SyncReport};
use crate::error::{ApiError, ApiResult, Problem};
use crate::events::{self, SUCCESS};
use crate::flow::{Actor, InAssistant, ItemParam, Meta};
use crate::json::ApiJson;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::McpServerId;
use bastion_store::tools::McpServer;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use utoipa::ToSchema;

/// Connecting and listing tools may take this long when an admin adds or syncs a server.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Serialize, ToSchema)]
pub struct McpServerView {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub url: String,
    pub synced_at: Option<String>,
    pub created_at: String,
}

impl From<&McpServer> for McpServerView {
    fn from(s: &McpServer) -> Self {
        McpServerView {
            id: s.id.to_string(),
            name: s.name.clone(),
            url: s.url.clone(),
            synced_at: s.synced_at.map(rfc3339),
            created_at: rfc3339(s.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerCreate {
    /// 1–32 of `a-z 0-9 _ -`; its tools are named `{name}_{tool}`.
    pub name: String,
    /// The server's Streamable HTTP endpoint; its host must be on the assistant's egress
    /// allowlist.
    pub url: String,
}

#[derive(Serialize, ToSchema)]
pub struct McpServerSynced {
    pub server: McpServerView,
    pub sync: SyncReport,
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/mcp-servers", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [McpServerView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<McpServerView>>> {
    let list = state.store.tools().servers(&at.scope).await?;
    Ok(Json(list.iter().map(McpServerView::from).collect()))
}

/// Adds a server once it answered: its tools arrive disabled.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/mcp-servers", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = McpServerCreate,
    responses((status = 201, body = McpServerSynced), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ApiJson(input): ApiJson<McpServerCreate>,
) -> ApiResult<(StatusCode, Json<McpServerSynced>)> {
    let name_ok = (1..=32).contains(&input.name.len())
        && input
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(ApiError::Unprocessable(
            "name: 1 to 32 of a-z, 0-9, _ and -".into(),
        ));
    }
    if input.name == crate::chat::endpoint::SERVER_NAME {
        return Err(ApiError::Unprocessable(
            "name: \"endpoint\" is the server attached through the MCP endpoint".into(),
        ));
    }
    let url = url::Url::parse(&input.url)
        .map_err(|_| ApiError::Unprocessable("url: not a URL".into()))?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(ApiError::Unprocessable(
            "url: http or https, without credentials".into(),
        ));
    }
    let repo = state.store.tools();
    let egress = repo.egress(&at.scope).await?;
    // Reached before anything is stored: a server that cannot be used is not added.
    let probe = McpServer {
        id: McpServerId::new(),
        name: input.name.clone(),
        url: url.to_string(),
        synced_at: None,
        created_at: 0,
    };
    let offered = mcp::read_tools(&probe, &egress, SYNC_TIMEOUT).await?;
    let server = repo
        .add_server(&at.scope, &input.name, url.as_str())
        .await?;
    let report = mcp::sync(&state.store, &at.scope, &server, &offered).await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "mcp.server.create",
            SUCCESS,
            json!({"server": server.id.to_string(), "name": server.name, "url": server.url,
                   "tools_added": report.added}),
        ))
        .await;
    let server = repo.server(&at.scope, server.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(McpServerSynced {
            server: McpServerView::from(&server),
            sync: report,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/mcp-servers/{server_id}", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("server_id" = String, Path, format = Uuid)),
    responses((status = 200, body = McpServerView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    at: InAssistant,
    ItemParam(id): ItemParam<McpServerId>,
) -> ApiResult<Json<McpServerView>> {
    let s = state.store.tools().server(&at.scope, id).await?;
    Ok(Json(McpServerView::from(&s)))
}

/// Re-reads the server's tools: new ones arrive disabled, changed ones are disabled until
/// reviewed, gone ones are removed.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/mcp-servers/{server_id}/sync", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("server_id" = String, Path, format = Uuid)),
    responses((status = 200, body = SyncReport), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn sync(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ItemParam(id): ItemParam<McpServerId>,
) -> ApiResult<Json<SyncReport>> {
    let repo = state.store.tools();
    let server = repo.server(&at.scope, id).await?;
    let egress = repo.egress(&at.scope).await?;
    let offered = mcp::read_tools(&server, &egress, SYNC_TIMEOUT).await?;
    let report = mcp::sync(&state.store, &at.scope, &server, &offered).await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "mcp.server.sync",
            SUCCESS,
            json!({"server": server.id.to_string(), "added": report.added, "changed": report.changed,
                   "removed": report.removed}),
        ))
        .await;
    Ok(Json(report))
}

/// Removes the server and its tools.
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/mcp-servers/{server_id}", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("server_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ItemParam(id): ItemParam<McpServerId>,
) -> ApiResult<StatusCode> {
    let repo = state.store.tools();
    let server = repo.server(&at.scope, id).await?;
    repo.delete_server(&at.scope, id).await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "mcp.server.delete",
            SUCCESS,
            json!({"server": server.id.to_string(), "name": server.name}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
