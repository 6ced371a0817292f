//! OpenAI's Chat Completions endpoints.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::errors::{self, Format};
use crate::reply::{self, Answer};
use crate::server::unix_now;
use crate::sse::{self, Script};
use crate::state::Shared;

#[derive(Deserialize)]
struct Request {
    model: String,
    messages: Vec<Message>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The key of `Authorization: Bearer <key>`, "" when there is none.
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or("", str::trim)
}

pub(crate) async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = bearer(&headers);
    let plan = shared.arrive("/v1/chat/completions", key, &body);
    if let Some(status) = plan.fail_with {
        return errors::injected(Format::OpenAi, status);
    }
    if plan.key_rejected {
        return errors::openai_bad_key(key);
    }
    let request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            let message = format!("We could not parse the JSON body of your request: {err}");
            return errors::error(Format::OpenAi, 400, &message);
        }
    };
    if request.messages.is_empty() {
        return errors::error(Format::OpenAi, 400, "[] is too short - 'messages'");
    }
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    if max_tokens == Some(0) {
        return errors::error(
            Format::OpenAi,
            400,
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        );
    }
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| reply::text_of(&m.content))
        .unwrap_or_default();
    let prompt_words = request
        .messages
        .iter()
        .map(|m| reply::word_count(&reply::text_of(&m.content)))
        .sum();
    let answer = Answer::new(plan.reply.as_deref(), &last_user, prompt_words, max_tokens);
    let id = format!("chatcmpl-fake{}", shared.next_id());
    let finish_reason = if answer.truncated { "length" } else { "stop" };
    let usage = json!({
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens(),
        "total_tokens": answer.prompt_tokens + answer.completion_tokens(),
    });

    if !request.stream.unwrap_or(false) {
        return Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": unix_now(),
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.text(), "refusal": null},
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
            "system_fingerprint": null,
        }))
        .into_response();
    }

    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let created = unix_now();
    // With include_usage, OpenAI puts `"usage": null` on every chunk but the last.
    let chunk = |delta: Value, finish: Value| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        Event::default().data(chunk.to_string())
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let first_delta = events.len();
    events.extend(
        answer
            .pieces
            .iter()
            .map(|piece| chunk(json!({"content": piece}), Value::Null)),
    );
    events.push(chunk(json!({}), json!(finish_reason)));
    if include_usage {
        let last = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": null,
            "choices": [],
            "usage": usage,
        });
        events.push(Event::default().data(last.to_string()));
    }
    events.push(Event::default().data("[DONE]"));
    let script = Script {
        stall_at: Script::stall_index(plan.stall_after, first_delta, answer.pieces.len()),
        events,
    };
    sse::play(script, plan.token_delay, shared.cut_signal())
}

/// `GET /v1/models` in OpenAI's list shape.
pub(crate) fn models(key: &str, rejected: bool) -> Response {
    if rejected {
        return errors::openai_bad_key(key);
    }
    Json(json!({
        "object": "list",
        "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "bastion"}],
    }))
    .into_response()
}
