//! The tool boundary in a conversation. The model only proposes; bastion decides. A proposed
//! call runs only if the tool is in this caller's [`ToolBox`] (enabled, and allowed for the
//! caller's role or API key), its arguments satisfy the tool's JSON Schema, its rate limit
//! and the turn's call cap leave room, and — when its approval rule says so — a person with
//! `tools.approve` said yes before the request expired. The result goes back to the model
//! fenced as untrusted data, cut to the tool's size limit. Every proposal, refusal, decision
//! and result (hash and size, never content) is stored, audited and traced.

use super::turn::TurnEvent;
use crate::error::ApiResult;
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::Meta;
use crate::state::AppState;
use bastion_core::{AssistantId, ConversationId, ToolApprovalId, ToolCallId};
use bastion_runtime::{ChatMessage, ToolCall, ToolSpec};
use bastion_store::tools::{
    ApprovalStatus, CallOutcome, CallRecord, Egress, McpServer, Tool, ToolKind,
};
use bastion_store::AssistantScope;
use bastion_tools::boundary;
use bastion_tools::egress::{self, EgressPolicy, SystemResolver};
use bastion_tools::files::{AssistantFiles, FileLimits};
use bastion_tools::schema::ArgumentSchema;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

pub const FETCH_URL: &str = "fetch_url";

/// Inner timeouts run this much longer than the tool's own, which is enforced around the
/// whole call, so a slow tool ends as `timed_out` whichever layer notices first.
const GRACE: Duration = Duration::from_secs(1);

/// bastion's own tools: name, description and argument schema.
pub fn builtin(name: &str) -> Option<(String, Value)> {
    if name == FETCH_URL {
        return Some((
            "Fetch a public web page or JSON document over HTTP(S) and return its text."
                .to_string(),
            json!({
                "type": "object",
                "properties": {"url": {"type": "string", "maxLength": 2048, "description": "an http or https URL"}},
                "required": ["url"],
                "additionalProperties": false
            }),
        ));
    }
    bastion_tools::files::tool_specs()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, d, s)| (d.to_string(), s))
}

pub fn builtin_names() -> Vec<&'static str> {
    let mut names = vec![FETCH_URL];
    names.extend(
        bastion_tools::files::tool_specs()
            .into_iter()
            .map(|(n, _, _)| n),
    );
    names
}

/// One tool offered in a conversation, its schema compiled.
struct Offered {
    tool: Tool,
    schema: Arc<ArgumentSchema>,
}

/// An assistant's whole registry as loaded from the store, schemas compiled: cached per
/// assistant for `cache_ttl_secs` and dropped on this node whenever it changes
/// ([`ToolSets::forget`]), so a request of an assistant without tools costs no query.
pub struct ToolSet {
    tools: Vec<(Tool, Option<Arc<ArgumentSchema>>)>,
    egress: Egress,
    servers: Vec<McpServer>,
}

pub struct ToolSets {
    cache: moka::sync::Cache<AssistantId, Arc<ToolSet>>,
}

