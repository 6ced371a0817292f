//! bastion's MCP client: tools offered by a Model Context Protocol server, over Streamable
//! HTTP or a child process's stdio. The protocol itself is rmcp's (the official Rust SDK);
//! this module adds what bastion needs around it:
//!
//! - an HTTP server is reached only through the egress guard: its URL is [`egress::check`]ed
//!   and the transport's client is [`egress::pinned_client`] (no rebinding, no redirects, no
//!   proxy);
//! - a stdio server starts with an empty environment (PATH and the caller's pairs only), so
//!   bastion's own secrets never reach it;
//! - everything is bounded: the handshake, each request, the tool list, the result text;
//! - each tool gets a [`fingerprint`], so a server that changes a tool after an admin
//!   reviewed it (a "rug pull") is noticed;
//! - errors never show the server's credential or its URL's query string.
//!
//! What a server may ask of bastion is refused: no sampling, no elicitation, no roots (rmcp's
//! default client handler), because a tool server must not spend the tenant's model budget
//! or talk to the user behind the assistant's back.

use std::borrow::Cow;
use std::fmt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    ClientRequest, ContentBlock, Implementation, ListToolsRequest, PaginatedRequestParams,
    ProtocolVersion, ResourceContents, ServerResult,
};
use rmcp::service::{PeerRequestOptions, RunningService, ServiceError};
use rmcp::transport::common::client_side_sse::ExponentialBackoff;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{
    DynamicTransportError, IntoTransport, StreamableHttpClientTransport, TokioChildProcess,
};
use rmcp::{RoleClient, ServiceExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::ChildStderr;
use tokio::time::{timeout_at, Instant};
use url::Url;

use crate::boundary::{sha256_hex, truncate_utf8};

use crate::egress::{self, ClientOptions, EgressError, EgressPolicy, Resolve};
/// The JSON-RPC messages of MCP as bastion (the client) sends and receives them, for a
/// channel handed to [`attach`].
pub use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};

/// Where an MCP server is.
#[derive(Clone)]
pub enum McpTarget {
    /// Streamable HTTP at `url`, optionally with this server's own bearer token (from
    /// bastion's vault; never the end user's bastion credential).
    Http {
        url: Url,
        bearer: Option<SecretString>,
    },
    /// A program spawned directly (no shell), speaking MCP on its stdin/stdout. Which
    /// programs may run is the caller's allowlist; `env` values may be secrets for this
    /// server and are added after PATH.
    Stdio {
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
}

// By hand, so that neither a credential, a query string nor an env value is ever printed.
impl fmt::Debug for McpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McpTarget::Http { url, bearer } => f
                .debug_struct("Http")
                .field("url", &redacted_url(url))
                .field("bearer", &bearer.as_ref().map(|_| "[redacted]"))
                .finish(),
            McpTarget::Stdio { program, args, env } => f
                .debug_struct("Stdio")
                .field("program", program)
                .field("args", args)
                .field("env", &env.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .finish(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct McpLimits {
    /// For the whole connection: TCP and TLS, or spawning the program, and the initialize
    /// handshake.
    pub connect_timeout: Duration,
    /// The longest any one request may take (a tool call, or listing all tools); a
    /// `call_tool` timeout above it is lowered to it.
    pub call_timeout: Duration,
    /// Result text kept at most, in bytes.
    pub max_result_bytes: usize,
    /// Tools a server may offer at most; more is an error, not a silent cut, so a tool is
    /// never quietly missing.
    pub max_tools: usize,
}

impl Default for McpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(60),
            max_result_bytes: 256 * 1024,
            max_tools: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error(transparent)]
    Egress(#[from] EgressError),
    #[error("could not talk to the MCP server: {0}")]
    Connect(String),
    #[error("the MCP server broke the protocol: {0}")]
    Protocol(String),
    #[error("the MCP server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the MCP server offers more than {0} tools")]
    TooManyTools(usize),
    #[error("the MCP server refused the call: {0}")]
    ToolError(String),
}

/// A tool as the server describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteTool {
    pub name: String,
    /// Empty when the server gives none.
    pub description: String,
    /// The JSON Schema of the arguments (an object).
    pub input_schema: Value,
    /// [`fingerprint`] of the three above.
    pub fingerprint: String,
}

/// What a tool call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolOutput {
    /// The text parts joined by newlines, other parts described (`[image: image/png, 68
    /// bytes]`), cut to `max_result_bytes` on a character boundary.
    pub text: String,
    /// The tool reported a failure (its text says what); the call itself worked.
    pub is_error: bool,
    pub truncated: bool,
    /// Size of the whole text before the cut.
    pub bytes: usize,
}

