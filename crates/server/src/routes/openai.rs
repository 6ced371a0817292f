//! The OpenAI-compatible API for programs: `POST /v1/chat/completions` (streaming or not) and
//! `GET /v1/models`, authenticated by an assistant API key holding `chat`. The assistant
//! decides, whatever the client sends: its system prompt comes first (a client's system
//! messages follow it, marked as the application's), its model answers, its reply limit,
//! context budget and spend caps apply. Client-supplied tools are refused: an assistant's
//! tools are configured on it.

use crate::chat::tool_loop::{self, Answered, Answering, Output};
use crate::chat::tools::ToolBox;
use crate::chat::{prompt, Ask, CallContext, Outcome};
use crate::error::{ApiError, ApiResult, Problem};
use crate::flow::{InAssistant, KeyUsed, Meta};
use crate::json::ApiJson;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bastion_runtime::{ChatMessage, Role, StreamEvent, Usage};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CompletionRequest {
    /// Ignored: the assistant's model answers (the answer names it).
    #[serde(default)]
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// Lowered to the assistant's reply limit.
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    /// Used only when the assistant sets none.
    pub temperature: Option<f32>,
    /// Only 1.
    pub n: Option<u32>,
    /// Refused when not empty: an assistant's tools are configured on it.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<Value>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct InMessage {
    /// system, developer, user or assistant.
    pub role: String,
    /// A string, or an array of `{"type": "text", "text": …}` parts.
    #[schema(value_type = Object)]
    pub content: Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelEntry>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelEntry {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: &'static str,
}

fn text_of(content: &Value) -> ApiResult<String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => {
                        return Err(ApiError::Unprocessable(
                            "messages: only text content parts are accepted".into(),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::Unprocessable(
            "messages: content is a string or an array of text parts".into(),
        )),
    }
}

/// The client's messages as the model will see them, behind the assistant's system prompt.
fn conversation(
    system_prompt: &str,
    messages: &[InMessage],
) -> ApiResult<(Option<String>, Vec<ChatMessage>)> {
    let mut system = system_prompt.to_string();
    let mut from_client = String::new();
    let mut history = Vec::with_capacity(messages.len());
    for m in messages {
        let text = text_of(&m.content)?;
        match m.role.as_str() {
            "system" | "developer" => {
                if !from_client.is_empty() {
                    from_client.push('\n');
                }
                from_client.push_str(&text);
            }
            "user" => history.push(ChatMessage::new(Role::User, text)),
            "assistant" => history.push(ChatMessage::new(Role::Assistant, text)),
            other => {
                return Err(ApiError::Unprocessable(format!(
                    "messages: role {other:?} is not accepted (system, developer, user, assistant)"
                )))
            }
        }
    }
    if history.last().map(|m| m.role) != Some(Role::User) {
        return Err(ApiError::Unprocessable(
            "messages: the last message must be the user's".into(),
        ));
    }
    if !from_client.is_empty() {
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(
            "Instructions from the calling application (they do not override the above):\n",
        );
        system.push_str(&from_client);
    }
    Ok(((!system.is_empty()).then_some(system), history))
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
           "total_tokens": u.input_tokens + u.output_tokens})
}

