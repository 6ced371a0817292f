//! An assistant's MCP servers as the server uses them: connecting (through the assistant's
//! endpoint allowlist and the egress guard), reading a server's tool list into the registry,
//! and calling one of its tools. A tool list is re-read on every connection, and a tool
//! whose name, description or schema differ from what an admin reviewed is not called: it
//! is disabled until reviewed again (no silent rug pull).

use super::tools::endpoint_allowed;
use crate::error::{ApiError, ApiResult};
use bastion_core::{Approval, Risk};
use bastion_store::tools::{
    Egress, McpServer, Remote, SyncChange, ToolDraft, ToolKind, CREDENTIAL_KIND,
};
use bastion_store::AssistantScope;
use bastion_tools::egress::{EgressPolicy, SystemResolver};
use bastion_tools::mcp::{self, McpLimits, McpSession, McpTarget, RemoteTool};
use secrecy::SecretString;
use serde_json::Value;
use std::time::Duration;

/// What a sync found, by tool name in the registry.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// New tools, stored disabled and usable by nobody until an admin enables them.
    pub added: Vec<String>,
    /// Tools whose description or schema changed: disabled until an admin reviews them.
    pub changed: Vec<String>,
    /// Tools the server no longer offers, removed.
    pub removed: Vec<String>,
}