/// SHA-256 (hex) of a tool's name, description and input schema, serialized canonically
/// (object keys sorted, no whitespace), so that it changes exactly when what the model is
/// shown changes: an admin approves a fingerprint, and a server that later rewrites the
/// description or widens the schema no longer matches it.
pub fn fingerprint(name: &str, description: &str, input_schema: &Value) -> String {
    let mut out = String::new();
    // A versioned tag, so a future change of what is hashed cannot collide with this one.
    out.push_str("[\"bastion-mcp-tool/1\",");
    push_json_string(&mut out, name);
    out.push(',');
    push_json_string(&mut out, description);
    out.push(',');
    push_canonical(&mut out, input_schema);
    out.push(']');
    sha256_hex(out.as_bytes())
}

fn push_json_string(out: &mut String, s: &str) {
    // Display of a JSON value is its compact serialization and cannot fail.
    out.push_str(&Value::from(s).to_string());
}

/// Canonical JSON whatever serde_json's `preserve_order` feature says about map order.
fn push_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push(':');
                push_canonical(out, item);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_canonical(out, item);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// An initialized connection to one MCP server. Dropping it closes the connection (and
/// kills a stdio server); [`McpSession::close`] does so and waits.
pub struct McpSession {
    service: RunningService<RoleClient, ClientConfig>,
    limits: McpLimits,
    scrub: Scrubber,
}

impl fmt::Debug for McpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpSession")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Connects to an MCP server and completes the initialize handshake.
pub async fn connect(
    target: McpTarget,
    policy: &EgressPolicy,
    resolver: &dyn Resolve,
    limits: McpLimits,
) -> Result<McpSession, McpError> {
    let deadline = Instant::now() + limits.connect_timeout;
    match target {
        McpTarget::Http { url, bearer } => {
            let scrub = Scrubber::new(Some(&url), bearer.clone());
            let dest = timeout_at(deadline, egress::check(policy, resolver, &url))
                .await
                .map_err(|_| McpError::Timeout(limits.connect_timeout))??;
            let client = egress::pinned_client(
                &dest,
                ClientOptions {
                    connect_timeout: limits.connect_timeout,
                    // Every HTTP request is a backstop for a server that stalls a request
                    // rmcp's worker is waiting on; our own deadlines are shorter.
                    timeout: limits.call_timeout + limits.connect_timeout,
                },
            )?;
            let mut uri = dest.url;
            uri.set_fragment(None);
            let mut config = StreamableHttpClientTransportConfig::with_uri(uri.as_str());
            // rmcp's default retries a dropped event stream forever. A server that ends an
            // event stream on purpose (SEP-1699 polling) names its own `retry` delay, which
            // rmcp honours; this bounds only how often a failing reconnect is tried.
            let mut backoff = ExponentialBackoff::default();
            backoff.max_times = Some(3);
            backoff.base_duration = Duration::from_secs(1);
            backoff.max_delay = Some(limits.call_timeout);
            config.retry_config = Arc::new(backoff);
            if let Some(bearer) = &bearer {
                config = config.auth_header(bearer.expose_secret());
            }
            let transport = StreamableHttpClientTransport::with_client(client, config);
            initialize(transport, deadline, limits, scrub).await
        }
        McpTarget::Stdio { program, args, env } => {
            let scrub = Scrubber::new(None, None);
            let mut command = tokio::process::Command::new(&program);
            command.args(&args).env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                command.env("PATH", path);
            }
            command.envs(env);
            let mut command = CommandWrap::from(command);
            // Its own process group, so that killing it also kills what it started (an
            // `npx` wrapper's node, say); killed when the session is dropped.
            command.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
            let (transport, stderr) = TokioChildProcess::builder(command)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| McpError::Connect(format!("cannot start {program:?}: {e}")))?;
            if let Some(stderr) = stderr {
                forward_stderr(program.clone(), stderr);
            }
            initialize(transport, deadline, limits, scrub).await
        }
    }
}