impl ToolSets {
    pub fn new(ttl: Duration) -> ToolSets {
        ToolSets {
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The registry changed: the next request reads it again.
    pub fn forget(&self, assistant: AssistantId) {
        self.cache.invalidate(&assistant);
    }

    async fn get(&self, state: &AppState, scope: &AssistantScope) -> ApiResult<Arc<ToolSet>> {
        if let Some(set) = self.cache.get(&scope.assistant_id()) {
            return Ok(set);
        }
        let repo = state.store.tools();
        let tools: Vec<(Tool, Option<Arc<ArgumentSchema>>)> = repo
            .list(scope)
            .await?
            .into_iter()
            .map(|tool| {
                let schema = match ArgumentSchema::compile(&tool.input_schema) {
                    Ok(s) => Some(Arc::new(s)),
                    // Checked when saved; a schema that no longer compiles keeps its tool away.
                    Err(e) => {
                        tracing::warn!(tool = %tool.id, error = %e, "tool schema unusable");
                        None
                    }
                };
                (tool, schema)
            })
            .collect();
        let (egress, servers) = if tools.is_empty() {
            (Egress::default(), Vec::new())
        } else {
            (repo.egress(scope).await?, repo.servers(scope).await?)
        };
        let set = Arc::new(ToolSet {
            tools,
            egress,
            servers,
        });
        self.cache.insert(scope.assistant_id(), set.clone());
        Ok(set)
    }
}

/// The tools one caller's conversation may use, and how many calls the turn has left.
pub struct ToolBox {
    offered: Vec<Offered>,
    egress: Egress,
    /// The assistant's MCP servers, when an offered tool is one's.
    servers: Vec<McpServer>,
    calls_left: u32,
}

/// Whether the caller of `scope` may trigger `tool`: a member through one of its roles, a
/// program through the API-key switch.
pub fn allowed_for(tool: &Tool, scope: &AssistantScope) -> bool {
    match scope.role_name() {
        Some(role) => tool.allowed_roles.iter().any(|r| r == role),
        None => tool.allow_api_keys,
    }
}

impl ToolBox {
    /// The enabled tools the caller may trigger. Tools the caller may not use are not even
    /// described to the model.
    pub async fn load(state: &AppState, scope: &AssistantScope) -> ApiResult<ToolBox> {
        let set = state.chat.tool_sets.get(state, scope).await?;
        let offered: Vec<Offered> = set
            .tools
            .iter()
            .filter(|(tool, _)| tool.enabled && allowed_for(tool, scope))
            .filter_map(|(tool, schema)| {
                Some(Offered {
                    tool: tool.clone(),
                    schema: schema.clone()?,
                })
            })
            .collect();
        let (egress, servers) = if offered.is_empty() {
            (Egress::default(), Vec::new())
        } else {
            (set.egress.clone(), set.servers.clone())
        };
        Ok(ToolBox {
            offered,
            egress,
            servers,
            calls_left: state.settings.tool_calls_per_turn,
        })
    }

    /// Whether the model gets no tools at all.
    pub fn is_empty(&self) -> bool {
        self.offered.is_empty()
    }

    /// What the model is told about: nothing once the turn's calls are used up, so it has to
    /// answer in words.
    pub fn specs(&self) -> Vec<ToolSpec> {
        if self.calls_left == 0 {
            return Vec::new();
        }
        self.offered
            .iter()
            .map(|o| ToolSpec {
                name: o.tool.name.clone(),
                description: o.tool.description.clone(),
                parameters: o.tool.input_schema.clone(),
            })
            .collect()
    }
}

/// Conversations waiting on approval requests, woken when a decision is taken on this node
/// (a decision taken on another node is found by polling).
#[derive(Default)]
pub struct ApprovalWaiters {
    waiting: Mutex<HashMap<ToolApprovalId, Arc<Notify>>>,
}

impl ApprovalWaiters {
    fn register(&self, id: ToolApprovalId) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(id, n.clone());
        }
        n
    }
    fn forget(&self, id: ToolApprovalId) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(&id);
        }
    }
    /// A decision on `id` was stored.
    pub fn decided(&self, id: ToolApprovalId) {
        if let Some(n) = self.waiting.lock().ok().and_then(|w| w.get(&id).cloned()) {
            n.notify_one();
        }
    }
}

/// Who is calling, in which conversation: what the boundary needs besides the tool box.
pub struct CallSite<'a> {
    pub state: &'a AppState,
    pub scope: &'a AssistantScope,
    pub meta: &'a Meta,
    pub conversation: Option<ConversationId>,
    pub events: &'a mpsc::Sender<TurnEvent>,
}

/// What a client is told about a tool call while the turn runs.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ToolEvent {
    pub call_id: String,
    pub tool: String,
    /// `awaiting_approval`, then `ok`, `refused`, `denied`, `failed` or `timed_out`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

/// How a call ended, before it is recorded.
struct Ended {
    outcome: CallOutcome,
    /// Why it was refused or failed (told to the model and kept in the record).
    reason: Option<String>,
    /// What the model reads.
    message: String,
    result: Option<boundary::Bounded>,
}

impl Ended {
    fn not_run(outcome: CallOutcome, tool: &str, reason: String) -> Ended {
        Ended {
            outcome,
            message: boundary::notice(tool, &reason),
            reason: Some(reason),
            result: None,
        }
    }
}

