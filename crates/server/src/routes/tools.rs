//! The tool boundary's administration: an assistant's tool registry (`…/tools`, capability
//! tools.manage), where its endpoints may connect (`…/egress`, settings.manage), the calls
//! waiting for a person (`…/tool-approvals`, tools.approve) and the record of a
//! conversation's tool calls (`…/conversations/{cid}/tool-calls`, traces.read).
//!
//! Safe defaults: a new tool is usable by no role until roles are named, anything riskier
//! than `read` waits for approval, and a built-in tool cannot be rated below what it does
//! (`fetch_url` is external, `write_file` writes).

use crate::chat::tools::{builtin, builtin_names, endpoint_allowed, FETCH_URL};
use crate::error::{ApiError, ApiResult, Problem};
use crate::events::{self, SUCCESS};
use crate::flow::{Actor, InAssistant, ItemParam, Meta, PathParams};
use crate::json::ApiJson;
use crate::json::ApiQuery;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::{Approval, Risk, Role, ToolApprovalId, ToolId};
use bastion_store::tools::{ApprovalRequest, CallRecord, Egress, Tool, ToolDraft, ToolKind};
use bastion_tools::files;
use bastion_tools::schema::ArgumentSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

const MAX_HOSTS: usize = 100;

#[derive(Serialize, ToSchema)]
pub struct ToolView {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// `builtin`, `http` or `mcp`.
    pub kind: String,
    pub builtin: Option<String>,
    pub endpoint: Option<String>,
    /// For `mcp`: the server and the tool's name there.
    #[schema(format = Uuid)]
    pub mcp_server_id: Option<String>,
    pub remote_name: Option<String>,
    /// For `mcp`: the server changed the tool since it was reviewed; it stays disabled until
    /// an admin enables it again, which accepts the change.
    pub needs_review: bool,
    pub description: String,
    #[schema(value_type = Object)]
    pub input_schema: Value,
    pub enabled: bool,
    pub risk: Risk,
    pub allowed_roles: Vec<String>,
    pub allow_api_keys: bool,
    pub approval: Approval,
    pub timeout_ms: i64,
    pub max_result_bytes: i64,
    pub calls_per_minute: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Tool> for ToolView {
    fn from(t: &Tool) -> Self {
        let (kind, builtin, endpoint) = match &t.kind {
            ToolKind::Builtin(b) => ("builtin", Some(b.clone()), None),
            ToolKind::Http { endpoint } => ("http", None, Some(endpoint.clone())),
            ToolKind::Mcp { .. } => ("mcp", None, None),
        };
        let (mcp_server_id, remote_name, needs_review) = match &t.kind {
            ToolKind::Mcp {
                server,
                remote_name,
                pending,
                ..
            } => (
                Some(server.to_string()),
                Some(remote_name.clone()),
                pending.is_some(),
            ),
            _ => (None, None, false),
        };
        ToolView {
            id: t.id.to_string(),
            name: t.name.clone(),
            kind: kind.into(),
            builtin,
            endpoint,
            mcp_server_id,
            remote_name,
            needs_review,
            description: t.description.clone(),
            input_schema: t.input_schema.clone(),
            enabled: t.enabled,
            risk: t.risk,
            allowed_roles: t.allowed_roles.clone(),
            allow_api_keys: t.allow_api_keys,
            approval: t.approval,
            timeout_ms: t.timeout_ms,
            max_result_bytes: t.max_result_bytes,
            calls_per_minute: t.calls_per_minute,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_approval() -> Approval {
    Approval::Above(Risk::Read)
}
fn default_timeout() -> i64 {
    10_000
}
fn default_result_bytes() -> i64 {
    16 * 1024
}
fn default_rate() -> i64 {
    30
}

/// A tool as configured (create, or replace with PUT).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolInput {
    /// What the model calls: 1–64 of `a-z A-Z 0-9 _ -`, unique per assistant.
    pub name: String,
    /// `builtin` or `http` (or, to change the settings of a tool an MCP server offers, `mcp`).
    pub kind: String,
    /// For `builtin`: fetch_url, read_file, write_file or list_files.
    pub builtin: Option<String>,
    /// For `http`: the URL POSTed the arguments; its host must be on the assistant's egress
    /// allowlist.
    pub endpoint: Option<String>,
    /// For `http` (built-ins describe themselves unless this is set).
    pub description: Option<String>,
    /// For `http`: the JSON Schema of the arguments (an object schema). Built-ins have their own.
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub risk: Risk,
    /// Roles whose conversations may trigger the tool (built-in or custom role names).
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Whether conversations of API keys (programs) may trigger it.
    #[serde(default)]
    pub allow_api_keys: bool,
    /// Default: calls of tools above `read` wait for approval.
    #[serde(default = "default_approval")]
    pub approval: Approval,
    /// 100 to 120,000 (default 10,000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: i64,
    /// 256 to 1,048,576 (default 16,384): the result is cut beyond this.
    #[serde(default = "default_result_bytes")]
    pub max_result_bytes: i64,
    /// 1 to 10,000 (default 30).
    #[serde(default = "default_rate")]
    pub calls_per_minute: i64,
}

/// What a built-in tool does at least: it cannot be rated below it.
fn builtin_floor(name: &str) -> Risk {
    match name {
        FETCH_URL => Risk::External,
        files::WRITE_FILE => Risk::Write,
        _ => Risk::Read,
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(msg.into())
}

async fn draft(
    state: &AppState,
    at: &InAssistant,
    input: ToolInput,
    existing: Option<&Tool>,
) -> ApiResult<ToolDraft> {
    let name_ok = (1..=64).contains(&input.name.len())
        && input
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(bad("name: 1 to 64 of a-z, A-Z, 0-9, _ and -"));
    }
    if !(100..=120_000).contains(&input.timeout_ms) {
        return Err(bad("timeout_ms: 100 to 120000"));
    }
    if !(256..=1_048_576).contains(&input.max_result_bytes) {
        return Err(bad("max_result_bytes: 256 to 1048576"));
    }
    if !(1..=10_000).contains(&input.calls_per_minute) {
        return Err(bad("calls_per_minute: 1 to 10000"));
    }
    let custom = state.store.roles().list(&at.scope).await?;
    for role in &input.allowed_roles {
        if Role::parse(role).is_none() && !custom.iter().any(|c| &c.name == role) {
            return Err(bad(format!("allowed_roles: no role named {role:?}")));
        }
    }
    let (kind, description, input_schema) = match input.kind.as_str() {
        "builtin" => {
            let name = input.builtin.as_deref().unwrap_or_default();
            let Some((description, schema)) = builtin(name) else {
                return Err(bad(format!(
                    "builtin: one of {}",
                    builtin_names().join(", ")
                )));
            };
            if input.endpoint.is_some() || input.input_schema.is_some() {
                return Err(bad(
                    "a built-in tool has no endpoint, and its input_schema is its own",
                ));
            }
            if input.risk < builtin_floor(name) {
                return Err(bad(format!(
                    "risk: {name} is at least {}",
                    builtin_floor(name).as_str()
                )));
            }
            (
                ToolKind::Builtin(name.to_string()),
                input.description.unwrap_or(description),
                schema,
            )
        }
        "mcp" => {
            // MCP tools come from their server (`…/mcp-servers`); here only their settings
            // change, and enabling a changed one accepts the change.
            let Some(Tool {
                kind:
                    ToolKind::Mcp {
                        server,
                        remote_name,
                        fingerprint,
                        pending,
                    },
                description,
                input_schema,
                ..
            }) = existing
            else {
                return Err(bad(
                    "kind: MCP tools are added by adding their server (mcp-servers)",
                ));
            };
            if input.builtin.is_some()
                || input.endpoint.is_some()
                || input.input_schema.is_some()
                || input.description.is_some()
            {
                return Err(bad(
                    "an MCP tool's description and schema are its server's; only its settings change here",
                ));
            }
            let (fingerprint, pending) = match (input.enabled, pending) {
                (true, Some(new)) => (new.clone(), None),
                (_, pending) => (fingerprint.clone(), pending.clone()),
            };
            (
                ToolKind::Mcp {
                    server: *server,
                    remote_name: remote_name.clone(),
                    fingerprint,
                    pending,
                },
                description.clone(),
                input_schema.clone(),
            )
        }
        "http" => {
            let endpoint = input
                .endpoint
                .ok_or_else(|| bad("endpoint: required for an http tool"))?;
            let url = url::Url::parse(&endpoint).map_err(|_| bad("endpoint: not a URL"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad("endpoint: http or https only"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(bad(
                    "endpoint: no credentials in the URL (they would leak to logs and traces)",
                ));
            }
            let egress = state.store.tools().egress(&at.scope).await?;
            if !endpoint_allowed(&url, &egress) {
                return Err(bad(format!(
                    "endpoint: {} is not on the assistant's egress allowlist",
                    url.host_str().unwrap_or("")
                )));
            }
            let schema = input
                .input_schema
                .ok_or_else(|| bad("input_schema: required for an http tool"))?;
            let description = input
                .description
                .ok_or_else(|| bad("description: required for an http tool"))?;
            (ToolKind::Http { endpoint }, description, schema)
        }
        _ => return Err(bad("kind: builtin or http")),
    };
    if existing.is_some_and(|t| matches!(t.kind, ToolKind::Mcp { .. }))
        != matches!(kind, ToolKind::Mcp { .. })
    {
        return Err(bad(
            "kind: an MCP tool stays an MCP tool, and only MCP tools are",
        ));
    }
    // An MCP tool's description and schema are its server's, checked when used.
    if !matches!(kind, ToolKind::Mcp { .. }) {
        if description.trim().is_empty() || description.chars().count() > 2_000 {
            return Err(bad("description: 1 to 2000 characters"));
        }
        if serde_json::to_string(&input_schema).map_or(0, |s| s.len()) > 64 * 1024 {
            return Err(bad("input_schema: at most 64 KiB"));
        }
        ArgumentSchema::compile(&input_schema).map_err(|e| bad(format!("input_schema: {e}")))?;
    }
    Ok(ToolDraft {
        name: input.name,
        kind,
        description,
        input_schema,
        enabled: input.enabled,
        risk: input.risk,
        allowed_roles: input.allowed_roles,
        allow_api_keys: input.allow_api_keys,
        approval: input.approval,
        timeout_ms: input.timeout_ms,
        max_result_bytes: input.max_result_bytes,
        calls_per_minute: input.calls_per_minute,
    })
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/tools", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [ToolView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<ToolView>>> {
    let tools = state.store.tools().list(&at.scope).await?;
    Ok(Json(tools.iter().map(ToolView::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/tools", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = ToolInput,
    responses((status = 201, body = ToolView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ApiJson(input): ApiJson<ToolInput>,
) -> ApiResult<(StatusCode, Json<ToolView>)> {
    let d = draft(&state, &at, input, None).await?;
    let tool = state.store.tools().create(&at.scope, &d).await?;
    state.chat.tool_sets.forget(at.scope.assistant_id());
    audit_tool(&state, &at, actor, &meta, "tool.create", &tool).await;
    Ok((StatusCode::CREATED, Json(ToolView::from(&tool))))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/tools/{tool_id}", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("tool_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ToolView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    at: InAssistant,
    ItemParam(id): ItemParam<ToolId>,
) -> ApiResult<Json<ToolView>> {
    let tool = state.store.tools().get(&at.scope, id).await?;
    Ok(Json(ToolView::from(&tool)))
}

#[utoipa::path(put, path = "/api/v1/assistants/{assistant_id}/tools/{tool_id}", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("tool_id" = String, Path, format = Uuid)), request_body = ToolInput,
    responses((status = 200, body = ToolView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ItemParam(id): ItemParam<ToolId>,
    ApiJson(input): ApiJson<ToolInput>,
) -> ApiResult<Json<ToolView>> {
    // Another assistant's tool id is a 404 before the body is looked at.
    let existing = state.store.tools().get(&at.scope, id).await?;
    let d = draft(&state, &at, input, Some(&existing)).await?;
    let tool = state.store.tools().update(&at.scope, id, &d).await?;
    state.chat.tool_sets.forget(at.scope.assistant_id());
    audit_tool(&state, &at, actor, &meta, "tool.update", &tool).await;
    Ok(Json(ToolView::from(&tool)))
}

#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/tools/{tool_id}", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("tool_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ItemParam(id): ItemParam<ToolId>,
) -> ApiResult<StatusCode> {
    let tool = state.store.tools().get(&at.scope, id).await?;
    state.store.tools().delete(&at.scope, id).await?;
    state.chat.tool_sets.forget(at.scope.assistant_id());
    audit_tool(&state, &at, actor, &meta, "tool.delete", &tool).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit_tool(
    state: &AppState,
    at: &InAssistant,
    actor: Actor,
    meta: &Meta,
    action: &str,
    tool: &Tool,
) {
    let view = ToolView::from(tool);
    state
        .audit(events::on_assistant(
            at,
            actor,
            meta,
            action,
            SUCCESS,
            json!({"tool": view.id, "name": view.name, "kind": view.kind, "builtin": view.builtin,
                   "endpoint": view.endpoint, "enabled": view.enabled, "risk": view.risk,
                   "allowed_roles": view.allowed_roles, "allow_api_keys": view.allow_api_keys,
                   "approval": view.approval}),
        ))
        .await;
}

/// Where an assistant's configured endpoints may connect.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressView {
    /// Hosts HTTP tools (and MCP servers) may be configured with: exact names or IP literals.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Exact hosts allowed to resolve to private, loopback or link-local addresses (every
    /// other host is refused such addresses, checked on every connection).
    #[serde(default)]
    pub private_hosts: Vec<String>,
}

fn normal_hosts(field: &str, hosts: Vec<String>) -> ApiResult<Vec<String>> {
    if hosts.len() > MAX_HOSTS {
        return Err(bad(format!("{field}: at most {MAX_HOSTS} hosts")));
    }
    let mut out = Vec::with_capacity(hosts.len());
    for h in hosts {
        let bare = h.trim().trim_start_matches('[').trim_end_matches(']');
        let parsed = if bare.parse::<std::net::Ipv6Addr>().is_ok() {
            Some(bare.to_ascii_lowercase())
        } else {
            url::Host::parse(bare).ok().map(|h| h.to_string())
        };
        match parsed {
            Some(p) if !p.is_empty() && !p.contains('*') => out.push(p),
            _ => {
                return Err(bad(format!(
                    "{field}: {h:?} is not a host name or IP address"
                )))
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/egress", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = EgressView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_egress(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<EgressView>> {
    let e = state.store.tools().egress(&at.scope).await?;
    Ok(Json(EgressView {
        allowed_hosts: e.allowed_hosts,
        private_hosts: e.private_hosts,
    }))
}

#[utoipa::path(put, path = "/api/v1/assistants/{assistant_id}/egress", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = EgressView,
    responses((status = 200, body = EgressView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_egress(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ApiJson(input): ApiJson<EgressView>,
) -> ApiResult<Json<EgressView>> {
    let egress = Egress {
        allowed_hosts: normal_hosts("allowed_hosts", input.allowed_hosts)?,
        private_hosts: normal_hosts("private_hosts", input.private_hosts)?,
    };
    state.store.tools().set_egress(&at.scope, &egress).await?;
    state.chat.tool_sets.forget(at.scope.assistant_id());
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "egress.update",
            SUCCESS,
            json!({"allowed_hosts": egress.allowed_hosts, "private_hosts": egress.private_hosts}),
        ))
        .await;
    Ok(Json(EgressView {
        allowed_hosts: egress.allowed_hosts,
        private_hosts: egress.private_hosts,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ApprovalView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub tool_id: String,
    pub tool: String,
    #[schema(format = Uuid)]
    pub conversation_id: Option<String>,
    /// The arguments the model proposed, as it sent them: what is being approved.
    pub arguments: String,
    pub requested_by: String,
    /// pending, approved, denied or expired.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub expires_at: String,
    pub created_at: String,
}

impl From<&ApprovalRequest> for ApprovalView {
    fn from(a: &ApprovalRequest) -> Self {
        let expired = a.status == bastion_store::tools::ApprovalStatus::Pending
            && a.expires_at <= bastion_store::now_ms();
        ApprovalView {
            id: a.id.to_string(),
            tool_id: a.tool_id.to_string(),
            tool: a.tool_name.clone(),
            conversation_id: a.conversation_id.map(|c| c.to_string()),
            arguments: a.arguments.clone(),
            requested_by: a.requested_by.clone(),
            status: if expired {
                "expired"
            } else {
                a.status.as_str()
            }
            .to_string(),
            decided_by: a.decided_by.clone(),
            decided_at: a.decided_at.map(rfc3339),
            expires_at: rfc3339(a.expires_at),
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
pub struct ApprovalQuery {
    /// `pending` (default) or `all`.
    pub status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/tool-approvals", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ApprovalQuery),
    responses((status = 200, body = [ApprovalView]), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_approvals(
    State(state): State<AppState>,
    at: InAssistant,
    ApiQuery(q): ApiQuery<ApprovalQuery>,
) -> ApiResult<Json<Vec<ApprovalView>>> {
    let pending_only = match q.status.as_deref() {
        None | Some("pending") => true,
        Some("all") => false,
        Some(_) => return Err(bad("status: pending or all")),
    };
    let list = state
        .store
        .tools()
        .approvals(&at.scope, pending_only)
        .await?;
    Ok(Json(
        list.iter()
            .map(ApprovalView::from)
            .filter(|v| !pending_only || v.status == "pending")
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/tool-approvals/{approval_id}", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("approval_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ApprovalView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_approval(
    State(state): State<AppState>,
    at: InAssistant,
    ItemParam(id): ItemParam<ToolApprovalId>,
) -> ApiResult<Json<ApprovalView>> {
    let a = state.store.tools().approval(&at.scope, id).await?;
    Ok(Json(ApprovalView::from(&a)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub approve: bool,
}

/// Approves or denies a pending call, once: a second decision, or one after the request
/// expired, is a 409 and changes nothing.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/tool-approvals/{approval_id}/decision", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("approval_id" = String, Path, format = Uuid)), request_body = Decision,
    responses((status = 200, body = ApprovalView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decide(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ItemParam(id): ItemParam<ToolApprovalId>,
    ApiJson(input): ApiJson<Decision>,
) -> ApiResult<Json<ApprovalView>> {
    let a = state
        .store
        .tools()
        .decide(&at.scope, id, input.approve)
        .await?;
    state.chat.approvals.decided(id);
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "tool.approval.decide",
            SUCCESS,
            json!({"approval": a.id.to_string(), "tool": a.tool_name, "tool_id": a.tool_id.to_string(),
                   "approved": input.approve}),
        ))
        .await;
    Ok(Json(ApprovalView::from(&a)))
}

#[derive(Serialize, ToSchema)]
pub struct ToolCallView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub tool_id: Option<String>,
    pub tool: String,
    /// ok, refused, denied, failed or timed_out.
    pub outcome: String,
    pub reason: Option<String>,
    pub arguments_sha256: String,
    pub arguments_bytes: i64,
    pub result_sha256: Option<String>,
    pub result_bytes: Option<i64>,
    pub truncated: bool,
    pub duration_ms: i64,
    pub created_at: String,
}

impl From<&CallRecord> for ToolCallView {
    fn from(c: &CallRecord) -> Self {
        ToolCallView {
            id: c.id.to_string(),
            tool_id: c.tool_id.map(|t| t.to_string()),
            tool: c.name.clone(),
            outcome: c.outcome.clone(),
            reason: c.reason.clone(),
            arguments_sha256: c.arguments_sha256.clone(),
            arguments_bytes: c.arguments_bytes,
            result_sha256: c.result_sha256.clone(),
            result_bytes: c.result_bytes,
            truncated: c.truncated,
            duration_ms: c.duration_ms,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// Every tool call proposed in a conversation and what became of it (hashes and sizes).
#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/tool-calls", tag = "tools", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("conversation_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [ToolCallView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn calls(
    State(state): State<AppState>,
    at: InAssistant,
    params: PathParams,
) -> ApiResult<Json<Vec<ToolCallView>>> {
    let id = params.id("conversation_id")?;
    // The conversation must be this assistant's: another's id is a 404.
    if !state.store.conversations().exists(&at.scope, id).await? {
        return Err(ApiError::NotFound);
    }
    let list = state.store.tools().calls(&at.scope, id).await?;
    Ok(Json(list.iter().map(ToolCallView::from).collect()))
}