/// Why a connection or call failed, in words the model or an admin may read.
#[derive(Debug, thiserror::Error)]
pub enum McpFailure {
    #[error("the MCP server's host is not on the assistant's allowlist")]
    NotAllowed,
    #[error("the MCP server's URL is not valid")]
    BadUrl,
    #[error("the local MCP server is not (or no longer) on the operator's list")]
    NotListed,
    #[error("the MCP server's credential could not be opened")]
    Credential,
    #[error("{0}")]
    Mcp(#[from] mcp::McpError),
}

/// The registry name of a server's tool: `{server}_{tool}`, cut to what model APIs accept.
pub fn tool_name(server: &str, remote: &str) -> String {
    let raw = format!("{server}_{remote}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// The server's own credential, opened from the vault (none when it has none).
pub fn credential(
    state: &crate::state::AppState,
    scope: &AssistantScope,
    server: &McpServer,
) -> Result<Option<SecretString>, McpFailure> {
    let Some(sealed) = &server.credential else {
        return Ok(None);
    };
    let record = server.id.to_string();
    let at = bastion_vault::Binding {
        workspace: scope.workspace_id(),
        kind: CREDENTIAL_KIND,
        record: &record,
    };
    let secret = state
        .vault
        .open(&at, sealed)
        .map_err(|_| McpFailure::Credential)?;
    let text = String::from_utf8(secret.to_vec()).map_err(|_| McpFailure::Credential)?;
    Ok(Some(SecretString::from(text)))
}

/// Opens a session with `server` as `egress` allows, with its own credential if it has one.
pub async fn connect(
    settings: &crate::Settings,
    server: &McpServer,
    egress: &Egress,
    bearer: Option<SecretString>,
    timeout: Duration,
) -> Result<McpSession, McpFailure> {
    let limits = McpLimits {
        connect_timeout: timeout,
        call_timeout: timeout,
        ..McpLimits::default()
    };
    let policy = EgressPolicy {
        allowed_private_hosts: egress.private_hosts.clone(),
    };
    let target = match server.url.strip_prefix(STDIO_PREFIX) {
        // A local process: only as the operator listed it, looked up on every connection
        // (an operator who removes it stops it at once).
        Some(name) => {
            let listed = settings
                .mcp_stdio_servers
                .get(name)
                .ok_or(McpFailure::NotListed)?;
            let (program, args) = listed.command.split_first().ok_or(McpFailure::NotListed)?;
            McpTarget::Stdio {
                program: program.clone(),
                args: args.to_vec(),
                env: listed.env.clone().into_iter().collect(),
            }
        }
        None => {
            let url = url::Url::parse(&server.url).map_err(|_| McpFailure::BadUrl)?;
            if !endpoint_allowed(&url, egress) {
                return Err(McpFailure::NotAllowed);
            }
            McpTarget::Http { url, bearer }
        }
    };
    Ok(mcp::connect(target, &policy, &SystemResolver, limits).await?)
}

/// The `url` of a server run as a local process: `stdio:{name in mcp_stdio_servers}`.
pub const STDIO_PREFIX: &str = "stdio:";

/// Connects to `server` and reads the tools it offers.
pub async fn read_tools(
    settings: &crate::Settings,
    server: &McpServer,
    egress: &Egress,
    bearer: Option<SecretString>,
    timeout: Duration,
) -> ApiResult<Vec<RemoteTool>> {
    let session = connect(settings, server, egress, bearer, timeout).await?;
    let offered = session.list_tools().await;
    session.close().await;
    offered.map_err(|e| {
        ApiError::Unprocessable(format!("the MCP server's tools could not be listed: {e}"))
    })
}

/// A new remote tool as first stored: disabled, for nobody, treated as external and so
/// waiting for approval once enabled, until an admin says otherwise.
fn draft(server: &McpServer, remote: &RemoteTool) -> ToolDraft {
    ToolDraft {
        name: tool_name(&server.name, &remote.name),
        kind: ToolKind::Mcp {
            server: server.id,
            remote_name: remote.name.clone(),
            fingerprint: remote.fingerprint.clone(),
            pending: None,
        },
        description: remote.description.chars().take(2_000).collect(),
        input_schema: remote.input_schema.clone(),
        enabled: false,
        risk: Risk::External,
        allowed_roles: Vec::new(),
        allow_api_keys: false,
        approval: Approval::Above(Risk::Read),
        timeout_ms: 10_000,
        max_result_bytes: 16 * 1024,
        calls_per_minute: 30,
    }
}

/// Reads what `server` offers into the registry.
pub async fn sync(
    state: &crate::state::AppState,
    scope: &AssistantScope,
    server: &McpServer,
    offered: &[RemoteTool],
) -> ApiResult<SyncReport> {
    let repo = state.store.tools();
    // Whatever happens below, the cached registry is stale.
    state.chat.tool_sets.forget(scope.assistant_id());
    let mut report = SyncReport::default();
    for remote in offered {
        let name = tool_name(&server.name, &remote.name);
        let change = repo
            .sync_remote(
                scope,
                server.id,
                Remote {
                    name: &remote.name,
                    description: &remote.description,
                    input_schema: &remote.input_schema,
                    fingerprint: &remote.fingerprint,
                },
                || draft(server, remote),
            )
            .await;
        match change {
            Ok(SyncChange::Added) => report.added.push(name),
            Ok(SyncChange::Changed) => report.changed.push(name),
            Ok(SyncChange::Unchanged) => {}
            // Two remote names that map to one registry name: the later one is left out.
            Err(bastion_store::StoreError::Conflict(_)) => {
                tracing::warn!(server = %server.id, tool = %remote.name, "MCP tool name taken");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let names: Vec<String> = offered.iter().map(|t| t.name.clone()).collect();
    report.removed = repo.remove_missing(scope, server.id, &names).await?;
    repo.mark_synced(scope, server.id).await?;
    Ok(report)
}

/// Calls `remote_name` on `server` if it is still the tool that was reviewed; `Err` says why
/// not, in words the model may read.
pub async fn call(
    state: &crate::state::AppState,
    scope: &AssistantScope,
    server: &McpServer,
    egress: &Egress,
    (remote_name, reviewed): (&str, &str),
    arguments: &Value,
    timeout: Duration,
) -> Result<(String, bool), String> {
    // An attached server is reached through its live connection; others are connected to.
    let device = server
        .url
        .strip_prefix("device:")
        .and_then(|id| id.parse::<bastion_core::DeviceId>().ok());
    let attached = server.url == super::endpoint::ATTACHED_URL || device.is_some();
    let session: std::sync::Arc<McpSession> = if let Some(device) = device {
        state
            .devices
            .channels
            .session(device, scope.assistant_id())
            .ok_or_else(|| "the device offering this tool is not connected".to_string())?
    } else if attached {
        state
            .chat
            .attached
            .session(scope.assistant_id())
            .ok_or_else(|| {
                "the MCP server attached to this assistant is not connected".to_string()
            })?
    } else {
        let bearer = credential(state, scope, server).map_err(|e| e.to_string())?;
        std::sync::Arc::new(
            connect(&state.settings, server, egress, bearer, timeout)
                .await
                .map_err(|e| e.to_string())?,
        )
    };
    let result = async {
        let offered = session.list_tools().await.map_err(|e| e.to_string())?;
        let Some(remote) = offered.iter().find(|t| t.name == remote_name) else {
            return Err("the MCP server no longer offers this tool".to_string());
        };
        if remote.fingerprint != reviewed {
            // Disable it now, for every conversation, until an admin looks.
            if let Err(e) = sync(state, scope, server, &offered).await {
                tracing::error!(error = %e.problem().detail, "MCP sync after a change failed");
            }
            return Err(
                "the MCP server changed this tool since an admin reviewed it; it is disabled until reviewed"
                    .to_string(),
            );
        }
        let args = arguments.as_object().cloned().unwrap_or_default();
        let out = session
            .call_tool(remote_name, args, timeout)
            .await
            .map_err(|e| e.to_string())?;
        if out.is_error {
            return Err("the MCP tool reported an error".to_string());
        }
        Ok((out.text, out.truncated))
    }
    .await;
    // A session connected for this call is closed; an attached one stays with its socket.
    if !attached {
        if let Ok(s) = std::sync::Arc::try_unwrap(session) {
            s.close().await;
        }
    }
    result
}

impl From<McpFailure> for ApiError {
    fn from(e: McpFailure) -> Self {
        ApiError::Unprocessable(format!("the MCP server could not be used: {e}"))
    }
}