/// Starts a session over a channel that is already open: an MCP server that attached itself
/// to bastion (an assistant's MCP endpoint, over a WebSocket) and sends and receives JSON-RPC
/// messages through `sink` and `stream`. bastion is the client: it initializes the session
/// and asks for tools, exactly as over HTTP.
pub async fn attach<Si, St>(sink: Si, stream: St, limits: McpLimits) -> Result<McpSession, McpError>
where
    Si: futures::Sink<rmcp::model::ClientJsonRpcMessage> + Send + Unpin + 'static,
    Si::Error: std::error::Error + Send + Sync + 'static,
    St: futures::Stream<Item = rmcp::model::ServerJsonRpcMessage> + Send + Unpin + 'static,
{
    let deadline = Instant::now() + limits.connect_timeout;
    initialize((sink, stream), deadline, limits, Scrubber::new(None, None)).await
}

/// The initialize handshake, by `deadline`.
async fn initialize<T, E, A>(
    transport: T,
    deadline: Instant,
    limits: McpLimits,
    scrub: Scrubber,
) -> Result<McpSession, McpError>
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let service = timeout_at(deadline, client_info().serve(transport))
        .await
        .map_err(|_| McpError::Timeout(limits.connect_timeout))?
        .map_err(|e| initialize_error(&scrub, &e))?;
    Ok(McpSession {
        service,
        limits,
        scrub,
    })
}

/// What bastion tells a server about itself: no capabilities (no sampling, no roots, no
/// elicitation), and the newest protocol version that still has the initialize handshake
/// (rmcp's `LATEST` is a handshake-less revision that servers do not speak yet).
fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bastion", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// A stdio server's stderr goes to the debug log (an admin's only view of why it failed),
/// read in fixed chunks so a server cannot make bastion buffer an endless line.
fn forward_stderr(program: String, mut stderr: ChildStderr) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let chunk = String::from_utf8_lossy(&buf[..n]);
            tracing::debug!(server = %program, "MCP server stderr: {}", chunk.trim_end());
        }
    });
}

impl McpSession {
    /// Every tool the server offers, following its pagination; more than `max_tools` is
    /// [`McpError::TooManyTools`], and a name listed twice is a protocol error (which of the
    /// two would an admin have approved?).
    pub async fn list_tools(&self) -> Result<Vec<RemoteTool>, McpError> {
        let deadline = Instant::now() + self.limits.call_timeout;
        let max = self.limits.max_tools;
        let mut tools: Vec<RemoteTool> = Vec::new();
        let mut cursor = None;
        // Each useful page carries a tool; a server paging empty lists forever stops here.
        for _ in 0..=max {
            let request = ClientRequest::ListToolsRequest(ListToolsRequest::with_param(
                PaginatedRequestParams::default().with_cursor(cursor),
            ));
            let answer = self
                .request(request, deadline, self.limits.call_timeout)
                .await
                .map_err(|e| match e {
                    McpError::ToolError(m) => McpError::Protocol(format!("tools/list: {m}")),
                    other => other,
                })?;
            let ServerResult::ListToolsResult(page) = answer else {
                return Err(McpError::Protocol("tools/list got another answer".into()));
            };
            for tool in page.tools {
                if tools.len() == max {
                    return Err(McpError::TooManyTools(max));
                }
                if tools.iter().any(|t| t.name == tool.name) {
                    return Err(McpError::Protocol(format!(
                        "the tool {:?} is listed twice",
                        short(&tool.name)
                    )));
                }
                let description = tool.description.map(Cow::into_owned).unwrap_or_default();
                let input_schema = Value::Object(Arc::unwrap_or_clone(tool.input_schema));
                tools.push(RemoteTool {
                    fingerprint: fingerprint(&tool.name, &description, &input_schema),
                    name: tool.name.into_owned(),
                    description,
                    input_schema,
                });
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(tools),
            }
        }
        Err(McpError::Protocol(
            "tools/list never stopped paging".to_owned(),
        ))
    }