/// Handles one proposed call and returns the message that answers it for the model.
pub async fn handle(site: &CallSite<'_>, tools: &mut ToolBox, call: &ToolCall) -> ChatMessage {
    // An OpenTelemetry GenAI tool-execution span, exported with the model calls' spans.
    let span = tracing::info_span!(
        target: "bastion::tools",
        "execute_tool",
        otel.name = %format!("execute_tool {}", call.name),
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %call.name,
        gen_ai.tool.call.id = %call.id,
        bastion.tool.outcome = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    handle_in_span(site, tools, call, &span)
        .instrument(span.clone())
        .await
}

async fn handle_in_span(
    site: &CallSite<'_>,
    tools: &mut ToolBox,
    call: &ToolCall,
    span: &tracing::Span,
) -> ChatMessage {
    let started = Instant::now();
    let offered = tools.offered.iter().find(|o| o.tool.name == call.name);
    let ended = match offered {
        // Unknown, disabled and not-allowed tools look the same to the model.
        None => Ended::not_run(
            CallOutcome::Refused,
            &call.name,
            "no tool of that name is available in this conversation".into(),
        ),
        Some(_) if tools.calls_left == 0 => Ended::not_run(
            CallOutcome::Refused,
            &call.name,
            "the tool-call limit of this turn is reached; answer without tools".into(),
        ),
        Some(o) => {
            tools.calls_left -= 1;
            decide_and_run(site, o, tools, call).await
        }
    };
    let tool = offered.map(|o| &o.tool);
    span.record("bastion.tool.outcome", ended.outcome.as_str());
    if ended.outcome != CallOutcome::Ok {
        span.record("error.type", ended.outcome.as_str());
    }
    record(site, tool, call, &ended, started.elapsed()).await;
    let _ = site
        .events
        .send(TurnEvent::Tool(ToolEvent {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            status: ended.outcome.as_str().to_string(),
            approval_id: None,
        }))
        .await;
    ChatMessage::tool_result(call.id.clone(), ended.message)
}

async fn decide_and_run(
    site: &CallSite<'_>,
    o: &Offered,
    tools: &ToolBox,
    call: &ToolCall,
) -> Ended {
    let tool = &o.tool;
    let arguments = match o.schema.check(&call.arguments) {
        Ok(a) => a,
        Err(e) => return Ended::not_run(CallOutcome::Refused, &tool.name, e.to_string()),
    };
    let limit = u32::try_from(tool.calls_per_minute.max(1)).unwrap_or(u32::MAX);
    if site
        .state
        .rates
        .hit(&format!("tool:{}", tool.id), limit)
        .await
        .is_err()
    {
        return Ended::not_run(
            CallOutcome::Refused,
            &tool.name,
            format!("the tool's limit of {limit} calls a minute is reached"),
        );
    }
    if tool.approval.requires(tool.risk) {
        if let Err(reason) = wait_for_approval(site, tool, call).await {
            return Ended::not_run(CallOutcome::Denied, &tool.name, reason);
        }
    }
    let timeout = Duration::from_millis(u64::try_from(tool.timeout_ms.max(1)).unwrap_or(1));
    let max = usize::try_from(tool.max_result_bytes.max(1)).unwrap_or(usize::MAX);
    let run = execute(site, tool, tools, &arguments, timeout, max);
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Ended::not_run(
            CallOutcome::TimedOut,
            &tool.name,
            format!("no result within {} ms", timeout.as_millis()),
        ),
        Ok(Err(reason)) => Ended::not_run(CallOutcome::Failed, &tool.name, reason),
        Ok(Ok(text)) => {
            let bounded = boundary::fence(&tool.name, &text, max);
            Ended {
                outcome: CallOutcome::Ok,
                reason: None,
                message: bounded.text.clone(),
                result: Some(bounded),
            }
        }
    }
}

