//! An assistant's MCP servers (`…/mcp-servers`, capability mcp.manage): Streamable HTTP
//! endpoints on the assistant's egress allowlist, reached through the egress guard. Adding
//! a server reads its tool list into the registry (each tool disabled and usable by nobody
//! until an admin enables it); `…/sync` re-reads it, disabling tools that changed.

use crate::chat::mcp::{self, SyncReport};
use crate::error::{ApiError, ApiResult, Problem};
use crate::events::{self, SUCCESS};
use crate::flow::{Actor, InAssistant, ItemParam, Meta};
use crate::json::ApiJson;
use crate::routes::provider_keys::secret_last4;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::McpServerId;
use bastion_store::tools::{McpServer, CREDENTIAL_KIND};
use bastion_vault::Binding;
use secrecy::{ExposeSecret, SecretString};
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
    /// The last four characters of its bearer token, when it has one.
    pub credential_last4: Option<String>,
    pub synced_at: Option<String>,
    pub created_at: String,
}

impl From<&McpServer> for McpServerView {
    fn from(s: &McpServer) -> Self {
        McpServerView {
            id: s.id.to_string(),
            name: s.name.clone(),
            url: s.url.clone(),
            credential_last4: s.credential_last4.clone(),
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
    /// allowlist. Or, instead:
    pub url: Option<String>,
    /// The name of a local (stdio) server the operator allows (`mcp_stdio_servers`).
    pub stdio: Option<String>,
    /// The server's own bearer token, if it wants one: sealed in the vault, sent to this
    /// server only, never shown again (its last four characters are).
    #[schema(value_type = Option<String>)]
    pub bearer_token: Option<SecretString>,
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
    let url = match (&input.url, &input.stdio) {
        (Some(url), None) => {
            let url = url::Url::parse(url)
                .map_err(|_| ApiError::Unprocessable("url: not a URL".into()))?;
            if !matches!(url.scheme(), "http" | "https")
                || !url.username().is_empty()
                || url.password().is_some()
            {
                return Err(ApiError::Unprocessable(
                    "url: http or https, without credentials".into(),
                ));
            }
            url.to_string()
        }
        (None, Some(name)) => {
            if !state.settings.mcp_stdio_servers.contains_key(name) {
                return Err(ApiError::Unprocessable(format!(
                    "stdio: {name:?} is not a local server the operator allows"
                )));
            }
            if input.bearer_token.is_some() {
                return Err(ApiError::Unprocessable(
                    "bearer_token: a local server gets its settings from the operator".into(),
                ));
            }
            format!("{}{name}", mcp::STDIO_PREFIX)
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "one of url (Streamable HTTP) or stdio (a local server by name)".into(),
            ))
        }
    };
    let repo = state.store.tools();
    let egress = repo.egress(&at.scope).await?;
    let id = McpServerId::new();
    let credential = match &input.bearer_token {
        None => None,
        Some(token) => {
            let last4 = secret_last4("bearer_token", token)?;
            let record = id.to_string();
            let at_record = Binding {
                workspace: at.scope.workspace_id(),
                kind: CREDENTIAL_KIND,
                record: &record,
            };
            let sealed = state
                .vault
                .seal(&at_record, token.expose_secret().as_bytes())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Some((sealed, last4))
        }
    };
    // Reached before anything is stored: a server that cannot be used is not added.
    let probe = McpServer {
        id,
        name: input.name.clone(),
        url: url.clone(),
        credential: None,
        credential_last4: None,
        synced_at: None,
        created_at: 0,
    };
    let offered = mcp::read_tools(
        &state.settings,
        &probe,
        &egress,
        input.bearer_token.clone(),
        SYNC_TIMEOUT,
    )
    .await?;
    let server = repo
        .add_server(&at.scope, id, &input.name, &url, credential)
        .await?;
    let report = mcp::sync(&state, &at.scope, &server, &offered).await?;
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
    let bearer = mcp::credential(&state, &at.scope, &server)?;
    let offered = mcp::read_tools(&state.settings, &server, &egress, bearer, SYNC_TIMEOUT).await?;
    let report = mcp::sync(&state, &at.scope, &server, &offered).await?;
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
    state.chat.tool_sets.forget(at.scope.assistant_id());
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