    /// Calls `name`. `timeout` is capped at the session's `call_timeout`; when it passes
    /// the server is told to cancel the request and [`McpError::Timeout`] is returned.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: serde_json::Map<String, Value>,
        timeout: Duration,
    ) -> Result<ToolOutput, McpError> {
        let timeout = timeout.min(self.limits.call_timeout);
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(
            CallToolRequestParams::new(name.to_owned()).with_arguments(arguments),
        ));
        let deadline = Instant::now() + timeout;
        match self.request(request, deadline, timeout).await? {
            ServerResult::CallToolResult(result) => {
                Ok(render(result, self.limits.max_result_bytes))
            }
            _ => Err(McpError::Protocol("tools/call got another answer".into())),
        }
    }

    /// Whether the connection is gone (the server exited or hung up).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }

    /// Ends the session: an HTTP session is deleted on the server, a stdio server is
    /// stopped. Bounded; whatever is left is dropped.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.service.cancel()).await;
    }

    /// Sends `request` and waits for its answer until `deadline` (a timeout reports
    /// `limit`). Past it, the cancellation goes to the server in the background, so the
    /// caller is not held up by a server that is also slow to take that.
    async fn request(
        &self,
        request: ClientRequest,
        deadline: Instant,
        limit: Duration,
    ) -> Result<ServerResult, McpError> {
        let timed_out = |_| McpError::Timeout(limit);
        let mut handle = timeout_at(
            deadline,
            self.service
                .peer()
                .send_cancellable_request(request, PeerRequestOptions::no_options()),
        )
        .await
        .map_err(timed_out)?
        .map_err(|e| self.service_error(e))?;
        match timeout_at(deadline, &mut handle.rx).await {
            Ok(Ok(answer)) => answer.map_err(|e| self.service_error(e)),
            Ok(Err(_)) => Err(McpError::Connect("the connection closed".to_owned())),
            Err(elapsed) => {
                tokio::spawn(async move {
                    let reason = Some("timed out".to_owned());
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), handle.cancel(reason)).await;
                });
                Err(timed_out(elapsed))
            }
        }
    }

    fn service_error(&self, e: ServiceError) -> McpError {
        match e {
            ServiceError::McpError(data) => McpError::ToolError(self.scrub.clean(&data.message)),
            ServiceError::Timeout { timeout } => McpError::Timeout(timeout),
            ServiceError::UnexpectedResponse => {
                McpError::Protocol("an answer of the wrong type".to_owned())
            }
            ServiceError::TransportSend(e) => {
                McpError::Connect(self.scrub.clean(&transport_error(&e)))
            }
            other => McpError::Connect(self.scrub.clean(&error_chain(&other))),
        }
    }
}

fn initialize_error(scrub: &Scrubber, e: &rmcp::service::ClientInitializeError) -> McpError {
    use rmcp::service::ClientInitializeError as E;
    match e {
        E::TransportError { error, context } => McpError::Connect(
            scrub.clean(&format!("{} (during: {context})", transport_error(error))),
        ),
        E::ExpectedInitResponse(_)
        | E::ExpectedInitResult(_)
        | E::ConflictInitResponseId(..)
        | E::UncorrelatedErrorResponse { .. }
        | E::NoCompatibleProtocolVersion { .. }
        | E::JsonRpcError(_) => McpError::Protocol(scrub.clean(&error_chain(e))),
        _ => McpError::Connect(scrub.clean(&error_chain(e))),
    }
}

/// What went wrong under rmcp's transport wrapper, whose own message names Rust types and
/// drops the cause (such as "connection refused").
fn transport_error(e: &DynamicTransportError) -> String {
    match e
        .error
        .downcast_ref::<StreamableHttpError<reqwest::Error>>()
    {
        Some(StreamableHttpError::Client(inner)) => error_chain(inner),
        Some(StreamableHttpError::AuthRequired(_)) => {
            "the server wants authorization (HTTP 401); is the credential right?".to_owned()
        }
        Some(StreamableHttpError::UnexpectedContentType(found)) => format!(
            "the answer is not MCP (content type {}); is this the MCP endpoint, and is the \
             credential right?",
            found
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "none".to_owned())
        ),
        _ => error_chain(e.error.as_ref()),
    }
}

