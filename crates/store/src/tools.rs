//! The tool boundary's rows: an assistant's tool registry, where its endpoints may connect,
//! the record of every proposed call, and the calls waiting for approval. Every query is
//! keyed by the scope's assistant: another assistant's tools are not found, not forbidden.

use crate::scope::AssistantScope;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{
    Approval, ConversationId, McpServerId, Risk, ToolApprovalId, ToolCallId, ToolId,
};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// What runs when the model calls a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolKind {
    /// One of bastion's own tools, by name (`fetch_url`, `read_file`, …).
    Builtin(String),
    /// An HTTP endpoint that is POSTed the arguments as JSON.
    Http { endpoint: String },
    /// Tool `remote_name` of an MCP server. `fingerprint` is what an admin reviewed;
    /// `pending` is set when the server changed the tool since (it stays disabled until an
    /// admin enables it again, which accepts the change).
    Mcp {
        server: McpServerId,
        remote_name: String,
        fingerprint: String,
        pending: Option<String>,
    },
}

/// The vault's record kind of an MCP server's sealed credential.
pub const CREDENTIAL_KIND: &str = "mcp_credential";

/// An MCP server of an assistant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    pub id: McpServerId,
    pub name: String,
    pub url: String,
    /// The server's bearer token, sealed (see the vault); never leaves through the API.
    pub credential: Option<String>,
    pub credential_last4: Option<String>,
    pub synced_at: Option<i64>,
    pub created_at: i64,
}

/// One tool as an MCP server offers it now.
#[derive(Debug, Clone, Copy)]
pub struct Remote<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub input_schema: &'a serde_json::Value,
    pub fingerprint: &'a str,
}

/// One issued MCP endpoint token (the token itself is never stored: it is signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpEndpoint {
    pub id: McpServerId,
    pub assistant_id: bastion_core::AssistantId,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
}

impl McpEndpoint {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// An endpoint row by id, outside any scope: the WebSocket that presents a token has no
/// principal yet; the caller checks the row's assistant against the token's.
pub async fn endpoint_by_id(store: &crate::Store, id: McpServerId) -> Result<Option<McpEndpoint>> {
    let r = sqlx::query(
        "SELECT id, assistant_id, expires_at, revoked_at, created_by, created_at FROM mcp_endpoints \
         WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(&store.pool)
    .await?;
    r.as_ref().map(mcp_endpoint).transpose()
}

fn mcp_endpoint(r: &AnyRow) -> Result<McpEndpoint> {
    Ok(McpEndpoint {
        id: row::id(r, "id")?,
        assistant_id: row::id(r, "assistant_id")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// What a sync did to one remote tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncChange {
    /// New: stored disabled, usable by nobody, until an admin enables it.
    Added,
    /// Its description or schema changed: disabled until an admin reviews it.
    Changed,
    Unchanged,
}

/// A tool as configured on an assistant.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub id: ToolId,
    pub name: String,
    pub kind: ToolKind,
    pub description: String,
    pub input_schema: serde_json::Value,
    pub enabled: bool,
    pub risk: Risk,
    pub allowed_roles: Vec<String>,
    pub allow_api_keys: bool,
    pub approval: Approval,
    pub timeout_ms: i64,
    pub max_result_bytes: i64,
    pub calls_per_minute: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The settable part of a tool: what `create` stores and `update` replaces.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDraft {
    pub name: String,
    pub kind: ToolKind,
    pub description: String,
    pub input_schema: serde_json::Value,
    pub enabled: bool,
    pub risk: Risk,
    pub allowed_roles: Vec<String>,
    pub allow_api_keys: bool,
    pub approval: Approval,
    pub timeout_ms: i64,
    pub max_result_bytes: i64,
    pub calls_per_minute: i64,
}

/// Where an assistant's configured endpoints may point.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Egress {
    /// Hosts HTTP tools and MCP servers may be configured with (exact, lowercase).
    pub allowed_hosts: Vec<String>,
    /// Hosts an admin allowed to resolve to private, loopback or link-local addresses.
    pub private_hosts: Vec<String>,
}

/// What became of a proposed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Refused by policy before anything ran (unknown, disabled, not allowed, bad
    /// arguments, rate limited, over the per-turn cap).
    Refused,
    /// A person said no, or nobody answered in time.
    Denied,
    Ok,
    Failed,
    TimedOut,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Refused => "refused",
            CallOutcome::Denied => "denied",
            CallOutcome::Ok => "ok",
            CallOutcome::Failed => "failed",
            CallOutcome::TimedOut => "timed_out",
        }
    }
}