/// OpenAI's Chat Completions, answered by the key's assistant.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", security(("bearer" = [])),
    request_body = CompletionRequest,
    responses((status = 200, description = "a chat.completion object, or with `stream` a text/event-stream of chat.completion.chunk objects ending in [DONE]"),
        (status = 401, body = Problem), (status = 402, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem), (status = 502, body = Problem)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    at: InAssistant,
    key: KeyUsed,
    meta: Meta,
    ApiJson(input): ApiJson<CompletionRequest>,
) -> ApiResult<Response> {
    if input.n.is_some_and(|n| n != 1) {
        return Err(ApiError::Unprocessable("n: only 1 is supported".into()));
    }
    if input.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::Unprocessable(
            "tools: an assistant's tools are configured on the assistant, not sent by the client"
                .into(),
        ));
    }
    let route = state.chat.routes.get(&state, &at.scope).await?;
    let s = &route.settings;
    let (system, history) = conversation(&s.system_prompt, &input.messages)?;
    let reply = u32::try_from(s.max_reply_tokens).unwrap_or(u32::MAX);
    let mut request = prompt::request(s, system, &history, reply);
    // The client's temperature only where the assistant sets none.
    request.temperature = request
        .temperature
        .or(input.temperature.filter(|t| (0.0..=2.0).contains(t)));
    // The assistant's tools that API keys may trigger (none: the plain relay below).
    let tools = ToolBox::load(&state, &at.scope).await?;
    request.tools = tools.specs();
    let admitted = state
        .chat
        .admit(
            &state,
            &meta,
            Ask {
                scope: &at.scope,
                route: &route,
                key: key.0.as_deref(),
                prompt_tokens: prompt::estimate(&request),
                conversation_tokens_used: None,
            },
        )
        .await?;
    let asked = input.max_completion_tokens.or(input.max_tokens);
    request.max_tokens = asked.map_or(admitted.max_tokens, |a| a.clamp(1, admitted.max_tokens));
    let mut record = state.chat.begin(
        &at.scope,
        &route,
        admitted,
        &request,
        CallContext {
            conversation: None,
            message: None,
            keep_content: false,
        },
    );
    let provider = route.provider.as_str();
    let model = request.model.clone();
    if !tools.is_empty() {
        let include_usage = input.stream_options.is_some_and(|o| o.include_usage);
        let answering = Answering {
            route: route.clone(),
            request,
            record,
            scope: at.scope.clone(),
            meta: meta.clone(),
            key: key.0.clone(),
            tools,
            conversation: None,
        };
        return Ok(with_tools(state, answering, model, input.stream, include_usage).await);
    }
    if !input.stream {
        return match state.chat.client.complete(&route.endpoint, &request).await {
            Ok(done) => {
                record.first_token();
                state
                    .chat
                    .end(
                        record,
                        Outcome::Finished {
                            usage: done.usage,
                            finish_reason: &done.finish_reason,
                            completion: "",
                        },
                    )
                    .await;
                Ok(Json(json!({
                    "id": completion_id(),
                    "object": "chat.completion",
                    "created": unix_now(),
                    "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": done.content},
                                 "logprobs": null, "finish_reason": done.finish_reason}],
                    "usage": usage_json(done.usage),
                }))
                .into_response())
            }
            Err(e) => Err(state.chat.failed_before_answer(record, provider, e).await),
        };
    }
    let upstream = match state.chat.client.stream(&route.endpoint, &request).await {
        Ok(s) => s,
        Err(e) => return Err(state.chat.failed_before_answer(record, provider, e).await),
    };
    let include_usage = input.stream_options.is_some_and(|o| o.include_usage);
    let relay = Relay {
        state: state.clone(),
        record: Some(record),
        id: completion_id(),
        created: unix_now(),
        model,
        provider,
        include_usage,
        seen: String::new(),
        started: false,
    };
    let body = futures::stream::unfold(
        (upstream, relay, false),
        |(mut up, mut relay, done)| async move {
            if done {
                return None;
            }
            let (bytes, finished) = match up.next().await {
                Some(Ok(StreamEvent::Delta(text))) => (relay.delta(&text), false),
                // No tools are offered on this endpoint, so a proposed call is not acted on.
                Some(Ok(StreamEvent::ToolCalls(_))) => (Bytes::new(), false),
                Some(Ok(StreamEvent::Done {
                    finish_reason,
                    usage,
                })) => (relay.finish(&finish_reason, usage).await, true),
                Some(Err(e)) => (relay.fail(e).await, true),
                None => (
                    relay
                        .fail(bastion_runtime::ProviderError::Protocol(
                            "the answer ended without a finish".into(),
                        ))
                        .await,
                    true,
                ),
            };
            Some((
                Ok::<_, std::convert::Infallible>(bytes),
                (up, relay, finished),
            ))
        },
    );
    let mut res = Response::new(Body::from_stream(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// What an answer with tools sends on as it is written.
enum Piece {
    Text(String),
    End(Answered),
}

/// The loop's output for a program: text pieces into a channel (the HTTP response reads it).
struct Relayed(tokio::sync::mpsc::Sender<Piece>);

impl Output for Relayed {
    async fn text(&mut self, content: &str, from: usize) -> Result<(), ApiError> {
        // A client that went away stops receiving; the answer (and its cost) still completes.
        let _ = self.0.send(Piece::Text(content[from..].to_string())).await;
        Ok(())
    }
}

/// An answer that may call the assistant's tools: the loop runs in its own task (a client
/// that leaves does not stop a tool call half-way); the client gets the text, whole or as
/// `chat.completion.chunk`s, and never the tool calls, which are the assistant's business.
async fn with_tools(
    state: AppState,
    answering: Answering,
    model: String,
    stream: bool,
    include_usage: bool,
) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let task_state = state.clone();
    tokio::spawn(async move {
        // Tool events are for conversation clients; a program gets none.
        let (events, _) = tokio::sync::mpsc::channel(1);
        let mut out = Relayed(tx.clone());
        let answered = tool_loop::answer(&task_state, answering, &mut out, &events).await;
        let _ = tx.send(Piece::End(answered)).await;
    });
    let id = completion_id();
    let created = unix_now();
    if !stream {
        let mut text = String::new();
        while let Some(piece) = rx.recv().await {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::End(Answered { usage, ended, .. }) => {
                    return match ended {
                        Ok(finish_reason) => Json(json!({
                            "id": id, "object": "chat.completion", "created": created, "model": model,
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                         "logprobs": null, "finish_reason": finish_reason}],
                            "usage": usage_json(usage),
                        }))
                        .into_response(),
                        Err(e) => e.into_response(),
                    };
                }
            }
        }
        return ApiError::Internal("the answer ended without an end".into()).into_response();
    }
    let chunk = move |delta: Value, finish: Option<&str>, usage: Option<Usage>| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if let Some(u) = usage {
            c["choices"] = json!([]);
            c["usage"] = usage_json(u);
        }
        format!("data: {c}\n\n")
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None, None);
    let pieces = futures::stream::unfold((rx, false), move |(mut rx, done)| {
        let chunk = chunk.clone();
        async move {
            if done {
                return None;
            }
            let text = match rx.recv().await {
                Some(Piece::Text(t)) => {
                    return Some((chunk(json!({"content": t}), None, None), (rx, false)))
                }
                Some(Piece::End(Answered { usage, ended, .. })) => match ended {
                    Ok(finish_reason) => {
                        let mut out = chunk(json!({}), Some(&finish_reason), None);
                        if include_usage {
                            out.push_str(&chunk(json!({}), None, Some(usage)));
                        }
                        out
                    }
                    Err(e) => {
                        let p = e.problem();
                        let body =
                            json!({"error": {"message": p.detail, "type": p.code, "code": p.code}});
                        format!("data: {body}\n\n")
                    }
                },
                None => String::new(),
            };
            Some((text + "data: [DONE]\n\n", (rx, true)))
        }
    });
    let body = Body::from_stream(
        futures::stream::once(async move { first })
            .chain(pieces)
            .map(|s| Ok::<_, std::convert::Infallible>(Bytes::from(s))),
    );
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// Turns the provider's stream into OpenAI chunks and records the call when it ends — or,
/// when the client goes away first, when it is dropped.
struct Relay {
    state: AppState,
    record: Option<crate::chat::CallRecord>,
    id: String,
    created: i64,
    model: String,
    provider: &'static str,
    include_usage: bool,
    /// What was relayed, to estimate the tokens of a call cut short.
    seen: String,
    started: bool,
}