/// An error and its causes, `outer: inner: root` (rmcp's top-level messages alone hide the
/// useful part, such as "connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Takes the server's URL (whose query may hold a key) and its credential out of error
/// text, and caps text that came from the server.
struct Scrubber {
    url: Option<(String, String)>,
    query: Option<String>,
    bearer: Option<SecretString>,
}

const MAX_ERROR_CHARS: usize = 1000;

impl Scrubber {
    fn new(url: Option<&Url>, bearer: Option<SecretString>) -> Self {
        Self {
            url: url.map(|u| (u.as_str().to_owned(), redacted_url(u))),
            query: url.and_then(|u| u.query()).map(|q| format!("?{q}")),
            bearer,
        }
    }

    fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        if let Some((full, redacted)) = &self.url {
            text = text.replace(full.as_str(), redacted);
        }
        if let Some(query) = self.query.as_deref().filter(|q| q.len() > 1) {
            text = text.replace(query, "?[redacted]");
        }
        if let Some(bearer) = &self.bearer {
            let secret = bearer.expose_secret();
            if !secret.is_empty() {
                text = text.replace(secret, "[redacted]");
            }
        }
        short(&text)
    }
}

/// `scheme://host:port/path`, without credentials, query or fragment.
fn redacted_url(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.query().is_some() {
        url.set_query(Some("[redacted]"));
    }
    url.set_fragment(None);
    url.to_string()
}

/// Server-supplied text for a message or a label: one line, at most [`MAX_ERROR_CHARS`].
fn short(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_CHARS)
        .collect();
    if text.chars().count() > MAX_ERROR_CHARS {
        out.push('…');
    }
    out
}

/// The result as text, built no further than the limit.
fn render(result: CallToolResult, max_bytes: usize) -> ToolOutput {
    let mut out = Capped::new(max_bytes);
    if result.content.is_empty() {
        // Structured content only: show it as the JSON it is.
        if let Some(structured) = &result.structured_content {
            out.push(&structured.to_string());
        }
    }
    for (i, part) in result.content.iter().enumerate() {
        if i > 0 {
            out.push("\n");
        }
        push_part(&mut out, part);
    }
    ToolOutput {
        text: out.text,
        is_error: result.is_error.unwrap_or(false),
        truncated: out.truncated,
        bytes: out.bytes,
    }
}

fn push_part(out: &mut Capped, part: &ContentBlock) {
    match part {
        ContentBlock::Text(text) => out.push(&text.text),
        ContentBlock::Image(image) => out.push(&format!(
            "[image: {}, {} bytes]",
            short(&image.mime_type),
            base64_decoded_len(&image.data)
        )),
        ContentBlock::Audio(audio) => out.push(&format!(
            "[audio: {}, {} bytes]",
            short(&audio.mime_type),
            base64_decoded_len(&audio.data)
        )),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents { uri, text, .. } => {
                out.push(&format!("[resource: {}]\n", short(uri)));
                out.push(text);
            }
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => out.push(&format!(
                "[resource: {}, {}, {} bytes]",
                short(uri),
                short(mime_type.as_deref().unwrap_or("unknown type")),
                base64_decoded_len(blob)
            )),
            _ => out.push("[resource of an unknown kind]"),
        },
        ContentBlock::ResourceLink(link) => out.push(&format!(
            "[resource link: {} <{}>]",
            short(&link.name),
            short(&link.uri)
        )),
        // A kind of content this rmcp does not know yet (the enum is non-exhaustive).
        _ => out.push("[content of an unknown type]"),
    }
}

/// The size of what base64 `data` encodes, without decoding it.
fn base64_decoded_len(data: &str) -> usize {
    let data = data.trim_end();
    let padding = data.bytes().rev().take_while(|&b| b == b'=').count().min(2);
    (data.len() / 4 * 3 + (data.len() % 4).saturating_sub(1)).saturating_sub(padding)
}