/// The stored trace of one proposed call: hashes and sizes, never content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: ToolCallId,
    pub conversation_id: Option<ConversationId>,
    pub tool_id: Option<ToolId>,
    pub name: String,
    pub arguments_sha256: String,
    pub arguments_bytes: i64,
    pub outcome: String,
    pub reason: Option<String>,
    pub result_sha256: Option<String>,
    pub result_bytes: Option<i64>,
    pub truncated: bool,
    pub duration_ms: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }
    fn parse(s: &str) -> Result<ApprovalStatus> {
        Ok(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "expired" => ApprovalStatus::Expired,
            _ => return Err(StoreError::Corrupt(format!("approval status {s:?}"))),
        })
    }
}

/// A call waiting for (or given) a person's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub id: ToolApprovalId,
    pub tool_id: ToolId,
    pub conversation_id: Option<ConversationId>,
    pub tool_name: String,
    pub arguments: String,
    pub requested_by: String,
    pub status: ApprovalStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub expires_at: i64,
    pub created_at: i64,
}

pub struct Tools<'a> {
    pub(crate) pool: &'a AnyPool,
}

const TOOL_COLUMNS: &str = "id, name, kind, builtin, endpoint, mcp_server_id, remote_name, \
    fingerprint, pending_fingerprint, description, input_schema, enabled, risk, allowed_roles, allow_api_keys, approval, timeout_ms, max_result_bytes, \
    calls_per_minute, created_at, updated_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("tools.{what}"))
}

fn tool(r: &AnyRow) -> Result<Tool> {
    let kind: String = r.try_get("kind")?;
    let kind = match kind.as_str() {
        "builtin" => ToolKind::Builtin(
            r.try_get::<Option<String>, _>("builtin")?
                .ok_or_else(|| corrupt("builtin"))?,
        ),
        "http" => ToolKind::Http {
            endpoint: r
                .try_get::<Option<String>, _>("endpoint")?
                .ok_or_else(|| corrupt("endpoint"))?,
        },
        "mcp" => {
            let server: Option<String> = r.try_get("mcp_server_id")?;
            ToolKind::Mcp {
                server: server
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| corrupt("mcp_server_id"))?,
                remote_name: r
                    .try_get::<Option<String>, _>("remote_name")?
                    .ok_or_else(|| corrupt("remote_name"))?,
                fingerprint: r
                    .try_get::<Option<String>, _>("fingerprint")?
                    .ok_or_else(|| corrupt("fingerprint"))?,
                pending: r.try_get("pending_fingerprint")?,
            }
        }
        _ => return Err(corrupt("kind")),
    };
    let schema: String = r.try_get("input_schema")?;
    let roles: String = r.try_get("allowed_roles")?;
    let risk: String = r.try_get("risk")?;
    let approval: String = r.try_get("approval")?;
    Ok(Tool {
        id: row::id(r, "id")?,
        name: r.try_get("name")?,
        kind,
        description: r.try_get("description")?,
        input_schema: serde_json::from_str(&schema).map_err(|_| corrupt("input_schema"))?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        risk: Risk::parse(&risk).ok_or_else(|| corrupt("risk"))?,
        allowed_roles: serde_json::from_str(&roles).map_err(|_| corrupt("allowed_roles"))?,
        allow_api_keys: r.try_get::<i64, _>("allow_api_keys")? != 0,
        approval: Approval::from_db(&approval).ok_or_else(|| corrupt("approval"))?,
        timeout_ms: r.try_get("timeout_ms")?,
        max_result_bytes: r.try_get("max_result_bytes")?,
        calls_per_minute: r.try_get("calls_per_minute")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The kind columns: kind, builtin, endpoint, mcp_server_id, remote_name, fingerprint,
/// pending_fingerprint.
struct KindColumns<'a> {
    kind: &'static str,
    builtin: Option<&'a str>,
    endpoint: Option<&'a str>,
    server: Option<String>,
    remote_name: Option<&'a str>,
    fingerprint: Option<&'a str>,
    pending: Option<&'a str>,
}

fn kind_columns(kind: &ToolKind) -> KindColumns<'_> {
    let none = KindColumns {
        kind: "builtin",
        builtin: None,
        endpoint: None,
        server: None,
        remote_name: None,
        fingerprint: None,
        pending: None,
    };
    match kind {
        ToolKind::Builtin(name) => KindColumns {
            builtin: Some(name),
            ..none
        },
        ToolKind::Http { endpoint } => KindColumns {
            kind: "http",
            endpoint: Some(endpoint),
            ..none
        },
        ToolKind::Mcp {
            server,
            remote_name,
            fingerprint,
            pending,
        } => KindColumns {
            kind: "mcp",
            server: Some(server.to_string()),
            remote_name: Some(remote_name),
            fingerprint: Some(fingerprint),
            pending: pending.as_deref(),
            ..none
        },
    }
}