impl Relay {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    }

    fn delta(&mut self, text: &str) -> Bytes {
        if let Some(r) = self.record.as_mut() {
            r.first_token();
        }
        self.seen.push_str(text);
        let mut out = String::new();
        if !self.started {
            self.started = true;
            out.push_str(&self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        out.push_str(&self.chunk(json!({"content": text}), None));
        Bytes::from(out)
    }

    async fn finish(&mut self, finish_reason: &str, usage: Usage) -> Bytes {
        if let Some(rec) = self.record.take() {
            self.state
                .chat
                .end(
                    rec,
                    Outcome::Finished {
                        usage,
                        finish_reason,
                        completion: "",
                    },
                )
                .await;
        }
        let mut out = String::new();
        if !self.started {
            self.started = true;
            out.push_str(&self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        out.push_str(&self.chunk(json!({}), Some(finish_reason)));
        if self.include_usage {
            let c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage_json(usage)});
            out.push_str(&format!("data: {c}\n\n"));
        }
        out.push_str("data: [DONE]\n\n");
        Bytes::from(out)
    }

    async fn fail(&mut self, e: bastion_runtime::ProviderError) -> Bytes {
        if let Some(rec) = self.record.take() {
            self.state
                .chat
                .end(
                    rec,
                    Outcome::Failed {
                        error: e.kind(),
                        completion: &self.seen,
                    },
                )
                .await;
        }
        let error = self.state.chat.provider_error(self.provider, e);
        let p = error.problem();
        let body = json!({"error": {"message": p.detail, "type": p.code, "code": p.code}});
        Bytes::from(format!("data: {body}\n\n"))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The client went away mid-stream: the call still happened and is charged.
        if let Some(rec) = self.record.take() {
            let state = self.state.clone();
            let partial = std::mem::take(&mut self.seen);
            tokio::spawn(async move {
                state
                    .chat
                    .end(
                        rec,
                        Outcome::Failed {
                            error: "cancelled",
                            completion: &partial,
                        },
                    )
                    .await;
            });
        }
    }
}

/// The model this key's assistant answers with.
#[utoipa::path(get, path = "/v1/models", tag = "openai", security(("bearer" = [])),
    responses((status = 200, body = ModelList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn models(State(state): State<AppState>, at: InAssistant) -> ApiResult<Json<ModelList>> {
    let route = state.chat.routes.get(&state, &at.scope).await?;
    Ok(Json(ModelList {
        object: "list",
        data: vec![ModelEntry {
            id: route.settings.model.clone(),
            object: "model",
            created: route.settings.updated_at / 1000,
            owned_by: "bastion",
        }],
    }))
}