/// Asks for approval and waits for the decision; `Err` says why the call does not run.
async fn wait_for_approval(
    site: &CallSite<'_>,
    tool: &Tool,
    call: &ToolCall,
) -> Result<(), String> {
    let state = site.state;
    let repo = state.store.tools();
    let wait = Duration::from_secs(state.settings.tool_approval_timeout_secs);
    let expires_at = bastion_store::now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    let request = repo
        .request_approval(
            site.scope,
            tool,
            site.conversation,
            &call.arguments,
            expires_at,
        )
        .await
        .map_err(|e| format!("the approval request could not be stored: {e}"))?;
    let woken = state.chat.approvals.register(request.id);
    state
        .audit(events::event(
            site.scope.workspace_id(),
            events::actor(site.scope.principal()),
            site.meta,
            "tool.approval.request",
            site.scope.assistant_id(),
            SUCCESS,
            json!({"tool": tool.name, "tool_id": tool.id.to_string(), "approval": request.id.to_string(),
                   "call_id": call.id, "arguments_sha256": boundary::sha256_hex(call.arguments.as_bytes())}),
        ))
        .await;
    let _ = site
        .events
        .send(TurnEvent::Tool(ToolEvent {
            call_id: call.id.clone(),
            tool: tool.name.clone(),
            status: "awaiting_approval".into(),
            approval_id: Some(request.id.to_string()),
        }))
        .await;
    let deadline = tokio::time::Instant::now() + wait;
    let status = loop {
        let current = repo
            .approval(site.scope, request.id)
            .await
            .map(|r| r.status)
            .unwrap_or(ApprovalStatus::Pending);
        if current != ApprovalStatus::Pending {
            break current;
        }
        if tokio::time::Instant::now() >= deadline {
            // A decision that lands while we give up still counts: `expire` returns it.
            break repo
                .expire(site.scope, request.id)
                .await
                .unwrap_or(ApprovalStatus::Expired);
        }
        // Woken by a decision on this node; polled for one taken on another.
        let next = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
        let _ = tokio::time::timeout_at(next, woken.notified()).await;
    };
    state.chat.approvals.forget(request.id);
    match status {
        ApprovalStatus::Approved => Ok(()),
        ApprovalStatus::Denied => Err("a person denied this call".into()),
        _ => Err("nobody approved this call in time".into()),
    }
}

/// Runs the tool; `Err` is a reason the model may read (never a secret or a host path).
async fn execute(
    site: &CallSite<'_>,
    tool: &Tool,
    tools: &ToolBox,
    arguments: &Value,
    timeout: Duration,
    max: usize,
) -> Result<String, String> {
    let egress = &tools.egress;
    let policy = EgressPolicy {
        allowed_private_hosts: egress.private_hosts.clone(),
    };
    let text_arg = |name: &str| arguments.get(name).and_then(Value::as_str).unwrap_or("");
    match &tool.kind {
        ToolKind::Builtin(name) if name == FETCH_URL => {
            let limits = bastion_tools::fetch::FetchLimits {
                max_bytes: max,
                // The tool's timeout is enforced around the call, as for every tool.
                timeout: timeout + GRACE,
                ..Default::default()
            };
            let f = bastion_tools::fetch::fetch(&policy, &SystemResolver, text_arg("url"), &limits)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "status: {}\nurl: {}\ncontent-type: {}\n\n{}",
                f.status, f.final_url, f.content_type, f.body
            ))
        }
        ToolKind::Builtin(name) => {
            let root = site
                .state
                .settings
                .data_dir
                .join("assistant-files")
                .join(site.scope.assistant_id().to_string());
            let limits = FileLimits {
                max_read_bytes: max,
                ..FileLimits::default()
            };
            let files = AssistantFiles::open(&root, limits).map_err(|e| e.to_string())?;
            let path = text_arg("path");
            match name.as_str() {
                bastion_tools::files::READ_FILE => {
                    let r = files.read(path).await.map_err(|e| e.to_string())?;
                    Ok(r.content)
                }
                bastion_tools::files::WRITE_FILE => {
                    let w = files
                        .write(path, text_arg("content"))
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(format!("wrote {} bytes to {path}", w.size))
                }
                bastion_tools::files::LIST_FILES => {
                    let l = files.list(path).await.map_err(|e| e.to_string())?;
                    serde_json::to_string(&l).map_err(|e| e.to_string())
                }
                other => Err(format!("{other:?} is not a built-in tool")),
            }
        }
        ToolKind::Http { endpoint } => {
            call_http(endpoint, egress, &policy, arguments, timeout, max).await
        }
        ToolKind::Mcp {
            server,
            remote_name,
            fingerprint,
            ..
        } => {
            let Some(server) = tools.servers.iter().find(|s| s.id == *server) else {
                return Err("the tool's MCP server is gone".into());
            };
            let (text, _) = super::mcp::call(
                site.state,
                site.scope,
                server,
                egress,
                (remote_name, fingerprint),
                arguments,
                timeout,
            )
            .await?;
            Ok(text)
        }
    }
}