/// Text kept up to `max` bytes; past that, only counted.
struct Capped {
    text: String,
    max: usize,
    bytes: usize,
    truncated: bool,
}

impl Capped {
    fn new(max: usize) -> Self {
        Self {
            text: String::new(),
            max,
            bytes: 0,
            truncated: false,
        }
    }

    fn push(&mut self, s: &str) {
        self.bytes += s.len();
        if self.truncated {
            return;
        }
        let room = self.max.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            self.text.push_str(truncate_utf8(s, room));
            self.truncated = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> ContentBlock {
        ContentBlock::text(s)
    }

    fn result(content: Vec<ContentBlock>) -> CallToolResult {
        let mut result = CallToolResult::success(content);
        result.is_error = None;
        result
    }

    #[test]
    fn fingerprint_ignores_key_order_and_sees_every_change() {
        let a = json!({"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "number"}}});
        let b = json!({"properties": {"y": {"type": "number"}, "x": {"type": "string"}}, "type": "object"});
        let fp = fingerprint("t", "does t", &a);
        assert_eq!(fp, fingerprint("t", "does t", &b));
        assert_eq!(fp.len(), 64);
        assert_ne!(fp, fingerprint("t", "does t, and more", &a));
        assert_ne!(fp, fingerprint("u", "does t", &a));
        let wider = json!({"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "number"}}, "additionalProperties": true});
        assert_ne!(fp, fingerprint("t", "does t", &wider));
        // Field boundaries are unambiguous: moving text between fields changes the hash.
        assert_ne!(
            fingerprint("ab", "c", &json!({})),
            fingerprint("a", "bc", &json!({}))
        );
    }

    #[test]
    fn text_is_cut_on_a_char_boundary_and_counted_whole() {
        let out = render(result(vec![text("ééé"), text("tail")]), 5);
        assert_eq!(out.text, "éé");
        assert!(out.truncated);
        assert_eq!(out.bytes, 6 + 1 + 4);
        // Nothing after a cut is appended, even if it would fit.
        let out = render(result(vec![text("abcdef"), text("")]), 3);
        assert_eq!(out.text, "abc");
    }

    #[test]
    fn parts_are_joined_and_described() {
        let image = ContentBlock::image("aGVsbG8=", "image/png");
        let out = render(result(vec![text("a"), image, text("b")]), 1000);
        assert_eq!(out.text, "a\n[image: image/png, 5 bytes]\nb");
        assert!(!out.truncated);
        assert_eq!(out.bytes, out.text.len());
    }

    #[test]
    fn base64_lengths() {
        for raw in ["", "h", "he", "hel", "hell", "hello"] {
            let encoded = match raw {
                "" => "",
                "h" => "aA==",
                "he" => "aGU=",
                "hel" => "aGVs",
                "hell" => "aGVsbA==",
                _ => "aGVsbG8=",
            };
            assert_eq!(base64_decoded_len(encoded), raw.len(), "{raw}");
        }
    }

    #[test]
    fn errors_hide_the_query_and_the_credential() {
        let url = Url::parse("https://mcp.example/v1?key=hunter2#frag").unwrap();
        let scrub = Scrubber::new(Some(&url), Some(SecretString::from("tok-123")));
        let cleaned = scrub.clean(
            "error sending request for url (https://mcp.example/v1?key=hunter2#frag): \
             Bearer tok-123 ?key=hunter2",
        );
        assert!(!cleaned.contains("hunter2"), "{cleaned}");
        assert!(!cleaned.contains("tok-123"), "{cleaned}");
        assert!(
            cleaned.contains("https://mcp.example/v1?[redacted]"),
            "{cleaned}"
        );
        let target = McpTarget::Http {
            url,
            bearer: Some(SecretString::from("tok-123")),
        };
        let debug = format!("{target:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("tok-123"),
            "{debug}"
        );
        let stdio = McpTarget::Stdio {
            program: "srv".into(),
            args: vec![],
            env: vec![("API_KEY".into(), "sk-secret".into())],
        };
        assert!(!format!("{stdio:?}").contains("sk-secret"));
    }
}