/// The columns a [`ToolDraft`] sets, bound as `$1`…`$18` by [`bind_draft`].
const DRAFT_COLUMNS: &str = "name, kind, builtin, endpoint, mcp_server_id, remote_name, \
    fingerprint, pending_fingerprint, description, input_schema, enabled, risk, allowed_roles, \
    allow_api_keys, approval, timeout_ms, max_result_bytes, calls_per_minute";
const DRAFT_PARAMS: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_draft<'q>(q: AnyQuery<'q>, spec: &'q ToolDraft) -> Result<AnyQuery<'q>> {
    let k = kind_columns(&spec.kind);
    Ok(q.bind(&spec.name)
        .bind(k.kind)
        .bind(k.builtin)
        .bind(k.endpoint)
        .bind(k.server)
        .bind(k.remote_name)
        .bind(k.fingerprint)
        .bind(k.pending)
        .bind(&spec.description)
        .bind(json_text(&spec.input_schema)?)
        .bind(i64::from(spec.enabled))
        .bind(spec.risk.as_str())
        .bind(json_text(&spec.allowed_roles)?)
        .bind(i64::from(spec.allow_api_keys))
        .bind(spec.approval.to_db())
        .bind(spec.timeout_ms)
        .bind(spec.max_result_bytes)
        .bind(spec.calls_per_minute))
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn approval_request(r: &AnyRow) -> Result<ApprovalRequest> {
    let conversation: Option<String> = r.try_get("conversation_id")?;
    let status: String = r.try_get("status")?;
    Ok(ApprovalRequest {
        id: row::id(r, "id")?,
        tool_id: row::id(r, "tool_id")?,
        conversation_id: conversation
            .map(|c| c.parse())
            .transpose()
            .map_err(|_| StoreError::Corrupt("tool_approvals.conversation_id".into()))?,
        tool_name: r.try_get("tool_name")?,
        arguments: r.try_get("arguments")?,
        requested_by: r.try_get("requested_by")?,
        status: ApprovalStatus::parse(&status)?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
    })
}

fn mcp_server(r: &AnyRow) -> Result<McpServer> {
    Ok(McpServer {
        id: row::id(r, "id")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        credential: r.try_get("credential")?,
        credential_last4: r.try_get("credential_last4")?,
        synced_at: r.try_get("synced_at")?,
        created_at: r.try_get("created_at")?,
    })
}

const APPROVAL_COLUMNS: &str = "id, tool_id, conversation_id, tool_name, arguments, \
    requested_by, status, decided_by, decided_at, expires_at, created_at";

impl Tools<'_> {
    pub async fn list(&self, scope: &AssistantScope) -> Result<Vec<Tool>> {
        let sql =
            format!("SELECT {TOOL_COLUMNS} FROM tools WHERE assistant_id = $1 ORDER BY name, id");
        let rows = sqlx::query(&sql)
            .bind(scope.assistant_id().to_string())
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(tool).collect()
    }

    pub async fn get(&self, scope: &AssistantScope, id: ToolId) -> Result<Tool> {
        let sql = format!("SELECT {TOOL_COLUMNS} FROM tools WHERE id = $1 AND assistant_id = $2");
        let r = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .fetch_optional(self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        tool(&r)
    }

    pub async fn create(&self, scope: &AssistantScope, spec: &ToolDraft) -> Result<Tool> {
        let id = ToolId::new();
        let now = now_ms();
        let sql = format!(
            "INSERT INTO tools ({DRAFT_COLUMNS}, id, assistant_id, created_at, updated_at) \
             VALUES ({DRAFT_PARAMS}, $19, $20, $21, $21)"
        );
        bind_draft(sqlx::query(&sql), spec)?
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .bind(now)
            .execute(self.pool)
            .await
            .map_err(|e| StoreError::unique_as_conflict(e, "a tool of that name exists"))?;
        self.get(scope, id).await
    }

    pub async fn update(
        &self,
        scope: &AssistantScope,
        id: ToolId,
        spec: &ToolDraft,
    ) -> Result<Tool> {
        let sql = format!(
            "UPDATE tools SET ({DRAFT_COLUMNS}, updated_at) = ({DRAFT_PARAMS}, $19) \
             WHERE id = $20 AND assistant_id = $21"
        );
        let done = bind_draft(sqlx::query(&sql), spec)?
            .bind(now_ms())
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .execute(self.pool)
            .await
            .map_err(|e| StoreError::unique_as_conflict(e, "a tool of that name exists"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get(scope, id).await
    }

    pub async fn delete(&self, scope: &AssistantScope, id: ToolId) -> Result<()> {
        let done = sqlx::query("DELETE FROM tools WHERE id = $1 AND assistant_id = $2")
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .execute(self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn servers(&self, scope: &AssistantScope) -> Result<Vec<McpServer>> {
        let rows = sqlx::query(
            "SELECT id, name, url, credential, credential_last4, synced_at, created_at FROM mcp_servers \
             WHERE assistant_id = $1 \
             ORDER BY name, id",
        )
        .bind(scope.assistant_id().to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(mcp_server).collect()
    }

    pub async fn server(&self, scope: &AssistantScope, id: McpServerId) -> Result<McpServer> {
        let r = sqlx::query(
            "SELECT id, name, url, credential, credential_last4, synced_at, created_at \
             FROM mcp_servers WHERE id = $1 AND assistant_id = $2",
        )
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .fetch_optional(self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        mcp_server(&r)
    }

    /// Stores a server under `id` (the id its sealed credential is bound to).
    pub async fn add_server(
        &self,
        scope: &AssistantScope,
        id: McpServerId,
        name: &str,
        url: &str,
        credential: Option<(String, String)>,
    ) -> Result<McpServer> {
        let (credential, credential_last4) = credential.unzip();
        let s = McpServer {
            id,
            name: name.to_string(),
            url: url.to_string(),
            credential,
            credential_last4,
            synced_at: None,
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO mcp_servers (id, assistant_id, name, url, credential, credential_last4, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.id.to_string())
        .bind(scope.assistant_id().to_string())
        .bind(&s.name)
        .bind(&s.url)
        .bind(s.credential.as_deref())
        .bind(s.credential_last4.as_deref())
        .bind(s.created_at)
        .execute(self.pool)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "an MCP server of that name exists"))?;
        Ok(s)
    }

    /// Sealed server credentials with the workspace they are bound to, a page at a time.
    pub async fn sealed_page(
        &self,
        after: Option<McpServerId>,
        limit: i64,
    ) -> Result<Vec<(McpServerId, bastion_core::WorkspaceId, String)>> {
        crate::sealed::page(
            self.pool,
            "SELECT s.id, a.workspace_id, s.credential AS sealed FROM mcp_servers s \
             JOIN assistants a ON a.id = s.assistant_id \
             WHERE s.credential IS NOT NULL AND s.id > $1 ORDER BY s.id LIMIT $2",
            after,
            limit,
        )
        .await
    }

    /// Replaces a sealed credential by its re-wrapped form, only if it is still `old`.
    pub async fn replace_sealed(&self, id: McpServerId, old: &str, new: &str) -> Result<bool> {
        crate::sealed::replace(
            self.pool,
            ("mcp_servers", "credential"),
            &id.to_string(),
            old,
            new,
        )
        .await
    }

    /// Deletes a server and (by cascade) its tools.
    pub async fn delete_server(&self, scope: &AssistantScope, id: McpServerId) -> Result<()> {
        let done = sqlx::query("DELETE FROM mcp_servers WHERE id = $1 AND assistant_id = $2")
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .execute(self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn mark_synced(&self, scope: &AssistantScope, id: McpServerId) -> Result<()> {
        sqlx::query("UPDATE mcp_servers SET synced_at = $1 WHERE id = $2 AND assistant_id = $3")
            .bind(now_ms())
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .execute(self.pool)
            .await?;
        Ok(())
    }

    /// Records what a server offers for one tool: new tools are added disabled (a draft the
    /// caller built), a changed one is disabled with its new description and schema until an
    /// admin reviews it.
    pub async fn sync_remote(
        &self,
        scope: &AssistantScope,
        server: McpServerId,
        remote: Remote<'_>,
        new: impl FnOnce() -> ToolDraft,
    ) -> Result<SyncChange> {
        let Remote {
            name: remote_name,
            description,
            input_schema,
            fingerprint,
        } = remote;
        let existing = self
            .list(scope)
            .await?
            .into_iter()
            .find(|t| matches!(&t.kind, ToolKind::Mcp { server: s, remote_name: r, .. } if *s == server && r == remote_name));
        let Some(tool) = existing else {
            self.create(scope, &new()).await?;
            return Ok(SyncChange::Added);
        };
        let ToolKind::Mcp {
            fingerprint: reviewed,
            pending,
            ..
        } = &tool.kind
        else {
            return Ok(SyncChange::Unchanged);
        };
        if reviewed == fingerprint && pending.is_none() {
            return Ok(SyncChange::Unchanged);
        }
        if pending.as_deref() == Some(fingerprint) {
            return Ok(SyncChange::Changed);
        }
        // Back to what was reviewed: nothing to review any more (it stays as an admin left it,
        // disabled since the change).
        let pending = (reviewed != fingerprint).then(|| fingerprint.to_string());
        sqlx::query(
            "UPDATE tools SET enabled = 0, pending_fingerprint = $1, description = $2, \
             input_schema = $3, updated_at = $4 WHERE id = $5 AND assistant_id = $6",
        )
        .bind(pending.as_deref())
        .bind(description)
        .bind(json_text(input_schema)?)
        .bind(now_ms())
        .bind(tool.id.to_string())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await?;
        Ok(if pending.is_some() {
            SyncChange::Changed
        } else {
            SyncChange::Unchanged
        })
    }

    /// Removes the server's tools it no longer offers; their names.
    pub async fn remove_missing(
        &self,
        scope: &AssistantScope,
        server: McpServerId,
        offered: &[String],
    ) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for t in self.list(scope).await? {
            if let ToolKind::Mcp {
                server: s,
                remote_name,
                ..
            } = &t.kind
            {
                if *s == server && !offered.contains(remote_name) {
                    self.delete(scope, t.id).await?;
                    removed.push(t.name);
                }
            }
        }
        Ok(removed)
    }

    /// Issues a new endpoint token row, revoking every earlier one (one live token).
    pub async fn new_endpoint(
        &self,
        scope: &AssistantScope,
        expires_at: i64,
    ) -> Result<McpEndpoint> {
        let e = McpEndpoint {
            id: McpServerId::new(),
            assistant_id: scope.assistant_id(),
            expires_at,
            revoked_at: None,
            created_by: scope.principal().to_string(),
            created_at: now_ms(),
        };
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query(
            "UPDATE mcp_endpoints SET revoked_at = $1 WHERE assistant_id = $2 AND revoked_at IS NULL",
        )
        .bind(e.created_at)
        .bind(scope.assistant_id().to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO mcp_endpoints (id, assistant_id, expires_at, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.id.to_string())
        .bind(scope.assistant_id().to_string())
        .bind(e.expires_at)
        .bind(&e.created_by)
        .bind(e.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(e)
    }

    /// The assistant's live endpoint token row, if any.
    pub async fn live_endpoint(&self, scope: &AssistantScope) -> Result<Option<McpEndpoint>> {
        let r = sqlx::query(
            "SELECT id, assistant_id, expires_at, revoked_at, created_by, created_at FROM mcp_endpoints \
             WHERE assistant_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(scope.assistant_id().to_string())
        .bind(now_ms())
        .fetch_optional(self.pool)
        .await?;
        r.as_ref().map(mcp_endpoint).transpose()
    }

    /// Revokes every token of the assistant's endpoint; how many were live.
    pub async fn revoke_endpoints(&self, scope: &AssistantScope) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE mcp_endpoints SET revoked_at = $1 WHERE assistant_id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The assistant's egress settings (empty lists when never set).
    pub async fn egress(&self, scope: &AssistantScope) -> Result<Egress> {
        let r = sqlx::query(
            "SELECT allowed_hosts, private_hosts FROM assistant_egress WHERE assistant_id = $1",
        )
        .bind(scope.assistant_id().to_string())
        .fetch_optional(self.pool)
        .await?;
        let Some(r) = r else {
            return Ok(Egress::default());
        };
        let allowed: String = r.try_get("allowed_hosts")?;
        let private: String = r.try_get("private_hosts")?;
        Ok(Egress {
            allowed_hosts: serde_json::from_str(&allowed)
                .map_err(|_| StoreError::Corrupt("assistant_egress.allowed_hosts".into()))?,
            private_hosts: serde_json::from_str(&private)
                .map_err(|_| StoreError::Corrupt("assistant_egress.private_hosts".into()))?,
        })
    }

    pub async fn set_egress(&self, scope: &AssistantScope, egress: &Egress) -> Result<()> {
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query("DELETE FROM assistant_egress WHERE assistant_id = $1")
            .bind(scope.assistant_id().to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO assistant_egress (assistant_id, allowed_hosts, private_hosts, updated_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(scope.assistant_id().to_string())
        .bind(json_text(&egress.allowed_hosts)?)
        .bind(json_text(&egress.private_hosts)?)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what became of a proposed call.
    pub async fn record_call(&self, scope: &AssistantScope, call: &CallRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO tool_calls (id, assistant_id, conversation_id, tool_id, name, \
             arguments_sha256, arguments_bytes, outcome, reason, result_sha256, result_bytes, \
             truncated, duration_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(call.id.to_string())
        .bind(scope.assistant_id().to_string())
        .bind(call.conversation_id.map(|c| c.to_string()))
        .bind(call.tool_id.map(|t| t.to_string()))
        .bind(&call.name)
        .bind(&call.arguments_sha256)
        .bind(call.arguments_bytes)
        .bind(&call.outcome)
        .bind(call.reason.as_deref())
        .bind(call.result_sha256.as_deref())
        .bind(call.result_bytes)
        .bind(i64::from(call.truncated))
        .bind(call.duration_ms)
        .bind(call.created_at)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// The calls proposed in one conversation, oldest first.
    pub async fn calls(
        &self,
        scope: &AssistantScope,
        conversation: ConversationId,
    ) -> Result<Vec<CallRecord>> {
        let rows = sqlx::query(
            "SELECT id, conversation_id, tool_id, name, arguments_sha256, arguments_bytes, outcome, \
             reason, result_sha256, result_bytes, truncated, duration_ms, created_at FROM tool_calls \
             WHERE assistant_id = $1 AND conversation_id = $2 ORDER BY created_at, id",
        )
        .bind(scope.assistant_id().to_string())
        .bind(conversation.to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let tool_id: Option<String> = r.try_get("tool_id")?;
                Ok(CallRecord {
                    id: row::id(r, "id")?,
                    conversation_id: Some(conversation),
                    tool_id: tool_id
                        .map(|t| t.parse())
                        .transpose()
                        .map_err(|_| StoreError::Corrupt("tool_calls.tool_id".into()))?,
                    name: r.try_get("name")?,
                    arguments_sha256: r.try_get("arguments_sha256")?,
                    arguments_bytes: r.try_get("arguments_bytes")?,
                    outcome: r.try_get("outcome")?,
                    reason: r.try_get("reason")?,
                    result_sha256: r.try_get("result_sha256")?,
                    result_bytes: r.try_get("result_bytes")?,
                    truncated: r.try_get::<i64, _>("truncated")? != 0,
                    duration_ms: r.try_get("duration_ms")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Asks for a person's decision on a call, open until `expires_at`.
    pub async fn request_approval(
        &self,
        scope: &AssistantScope,
        tool: &Tool,
        conversation: Option<ConversationId>,
        arguments: &str,
        expires_at: i64,
    ) -> Result<ApprovalRequest> {
        let req = ApprovalRequest {
            id: ToolApprovalId::new(),
            tool_id: tool.id,
            conversation_id: conversation,
            tool_name: tool.name.clone(),
            arguments: arguments.to_string(),
            requested_by: scope.principal().to_string(),
            status: ApprovalStatus::Pending,
            decided_by: None,
            decided_at: None,
            expires_at,
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO tool_approvals (id, assistant_id, tool_id, conversation_id, tool_name, \
             arguments, requested_by, status, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(req.id.to_string())
        .bind(scope.assistant_id().to_string())
        .bind(req.tool_id.to_string())
        .bind(req.conversation_id.map(|c| c.to_string()))
        .bind(&req.tool_name)
        .bind(&req.arguments)
        .bind(&req.requested_by)
        .bind(req.status.as_str())
        .bind(req.expires_at)
        .bind(req.created_at)
        .execute(self.pool)
        .await?;
        Ok(req)
    }

    /// The assistant's approval requests, newest first; `pending_only` hides decided ones.
    pub async fn approvals(
        &self,
        scope: &AssistantScope,
        pending_only: bool,
    ) -> Result<Vec<ApprovalRequest>> {
        let filter = if pending_only {
            " AND status = 'pending'"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM tool_approvals WHERE assistant_id = $1{filter} \
             ORDER BY created_at DESC, id LIMIT 500"
        );
        let rows = sqlx::query(&sql)
            .bind(scope.assistant_id().to_string())
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(approval_request).collect()
    }

    pub async fn approval(
        &self,
        scope: &AssistantScope,
        id: ToolApprovalId,
    ) -> Result<ApprovalRequest> {
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM tool_approvals WHERE id = $1 AND assistant_id = $2"
        );
        let r = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .fetch_optional(self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        approval_request(&r)
    }

    /// Decides a pending, unexpired request once: `Conflict` when it was already decided
    /// or has expired (the decision that counts is the first one).
    pub async fn decide(
        &self,
        scope: &AssistantScope,
        id: ToolApprovalId,
        approve: bool,
    ) -> Result<ApprovalRequest> {
        let status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE tool_approvals SET status = $1, decided_by = $2, decided_at = $3 \
             WHERE id = $4 AND assistant_id = $5 AND status = 'pending' AND expires_at > $6",
        )
        .bind(status.as_str())
        .bind(scope.principal().to_string())
        .bind(now)
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .bind(now)
        .execute(self.pool)
        .await?;
        if done.rows_affected() == 0 {
            // Not found at all, or found and no longer pending: tell the two apart.
            self.approval(scope, id).await?;
            return Err(StoreError::Conflict(
                "this request was already decided or has expired".into(),
            ));
        }
        self.approval(scope, id).await
    }

    /// Marks a still-pending request expired (the conversation stopped waiting); returns
    /// the status it ends with, which is a decision if one landed first.
    pub async fn expire(
        &self,
        scope: &AssistantScope,
        id: ToolApprovalId,
    ) -> Result<ApprovalStatus> {
        sqlx::query(
            "UPDATE tool_approvals SET status = 'expired' WHERE id = $1 AND assistant_id = $2 \
             AND status = 'pending'",
        )
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await?;
        Ok(self.approval(scope, id).await?.status)
    }
}