/// POSTs the arguments to an HTTP tool: only to a host on the assistant's allowlist, through
/// the egress guard, pinned to the checked addresses, and with no credentials of the caller.
async fn call_http(
    endpoint: &str,
    egress: &Egress,
    policy: &EgressPolicy,
    arguments: &Value,
    timeout: Duration,
    max: usize,
) -> Result<String, String> {
    let url =
        url::Url::parse(endpoint).map_err(|_| "the tool's endpoint is not a URL".to_string())?;
    if !endpoint_allowed(&url, egress) {
        return Err("the tool's endpoint is not on the assistant's allowlist".into());
    }
    let dest = egress::check(policy, &SystemResolver, &url)
        .await
        .map_err(|e| e.to_string())?;
    let client = egress::pinned_client(
        &dest,
        egress::ClientOptions {
            connect_timeout: timeout,
            timeout: timeout + GRACE,
        },
    )
    .map_err(|e| e.to_string())?;
    let response = client
        .post(dest.url.clone())
        .json(arguments)
        .send()
        .await
        .map_err(|e| format!("the endpoint could not be reached: {}", e.without_url()))?;
    let status = response.status();
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    // One byte past the limit is enough to know the result was cut.
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| format!("the answer broke off: {}", e.without_url()))?;
        body.extend_from_slice(&chunk);
        if body.len() > max {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(format!("the endpoint answered {}", status.as_u16()));
    }
    Ok(text)
}

/// Whether an endpoint's host is on the assistant's allowlist (exact, case-insensitive).
pub fn endpoint_allowed(url: &url::Url, egress: &Egress) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    egress.allowed_hosts.iter().any(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .eq_ignore_ascii_case(host)
    })
}

/// Stores, audits, counts and traces what became of a call.
async fn record(
    site: &CallSite<'_>,
    tool: Option<&Tool>,
    call: &ToolCall,
    ended: &Ended,
    took: Duration,
) {
    let args_hash = boundary::sha256_hex(call.arguments.as_bytes());
    let row = CallRecord {
        id: ToolCallId::new(),
        conversation_id: site.conversation,
        tool_id: tool.map(|t| t.id),
        name: call.name.chars().take(200).collect(),
        arguments_sha256: args_hash.clone(),
        arguments_bytes: i64::try_from(call.arguments.len()).unwrap_or(i64::MAX),
        outcome: ended.outcome.as_str().to_string(),
        reason: ended.reason.clone(),
        result_sha256: ended.result.as_ref().map(|r| r.sha256.clone()),
        result_bytes: ended
            .result
            .as_ref()
            .map(|r| i64::try_from(r.bytes).unwrap_or(i64::MAX)),
        truncated: ended.result.as_ref().is_some_and(|r| r.truncated),
        duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
        created_at: bastion_store::now_ms(),
    };
    if let Err(e) = site.state.store.tools().record_call(site.scope, &row).await {
        tracing::error!(error = %e, "tool call record not stored");
    }
    metrics::counter!("bastion_tool_calls_total", "outcome" => ended.outcome.as_str()).increment(1);
    tracing::info!(
        target: "bastion::tools",
        tool = %row.name,
        call = %row.id,
        outcome = ended.outcome.as_str(),
        arguments_sha256 = %args_hash,
        result_bytes = row.result_bytes.unwrap_or(0),
        duration_ms = row.duration_ms,
        "tool call"
    );
    let outcome = if ended.outcome == CallOutcome::Ok {
        SUCCESS
    } else {
        FAILURE
    };
    site.state
        .audit(events::event(
            site.scope.workspace_id(),
            events::actor(site.scope.principal()),
            site.meta,
            "tool.call",
            site.scope.assistant_id(),
            outcome,
            json!({
                "tool": row.name, "tool_id": row.tool_id.map(|t| t.to_string()), "call": row.id.to_string(),
                "conversation": site.conversation.map(|c| c.to_string()), "outcome": row.outcome,
                "reason": row.reason, "arguments_sha256": row.arguments_sha256, "arguments_bytes": row.arguments_bytes,
                "result_sha256": row.result_sha256, "result_bytes": row.result_bytes, "truncated": row.truncated,
            }),
        ))
        .await;
}
